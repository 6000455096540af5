//! `armlet policy check|compile` as a user runs them, on the files the repository ships.
//!
//! Golden files: `policies/testdata/invalid/NAME.yaml` must be rejected with exactly the lines
//! in `NAME.err`. After an intended change of wording, regenerate them with
//! `ARMLET_BLESS=1 cargo test -p armlet --test policy_cli` and review the diff.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failure should stop at its line"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

fn armlet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_armlet"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run armlet")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo())
        .expect("inside repo")
        .display()
        .to_string()
}

#[test]
fn every_invalid_file_is_rejected_with_its_golden_message() {
    let dir = repo().join("policies/testdata/invalid");
    let cases = files(&dir, "yaml");
    assert!(cases.len() >= 20, "only {} invalid cases", cases.len());
    let bless = std::env::var_os("ARMLET_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let path = rel(&case);
        let out = armlet(&["policy", "check", &path]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let golden = case.with_extension("err");
        if bless {
            std::fs::write(&golden, &stdout).expect("write golden");
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if out.status.code() != Some(1) {
            failures.push(format!("{path}: exit {:?}, expected 1", out.status.code()));
        }
        if stdout != want || want.is_empty() {
            failures.push(format!("{path}:\n  got:  {stdout}  want: {want}"));
        }
        // Every line names FILE:LINE:COL.
        for line in stdout.lines() {
            let rest = line.strip_prefix(&format!("{path}:")).unwrap_or("");
            let mut parts = rest.splitn(3, ':');
            let ok = parts.next().is_some_and(|l| l.parse::<u32>().is_ok())
                && parts.next().is_some_and(|c| c.parse::<u32>().is_ok());
            if !ok {
                failures.push(format!("{path}: line without FILE:LINE:COL: {line}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shipped_policy_is_valid_and_compiles_for_every_enforcer() {
    let root = repo().join("policies");
    let mut n = 0;
    for f in files(&root, "yaml") {
        let path = rel(&f);
        if path.contains("testdata/invalid") {
            continue;
        }
        n += 1;
        let out = armlet(&["policy", "check", &path]);
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(n >= 20, "only {n} policies");
    for e in ["bpf-lsm", "apparmor", "fanotify", "audit"] {
        let out = armlet(&[
            "policy",
            "compile",
            "--enforcer",
            e,
            "--json",
            "policies/examples",
            "policies/hardening",
        ]);
        assert!(
            out.status.success(),
            "{e}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["support"]["enforcer"], e);
        assert!(
            v["ir"]["workloads"]
                .as_array()
                .is_some_and(|w| !w.is_empty())
        );
    }
}

#[test]
fn examples_ship_every_kind_category_and_action() {
    let out = armlet(&["policy", "compile", "--json", "policies/examples"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "KubeArmorPolicy",
        "KubeArmorHostPolicy",
        "KubeArmorClusterPolicy",
        "ExecPath",
        "FilePath",
        "FileDir",
        "Protocol",
        "Capability",
        "\"Allow\"",
        "\"Audit\"",
        "\"Block\"",
    ] {
        assert!(text.contains(needle), "no example uses {needle}");
    }
}

#[test]
fn compile_json_is_stable() {
    let a = armlet(&["policy", "compile", "--json", "policies/examples"]);
    let b = armlet(&["policy", "compile", "--json", "policies/examples"]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn several_problems_in_one_file_are_all_reported() {
    let dir = std::env::temp_dir().join(format!("armlet-multi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let f = dir.join("p.yaml");
    std::fs::write(
        &f,
        "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata:\n  name: p\nspec:\n  severity: 11\n  file:\n    matchPaths:\n    - path: etc/x\n  network:\n    matchProtocols:\n    - protocol: tcpp\n",
    )
    .expect("write");
    let out = armlet(&["policy", "check", f.to_str().expect("utf8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].ends_with(
            "p.yaml:6:13: `spec.severity` must be from 1 (lowest) to 10 (highest), found 11"
        ),
        "{stdout}"
    );
    assert!(lines[1].contains("p.yaml:9:13: "));
    assert!(lines[2].contains("p.yaml:12:17: unknown protocol `tcpp` (did you mean `tcp`?)"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The acceptance test of issue #2: every KubeArmor policy in the conformance data is accepted.
/// Skips (with a message) where `../shared` is absent, as in a user's clone.
#[test]
fn kubearmor_conformance_policies_are_all_accepted() {
    let shared = repo().join("../shared/conformance/kubearmor");
    if !shared.is_dir() {
        eprintln!("skipped: {} is absent", shared.display());
        return;
    }
    let out = armlet(&["policy", "check", shared.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains(" 0 error(s)"), "{summary}");
    for e in ["bpf-lsm", "apparmor", "fanotify", "audit"] {
        let out = armlet(&[
            "policy",
            "compile",
            "--enforcer",
            e,
            shared.to_str().expect("utf8"),
        ]);
        assert!(out.status.success(), "{e}");
    }
}

#[test]
fn run_refuses_unsigned_policies_without_the_dev_flag() {
    let out = armlet(&[
        "run",
        "--policies",
        "policies/examples/host",
        "--node",
        "n1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-dev"));
    let out = armlet(&[
        "run",
        "--policies",
        "policies/examples/host",
        "--insecure-dev",
        "--enforcer",
        "apparmor",
        "--node",
        "n1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: --insecure-dev"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("NOT ENFORCING"), "{stdout}");
    assert!(stdout.contains("enforcer: "), "{stdout}");
}

#[test]
fn run_verifies_a_signed_bundle_and_refuses_a_replay() {
    let dir = std::env::temp_dir().join(format!("armlet-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = |n: &str| dir.join(n).to_str().expect("utf8").to_string();
    for (role, name) in [("root", "root"), ("policy", "pol")] {
        let out = armlet(&["keygen", "--role", role, "--out", &p(name)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = armlet(&[
        "trust",
        "init",
        "--root",
        &p("root.pub"),
        "--threshold",
        "1",
        "--policy-key",
        &p("pol.pub"),
        "--expires",
        "30d",
        "--sign-with",
        &p("root.key"),
        "-o",
        &p("trust.bin"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = armlet(&[
        "bundle",
        "build",
        "--serial",
        "5",
        "--expires",
        "1d",
        "--key",
        &p("pol.key"),
        "-o",
        &p("b.bundle"),
        "policies/examples/host",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |state: &str| {
        armlet(&[
            "run",
            "--bundle",
            &p("b.bundle"),
            "--trust",
            &p("trust.bin"),
            "--state",
            state,
            "--node",
            "edge-1",
            // AppArmor is not active on this host: the command prints the verified plan and
            // returns instead of starting the daemon.
            "--enforcer",
            "apparmor",
        ])
    };
    let run_ok = |state: &str| {
        let out = run(state);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stdout = run_ok(&p("state"));
    assert!(
        stdout.contains("policy source: signed bundle") && stdout.contains("(serial 5)"),
        "{stdout}"
    );
    assert!(stdout.contains("default-demo"), "{stdout}");
    // A restart with the same file (a reboot): the file is a rollback (serial not above the
    // highest seen), so the node enforces its active bundle, the copy kept at acceptance.
    let stdout = run_ok(&p("state"));
    assert!(
        stdout.contains("(serial 5, the last one accepted)")
            && stdout.contains("bundle rejected: rollback"),
        "{stdout}"
    );
    assert!(stdout.contains("default-demo"), "{stdout}");
    // A tampered active copy is refused like any bundle, and then nothing is enforced.
    let active = dir.join("state/active-bundle");
    let mut bytes = std::fs::read(&active).expect("active bundle kept");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&active, &bytes).expect("write");
    let out = run(&p("state"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("active bundle in") && stderr.contains("is refused"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
