//! The fanotify enforcer on this host, confined to a test cgroup: real permission events,
//! real EPERM, and SIGHUP reloads (a new policy swaps atomically; an invalid one is refused
//! and the policy in force stays).
//!
//! Safe on the host: `--scope-cgroup` confines only the tasks this test moves into its own
//! cgroup-v2 child; the agent is stopped and the cgroup removed at the end. Needs root,
//! fanotify and cgroup v2; skips (saying why) without them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failure should stop at its line"
)]

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn cgroup2() -> Option<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .ok()?
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

fn can_run() -> Result<String, String> {
    if !common::is_root() {
        return Err("not root".into());
    }
    if !Path::new("/proc/sys/fs/fanotify").exists() {
        return Err("no fanotify".into());
    }
    cgroup2().ok_or_else(|| "no cgroup-v2 mount".to_string())
}

/// Removes the agent and the cgroup however the test ends.
struct Guard {
    agent: Option<Child>,
    cgroup: PathBuf,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = std::fs::remove_dir(&self.cgroup);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cat FILE` inside the test cgroup: Ok(content) or Err(stderr).
fn cat_in(cgroup: &Path, file: &Path) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec cat \"$1\"")
        .arg(cgroup)
        .arg(file)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn policy(dir: &Path, blocked: &Path) -> String {
    format!(
        "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {{name: fan-test}}\nspec:\n  nodeSelector: {{matchLabels: {{kubearmor.io/hostname: '*'}}}}\n  file:\n    matchPaths:\n    - path: {}\n  action: Block\n# {}\n",
        blocked.display(),
        dir.display()
    )
}

fn wait_for(path: &Path, what: &str, agent: &mut Child) {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(what)) {
            return;
        }
        if let Ok(Some(status)) = agent.try_wait() {
            panic!(
                "the agent exited ({status}): {}",
                std::fs::read_to_string(path).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {what:?} in {}: {}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fanotify_blocks_in_the_scope_and_reloads_atomically() {
    let cg2 = match can_run() {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("armlet-fan-{}", std::process::id()));
    let cgroup = PathBuf::from(format!("{cg2}/armlet-fan-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pol")).unwrap();
    std::fs::create_dir(&cgroup).unwrap();
    let mut g = Guard {
        agent: None,
        cgroup: cgroup.clone(),
        dir: dir.clone(),
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, "file a").unwrap();
    std::fs::write(&b, "file b").unwrap();
    let pol = dir.join("pol/p.yaml");
    std::fs::write(&pol, policy(&dir, &a)).unwrap();
    let err = dir.join("agent.err");
    let ready = dir.join("ready");
    let agent = Command::new(env!("CARGO_BIN_EXE_armlet"))
        .args([
            "run",
            "--insecure-dev",
            "--enforcer",
            "fanotify",
            "--node",
            "n",
        ])
        .arg("--policies")
        .arg(dir.join("pol"))
        .arg("--scope-cgroup")
        .arg(&cgroup)
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let agent = g.agent.insert(agent);
    let start = Instant::now();
    while !ready.exists() {
        if let Ok(Some(status)) = agent.try_wait() {
            panic!(
                "agent exited ({status}): {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(60), "agent not ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Blocked inside the scope, untouched outside it.
    let denied = cat_in(&cgroup, &a).unwrap_err();
    assert!(denied.contains("Operation not permitted"), "{denied}");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "file a");
    assert_eq!(cat_in(&cgroup, &b).unwrap(), "file b");

    // A new policy: b blocked, a free again.
    std::fs::write(&pol, policy(&dir, &b)).unwrap();
    let pid = i32::try_from(agent.id()).unwrap();
    // SAFETY: signalling the agent this test started, by its pid.
    #[allow(unsafe_code, reason = "kill(2) to send SIGHUP to our own child")]
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    wait_for(&err, "armlet: reloaded", agent);
    assert_eq!(cat_in(&cgroup, &a).unwrap(), "file a");
    assert!(cat_in(&cgroup, &b).is_err());

    // An invalid policy is refused; b stays blocked.
    std::fs::write(&pol, "apiVersion: security.kubearmor.com/v1\nkind: Nope\n").unwrap();
    // SAFETY: as above.
    #[allow(unsafe_code, reason = "kill(2) to send SIGHUP to our own child")]
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    wait_for(&err, "reload refused", agent);
    assert!(cat_in(&cgroup, &b).is_err());

    // Stop: the kernel drops the marks with the group; nothing is denied any more.
    // SAFETY: as above.
    #[allow(unsafe_code, reason = "kill(2) to stop our own child")]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let mut agent = g.agent.take().unwrap();
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent exit {status}");
    let mut alerts = String::new();
    agent
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut alerts)
        .unwrap();
    assert!(
        alerts.contains("\"Action\":\"Block\"") && alerts.contains("Permission denied"),
        "{alerts}"
    );
    assert_eq!(cat_in(&cgroup, &b).unwrap(), "file b");
}
