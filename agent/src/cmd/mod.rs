//! One module per subcommand family; each turns parsed arguments into work and an exit code.

pub mod bench;
pub mod bundle;
pub mod fleet;
pub mod keys;
pub mod policy;
pub mod probe;
pub mod run;
pub mod trust;

use std::process::ExitCode;

use crate::cli::Command;

/// Run one subcommand. `Ok(code)` carries the command's own verdict (e.g. 1 for "policy invalid");
/// `Err` is an operational failure (unreadable file, bad argument) and exits 2.
pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Policy(c) => policy::run(c),
        Command::Keygen(a) => keys::keygen(&a).map(|()| ExitCode::SUCCESS),
        Command::Trust(c) => trust::run(c),
        Command::Bundle(c) => bundle::run(c),
        Command::Run(a) => run::run(a),
        Command::Probe(a) => probe::run(&a),
        Command::Push(a) => fleet::push(&a),
        Command::Alerts(crate::cli::AlertsCommand::Tail(a)) => fleet::tail(&a),
        Command::Fleet(crate::cli::FleetCommand::Status(a)) => fleet::status(&a),
        Command::Bench(crate::cli::BenchCommand::Mqtt(a)) => bench::mqtt(&a),
        Command::Version => {
            println!(
                "armlet {} (target {}-{})",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH,
                std::env::consts::OS
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
