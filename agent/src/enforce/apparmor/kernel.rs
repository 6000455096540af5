//! Talking to the kernel: load/replace/remove profiles, and read AppArmor's records.
//!
//! Why `apparmor_parser -r`: the kernel takes only compiled policy; the parser compiles for the
//! running kernel's feature set (`/sys/kernel/security/apparmor/features`) and replaces the
//! profile with its children in one write to `.replace`, so tasks see either the old profile
//! or the new one, and a text the parser refuses never reaches the kernel (the previous profile
//! stays in force). Writing precompiled binary policy to `.replace` without a parser on the
//! node is not implemented: without the parser, loading fails with [`LoadError::NoParser`].

use std::fs::File;
use std::io::{ErrorKind, Read, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const SECURITYFS: &str = "/sys/kernel/security/apparmor";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "apparmor_parser is not installed (looked in PATH, /usr/sbin, /sbin); loading \
         precompiled binary policy is not implemented"
    )]
    NoParser,
    #[error("running {parser}: {err}")]
    Spawn { parser: String, err: std::io::Error },
    #[error(
        "apparmor_parser refused the profile {profile} (the previous one stays in force): {stderr}"
    )]
    Refused { profile: String, stderr: String },
    #[error("removing profile {profile}: {err}")]
    Remove {
        profile: String,
        err: std::io::Error,
    },
    #[error("reading the kernel log /dev/kmsg: {0}")]
    Kmsg(std::io::Error),
}

/// The parser binary, if installed.
pub fn parser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("apparmor_parser"))
        .find(|p| p.is_file())
}

/// Load or atomically replace the profiles in `text` (`profile` names them in errors).
pub fn replace(profile: &str, text: &str) -> Result<(), LoadError> {
    let parser = parser().ok_or(LoadError::NoParser)?;
    let spawn_err = |err| LoadError::Spawn {
        parser: parser.display().to_string(),
        err,
    };
    // -r: replace (or add); -K: no cache (the text changes with every policy).
    let mut child = Command::new(&parser)
        .args(["-r", "-K"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        return Ok(());
    }
    Err(LoadError::Refused {
        profile: profile.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Remove a profile (with its children) from the kernel; tasks in it become unconfined.
pub fn remove(profile: &str) -> Result<(), LoadError> {
    let err = |err| LoadError::Remove {
        profile: profile.to_string(),
        err,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(Path::new(SECURITYFS).join(".remove"))
        .map_err(err)?;
    f.write_all(profile.as_bytes()).map_err(err)
}

/// Is `profile` loaded (listed in `profiles`)?
pub fn is_loaded(profile: &str) -> bool {
    std::fs::read_to_string(Path::new(SECURITYFS).join("profiles")).is_ok_and(|s| {
        s.lines()
            .any(|l| l.rsplit_once(" (").is_some_and(|(n, _)| n == profile))
    })
}

/// The kernel log, read from its end (records older than the agent are not ours to report).
#[derive(Debug)]
pub struct Kmsg {
    file: File,
    pub overruns: u64,
}

/// Records read per poll before control returns to the daemon loop.
const MAX_BATCH: usize = 1024;

impl Kmsg {
    pub fn open() -> Result<Self, LoadError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(LoadError::Kmsg)?;
        // SAFETY: lseek on a descriptor we own; SEEK_END on /dev/kmsg moves past the records
        // already in the buffer and touches no memory.
        #[allow(
            unsafe_code,
            reason = "lseek(2) on /dev/kmsg: std's Seek refuses SEEK_END 0 here"
        )]
        let r = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
        if r < 0 {
            return Err(LoadError::Kmsg(std::io::Error::last_os_error()));
        }
        Ok(Kmsg { file, overruns: 0 })
    }

    /// Wait up to `timeout`, then return the records available (at most [`MAX_BATCH`]).
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<String>, LoadError> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd on our own descriptor, count 1.
        #[allow(unsafe_code, reason = "poll(2): std has no readiness wait for files")]
        let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(LoadError::Kmsg(e));
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while out.len() < MAX_BATCH {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EPIPE: records were overwritten before we read them; the next read resumes.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => self.overruns += 1,
                Err(e) => return Err(LoadError::Kmsg(e)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real parser refuses a broken profile before anything reaches the kernel (skipped
    /// where it is not installed). Nothing is loaded: this host has no AppArmor.
    #[test]
    fn refused_text_is_an_error_with_the_parser_message() {
        if parser().is_none() {
            eprintln!("SKIP: apparmor_parser is not installed");
            return;
        }
        match replace("broken", "profile broken { deny /x qq, }\n") {
            Err(LoadError::Refused { stderr, .. }) => assert!(!stderr.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
