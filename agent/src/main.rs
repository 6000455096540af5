//! `armlet`: the agent daemon and the control-plane CLI in one static binary.
//!
//! `main` stays thin: parse arguments ([`cli`]), dispatch to one `cmd::*` function, and map the
//! error chain to an exit code. Everything that decides anything lives in the pure crates
//! (`armlet-policy`, `armlet-bundle`) or in a `cmd` module that can be tested on its own.

mod alert;
mod cli;
mod cmd;
mod daemon;
mod enforce;
mod policy_files;
mod probe;
mod procinfo;
mod procmon;
mod requirements;
mod state;
mod transport;
mod workloads;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("armlet: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
