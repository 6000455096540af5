//! (being written)
use std::process::ExitCode;
pub fn run(_c: crate::cli::RunArgs) -> anyhow::Result<ExitCode> { anyhow::bail!("not yet") }
