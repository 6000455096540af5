//! (being written)
use std::process::ExitCode;
pub fn keygen(_a: &crate::cli::KeygenArgs) -> anyhow::Result<()> { anyhow::bail!("not yet") }
