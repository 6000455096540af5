//! End-to-end tests of `armlet keygen`, `trust` and `bundle` through the built binary.
//!
//! Bundles for the verify cases are built with the `armlet-bundle` library from key files that
//! the CLI generated, so the verdict tests do not depend on the policy compiler; `bundle build`
//! itself is covered by `build_sign_inspect_verify`, which compiles `policies/examples`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failure should stop at its line"
)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use armlet_bundle::{BundleSpec, Role, Scope, SecretKey, SignedRoot, build_bundle};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn armlet(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_armlet"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run armlet");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> Run {
    let run = armlet(dir, args);
    assert_eq!(
        run.code, 0,
        "armlet {args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run
}

fn keygen(dir: &Path, role: &str, name: &str) {
    ok(dir, &["keygen", "--role", role, "--out", name]);
}

fn secret(dir: &Path, name: &str) -> SecretKey {
    SecretKey::parse(&fs::read_to_string(dir.join(format!("{name}.key"))).unwrap()).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn spec(serial: u64) -> BundleSpec {
    BundleSpec {
        serial,
        issued_at: now() - 60,
        expires_at: now() + 3600,
        scope: Scope::Fleet,
        min_agent_version: [0, 0, 0],
        sources: vec![],
    }
}

fn write_bundle(
    dir: &Path,
    name: &str,
    spec: &BundleSpec,
    chain: &[SignedRoot],
    keys: &[&SecretKey],
) {
    let bytes = build_bundle(spec, b"payload", chain, keys).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// Every file under `dir` with its bytes (and the dir's existence), to prove "untouched".
fn snapshot(dir: &Path) -> Option<BTreeMap<PathBuf, Vec<u8>>> {
    let entries = fs::read_dir(dir).ok()?;
    Some(
        entries
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect(),
    )
}

/// A trust root v1: root keys r1, r2 (threshold 2), policy key p1 (threshold 1).
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (role, name) in [
        ("root", "r1"),
        ("root", "r2"),
        ("policy", "p1"),
        ("policy", "p2"),
    ] {
        keygen(d, role, name);
    }
    ok(
        d,
        &[
            "trust",
            "init",
            "--root",
            "r1.pub",
            "r2.pub",
            "--threshold",
            "2",
            "--policy-key",
            "p1.pub",
            "--expires",
            "365d",
            "--sign-with",
            "r1.key",
            "r2.key",
            "-o",
            "trust.bin",
        ],
    );
    tmp
}

#[test]
fn keygen_writes_0600_secret_and_refuses_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = ok(d, &["keygen", "--role", "policy", "--out", "k"]);
    assert!(run.stdout.contains("policy key "), "{}", run.stdout);
    let mode = fs::metadata(d.join("k.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secret key mode {mode:o}");
    let public = fs::read_to_string(d.join("k.pub")).unwrap();
    assert!(
        public.starts_with("armlet-key-v1 policy ed25519-public "),
        "{public}"
    );
    let before = fs::read(d.join("k.key")).unwrap();
    let again = armlet(d, &["keygen", "--role", "root", "--out", "k"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );
    assert_eq!(fs::read(d.join("k.key")).unwrap(), before);
    // Only the .pub existing is enough to refuse (no orphan secret is written).
    fs::write(d.join("x.pub"), "placeholder").unwrap();
    assert_eq!(
        armlet(d, &["keygen", "--role", "root", "--out", "x"]).code,
        2
    );
    assert!(!d.join("x.key").exists());
}

#[test]
fn trust_init_rotate_inspect() {
    let tmp = setup();
    let d = tmp.path();
    let inspect = ok(d, &["trust", "inspect", "trust.bin"]);
    let doc: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["root_threshold"], 2);
    assert_eq!(doc["root_keys"].as_array().unwrap().len(), 2);
    assert_eq!(doc["self_signature_check"]["ok"], true);

    // Below threshold, wrong roles, bad thresholds, duplicates: refused.
    let init = |extra: &[&str]| {
        let mut args = vec!["trust", "init", "--expires", "30d", "-o", "bad.bin"];
        args.extend_from_slice(extra);
        armlet(d, &args)
    };
    let one_sig = init(&[
        "--root",
        "r1.pub",
        "r2.pub",
        "--threshold",
        "2",
        "--policy-key",
        "p1.pub",
        "--sign-with",
        "r1.key",
    ]);
    assert_eq!(one_sig.code, 2);
    assert!(
        one_sig.stderr.contains("root-below-threshold"),
        "{}",
        one_sig.stderr
    );
    let wrong_role = init(&[
        "--root",
        "p1.pub",
        "--threshold",
        "1",
        "--policy-key",
        "p2.pub",
        "--sign-with",
        "r1.key",
    ]);
    assert_eq!(wrong_role.code, 2, "{}", wrong_role.stderr);
    let zero = init(&[
        "--root",
        "r1.pub",
        "--threshold",
        "0",
        "--policy-key",
        "p1.pub",
        "--sign-with",
        "r1.key",
    ]);
    assert_eq!(zero.code, 2);
    let dup = init(&[
        "--root",
        "r1.pub",
        "r1.pub",
        "--threshold",
        "1",
        "--policy-key",
        "p1.pub",
        "--sign-with",
        "r1.key",
    ]);
    assert_eq!(dup.code, 2);
    assert!(dup.stderr.contains("duplicate"), "{}", dup.stderr);
    assert!(!d.join("bad.bin").exists());

    // Rotation 1 -> 2 to new root key r3 and policy key p2.
    keygen(d, "root", "r3");
    let rotate = |sign_with: &[&str]| {
        let mut args = vec![
            "trust",
            "rotate",
            "--from",
            "trust.bin",
            "--root",
            "r3.pub",
            "--threshold",
            "1",
            "--policy-key",
            "p2.pub",
            "--expires",
            "365d",
            "-o",
            "root2.bin",
            "--sign-with",
        ];
        args.extend_from_slice(sign_with);
        armlet(d, &args)
    };
    let only_new = rotate(&["r3.key"]);
    assert_eq!(only_new.code, 2);
    assert!(
        only_new.stderr.contains("root-not-signed-by-previous"),
        "{}",
        only_new.stderr
    );
    let one_old = rotate(&["r1.key", "r3.key"]);
    assert!(
        one_old.stderr.contains("root-below-threshold"),
        "{}",
        one_old.stderr
    );
    let old_only = rotate(&["r1.key", "r2.key"]);
    assert!(
        old_only.stderr.contains("root-not-self-signed"),
        "{}",
        old_only.stderr
    );
    assert!(!d.join("root2.bin").exists());
    ok(
        d,
        &[
            "trust",
            "rotate",
            "--from",
            "trust.bin",
            "--root",
            "r3.pub",
            "--threshold",
            "1",
            "--policy-key",
            "p2.pub",
            "--expires",
            "365d",
            "-o",
            "root2.bin",
            "--sign-with",
            "r1.key",
            "r2.key",
            "r3.key",
        ],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&ok(d, &["trust", "inspect", "root2.bin"]).stdout).unwrap();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["signatures"].as_array().unwrap().len(), 3);
}

#[test]
fn verify_exit_codes_and_state_untouched_on_rejection() {
    let tmp = setup();
    let d = tmp.path();
    let p1 = secret(d, "p1");
    let p2 = secret(d, "p2");
    let verify = |file: &str, node: &str| {
        armlet(
            d,
            &[
                "bundle",
                "verify",
                "--trust",
                "trust.bin",
                "--state",
                "st",
                "--node",
                node,
                "--labels",
                "armlet.io/group=upf",
                file,
            ],
        )
    };

    // A rejection on a fresh node does not even create the state directory.
    write_bundle(d, "stranger.bin", &spec(5), &[], &[&p2]);
    let run = verify("stranger.bin", "edge-1");
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with("rejected: unknown-signer: "),
        "{}",
        run.stdout
    );
    assert!(!d.join("st").exists());

    write_bundle(d, "b5.bin", &spec(5), &[], &[&p1]);
    let run = verify("b5.bin", "edge-1");
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("accepted: serial 5 "),
        "{}",
        run.stdout
    );
    let state = fs::read_to_string(d.join("st/state")).unwrap();
    assert!(state.contains("highest_serial 5"), "{state}");

    let before = snapshot(&d.join("st"));
    write_bundle(d, "b6.bin", &spec(6), &[], &[&p1]);
    let mut tampered = fs::read(d.join("b6.bin")).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    fs::write(d.join("tampered.bin"), tampered).unwrap();
    write_bundle(
        d,
        "b6-other-node.bin",
        &BundleSpec {
            scope: Scope::Node("edge-2".into()),
            ..spec(6)
        },
        &[],
        &[&p1],
    );
    write_bundle(
        d,
        "b6-other-group.bin",
        &BundleSpec {
            scope: Scope::Group("cu".into()),
            ..spec(6)
        },
        &[],
        &[&p1],
    );
    let expired = BundleSpec {
        issued_at: now() - 7200,
        expires_at: now() - 10,
        ..spec(6)
    };
    write_bundle(d, "b6-expired.bin", &expired, &[], &[&p1]);
    fs::write(d.join("garbage.bin"), b"definitely not a bundle").unwrap();
    for (file, code) in [
        ("b5.bin", "rollback"),
        ("tampered.bin", "hash-mismatch"),
        ("b6-other-node.bin", "scope-mismatch"),
        ("b6-other-group.bin", "scope-mismatch"),
        ("b6-expired.bin", "expired"),
        ("stranger.bin", "unknown-signer"),
        ("garbage.bin", "bad-magic"),
    ] {
        let run = verify(file, "edge-1");
        assert_eq!(run.code, 1, "{file}: {}", run.stdout);
        assert!(
            run.stdout.starts_with(&format!("rejected: {code}: ")),
            "{file}: {}",
            run.stdout
        );
        assert_eq!(
            snapshot(&d.join("st")),
            before,
            "{file} changed the state directory"
        );
    }
    // Group scope matches through the label; a higher serial is accepted.
    write_bundle(
        d,
        "b7-group.bin",
        &BundleSpec {
            scope: Scope::Group("upf".into()),
            ..spec(7)
        },
        &[],
        &[&p1],
    );
    assert_eq!(verify("b7-group.bin", "edge-1").code, 0);
    // Operational errors (missing trust anchor) exit 2, not 1.
    let run = armlet(
        d,
        &[
            "bundle",
            "verify",
            "--trust",
            "missing.bin",
            "--state",
            "st",
            "--node",
            "n",
            "b7-group.bin",
        ],
    );
    assert_eq!(run.code, 2);
}

#[test]
fn rotation_chain_is_persisted_and_reverified() {
    let tmp = setup();
    let d = tmp.path();
    keygen(d, "root", "r3");
    ok(
        d,
        &[
            "trust",
            "rotate",
            "--from",
            "trust.bin",
            "--root",
            "r3.pub",
            "--threshold",
            "1",
            "--policy-key",
            "p2.pub",
            "--expires",
            "365d",
            "-o",
            "root2.bin",
            "--sign-with",
            "r1.key",
            "r2.key",
            "r3.key",
        ],
    );
    let v2 = SignedRoot::from_file_bytes(&fs::read(d.join("root2.bin")).unwrap()).unwrap();
    let (p1, p2) = (secret(d, "p1"), secret(d, "p2"));
    let verify = |file: &str| {
        armlet(
            d,
            &[
                "bundle",
                "verify",
                "--trust",
                "trust.bin",
                "--state",
                "st",
                "--node",
                "n",
                file,
            ],
        )
    };
    // p2 is only trusted through the embedded rotation.
    write_bundle(d, "plain-p2.bin", &spec(1), &[], &[&p2]);
    assert!(
        verify("plain-p2.bin")
            .stdout
            .starts_with("rejected: unknown-signer")
    );
    write_bundle(d, "chain.bin", &spec(2), std::slice::from_ref(&v2), &[&p2]);
    let run = verify("chain.bin");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("trust-root v2"), "{}", run.stdout);
    assert!(d.join("st/root-v2.bin").exists());
    // The node now follows v2 from its state dir: p1 (v1's policy key) is no longer trusted,
    // and p2 is, without a chain.
    write_bundle(d, "old-key.bin", &spec(3), &[], &[&p1]);
    assert!(
        verify("old-key.bin")
            .stdout
            .starts_with("rejected: unknown-signer")
    );
    write_bundle(d, "new-key.bin", &spec(4), &[], &[&p2]);
    assert_eq!(verify("new-key.bin").code, 0);
    // A root file dropped into the state dir that does not chain from the anchor is refused.
    let bogus = SecretKey::from_seed(Role::Root, &[42; 32]);
    let mut meta = v2.decode_metadata().unwrap();
    meta.version = 3;
    meta.root_keys = vec![*bogus.public().bytes()];
    let mut v3 = SignedRoot::new(&meta).unwrap();
    v3.sign(&bogus).unwrap();
    fs::write(d.join("st/root-v3.bin"), v3.to_file_bytes().unwrap()).unwrap();
    let run = verify("new-key.bin");
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("root-not-signed-by-previous"),
        "{}",
        run.stderr
    );
}

/// Needs `policy_files::bundle_payload` (the policy compiler) and `policies/examples`.
#[test]
fn build_sign_inspect_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (role, name) in [("root", "r1"), ("policy", "p1"), ("policy", "p2")] {
        keygen(d, role, name);
    }
    ok(
        d,
        &[
            "trust",
            "init",
            "--root",
            "r1.pub",
            "--threshold",
            "1",
            "--policy-key",
            "p1.pub",
            "p2.pub",
            "--policy-threshold",
            "2",
            "--expires",
            "365d",
            "--sign-with",
            "r1.key",
            "-o",
            "trust.bin",
        ],
    );
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples");
    let policies = policies.to_str().unwrap();
    ok(
        d,
        &[
            "bundle",
            "build",
            "--serial",
            "3",
            "--expires",
            "2h",
            "--scope",
            "labels=site=berlin",
            "--min-agent-version",
            "0.0.1",
            "--key",
            "p1.key",
            "-o",
            "b.bin",
            policies,
        ],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&ok(d, &["bundle", "inspect", "b.bin"]).stdout).unwrap();
    assert_eq!(doc["serial"], 3);
    assert_eq!(doc["scope"]["labels"]["site"], "berlin");
    assert_eq!(doc["signatures"].as_array().unwrap().len(), 1);
    assert!(!doc["sources"].as_array().unwrap().is_empty());
    assert_eq!(doc["payload"]["sha256"].as_str().unwrap().len(), 64);
    let verify = |labels: &str| {
        armlet(
            d,
            &[
                "bundle",
                "verify",
                "--trust",
                "trust.bin",
                "--state",
                "st",
                "--node",
                "n",
                "--labels",
                labels,
                "b.bin",
            ],
        )
    };
    assert!(
        verify("site=berlin")
            .stdout
            .starts_with("rejected: below-threshold")
    );
    ok(d, &["bundle", "sign", "--key", "p2.key", "b.bin"]);
    assert_eq!(
        armlet(d, &["bundle", "sign", "--key", "p2.key", "b.bin"]).code,
        2
    );
    assert!(
        verify("site=paris")
            .stdout
            .starts_with("rejected: scope-mismatch")
    );
    let run = verify("site=berlin");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("accepted: serial 3 "),
        "{}",
        run.stdout
    );
}
