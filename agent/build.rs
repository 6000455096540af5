//! Embeds the git revision and the target triple for `armlet version`.
//!
//! Why a build script: release binaries (and Yocto/Buildroot builds from a source tarball)
//! must say which source they came from. The revision comes from `git rev-parse` when the
//! source is a git checkout, from `ARMLET_GIT_REVISION` when a packager sets it, and is
//! `unknown` otherwise — a build never fails for want of git.

use std::env;
use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ARMLET_GIT_REVISION");
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    // Only trust git when this crate really lives in the checkout git reports (a tarball
    // unpacked inside some other repository must not borrow that repository's revision).
    let in_checkout = git(&["-C", &manifest_dir, "rev-parse", "--show-toplevel"])
        .is_some_and(|top| Path::new(&manifest_dir).starts_with(&top));
    let revision = match env::var("ARMLET_GIT_REVISION") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_string(),
        _ if in_checkout => {
            // Rebuild when HEAD moves (HEAD itself, the branch it points to, packed refs).
            for p in ["HEAD", "packed-refs"] {
                if let Some(path) = git(&["-C", &manifest_dir, "rev-parse", "--git-path", p]) {
                    println!("cargo:rerun-if-changed={}", abs(&manifest_dir, &path));
                }
            }
            if let Some(r) = git(&["-C", &manifest_dir, "symbolic-ref", "-q", "HEAD"])
                && let Some(path) = git(&["-C", &manifest_dir, "rev-parse", "--git-path", &r])
            {
                println!("cargo:rerun-if-changed={}", abs(&manifest_dir, &path));
            }
            git(&["-C", &manifest_dir, "rev-parse", "--short=12", "HEAD"])
                .unwrap_or_else(|| "unknown".into())
        }
        _ => "unknown".into(),
    };
    println!("cargo:rustc-env=ARMLET_GIT_REVISION={revision}");
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=ARMLET_TARGET={target}");
}

fn abs(base: &str, p: &str) -> String {
    if Path::new(p).is_absolute() {
        p.to_string()
    } else {
        Path::new(base).join(p).display().to_string()
    }
}
