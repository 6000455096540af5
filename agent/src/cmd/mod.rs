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
            print!("{}", version_text());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `armlet version`: the first line is the one-line identity (what release notes and bug
/// reports quote); the rest says what this binary can enforce with.
pub fn version_text() -> String {
    let objects = [
        ("armlet.bpf.o", armlet_ebpf::object()),
        ("audit.bpf.o", armlet_ebpf::audit_object()),
        ("sock.bpf.o", armlet_ebpf::sock_object()),
    ];
    let mut out = format!(
        "armlet {} (git {}, {})\nrevision: {}\ntarget: {}\nenforcers: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("ARMLET_GIT_REVISION"),
        env!("ARMLET_TARGET"),
        env!("ARMLET_GIT_REVISION"),
        env!("ARMLET_TARGET"),
        enforcers_in_build().join(" "),
    );
    for (name, bytes) in objects {
        let state = match armlet_ebpf::check_object(bytes) {
            Ok(()) => format!("{} bytes", bytes.len()),
            Err(p) => format!("{p}: enforcement refused"),
        };
        out.push_str(&format!("ebpf object {name}: {state}\n"));
    }
    out
}

/// The enforcers this binary can run (DESIGN §5 names): `bpf-lsm` and its report-only form
/// `audit` need the embedded BPF-LSM object; `audit` on kernels without BPF-LSM needs the
/// tracepoint object. A stub build (empty objects) enforces nothing and says so.
pub fn enforcers_in_build() -> Vec<&'static str> {
    let mut v = Vec::new();
    if armlet_ebpf::object_is_real() {
        v.push("bpf-lsm");
    }
    // fanotify needs no object for files and executions; its socket program is embedded.
    if armlet_ebpf::sock_object_is_real() {
        v.push("fanotify");
    }
    if armlet_ebpf::object_is_real() || armlet_ebpf::audit_object_is_real() {
        v.push("audit");
    }
    if v.is_empty() {
        v.push("none");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_revision_target_and_enforcers() {
        let text = version_text();
        let first = text.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("armlet {} (git ", env!("CARGO_PKG_VERSION"))));
        let rev = env!("ARMLET_GIT_REVISION");
        assert!(!rev.is_empty());
        assert!(text.contains(&format!("revision: {rev}\n")), "{text}");
        assert!(
            text.contains(&format!("target: {}\n", env!("ARMLET_TARGET"))),
            "{text}"
        );
        assert!(env!("ARMLET_TARGET").contains(std::env::consts::ARCH));
        assert!(text.contains("enforcers: "), "{text}");
        // The test build embeds real objects (clang is part of the dev setup).
        assert_eq!(
            enforcers_in_build(),
            ["bpf-lsm", "fanotify", "audit"],
            "{text}"
        );
    }
}
