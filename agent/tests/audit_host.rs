//! The tracepoint audit enforcer on this host (no BPF-LSM here): real tracepoints, real alerts.
//!
//! Safe on the host: audit never denies anything; the programs detach when the agent exits.
//! Needs root and kernel BTF; skips (saying why) without them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failure should stop at its line"
)]

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn can_run() -> Result<(), String> {
    if !common::is_root() {
        return Err("not root".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err("no kernel BTF".into());
    }
    if std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.contains("bpf")) {
        return Err(
            "this kernel has BPF-LSM: audit runs the LSM programs (tested in the VMs)".into(),
        );
    }
    Ok(())
}

#[test]
fn tracepoint_audit_reports_what_the_policy_would_block() {
    if let Err(why) = can_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("armlet-audit-{}", std::process::id()));
    let secret = dir.join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("k"), "s3cret").unwrap();
    let policy = dir.join("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {{name: audit-test}}\nspec:\n  nodeSelector: {{matchLabels: {{kubearmor.io/hostname: '*'}}}}\n  file:\n    matchDirectories:\n    - dir: {}/\n      recursive: true\n  action: Block\n",
            secret.display()
        ),
    )
    .unwrap();
    let ready = dir.join("ready");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_armlet"))
        .args([
            "run",
            "--insecure-dev",
            "--enforcer",
            "audit",
            "--node",
            "test-node",
        ])
        .arg("--policies")
        .arg(&policy)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready.exists() {
        if let Ok(Some(status)) = agent.try_wait() {
            let mut err = String::new();
            agent
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("agent exited early ({status}): {err}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "agent not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A path through `..` and `.`: resolved in user space like the kernel would. (Relative
    // paths are resolved through /proc/<pid>/cwd, which races with short-lived processes; see
    // ARCHITECTURE.md.)
    let out = Command::new("cat")
        .arg(secret.join("../secret/./k"))
        .output()
        .unwrap();
    assert!(out.status.success(), "audit must never block");
    let other = Command::new("cat").arg(&policy).output().unwrap();
    assert!(other.status.success());
    std::thread::sleep(Duration::from_millis(800));
    // Stop it by its pid (SIGTERM: it detaches and prints its counters).
    let term = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let output = agent.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let alerts = String::from_utf8_lossy(&output.stdout);
    let resource = format!("\"Resource\":\"{}\"", secret.join("k").display());
    let hits: Vec<&str> = alerts.lines().filter(|l| l.contains(&resource)).collect();
    assert_eq!(hits.len(), 1, "alerts: {alerts}");
    for field in [
        "\"PolicyName\":\"audit-test\"",
        "\"Action\":\"Audit (Block)\"",
        "\"Result\":\"Passed\"",
        "\"Operation\":\"File\"",
        "\"Source\":\"/usr/bin/cat\"",
    ] {
        assert!(hits[0].contains(field), "{field} missing in {}", hits[0]);
    }
    assert!(
        !alerts.contains("p.yaml"),
        "an open outside the policy alerted: {alerts}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
