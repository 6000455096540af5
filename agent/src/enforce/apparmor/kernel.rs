//! Talking to the kernel: load/replace/remove profiles, and read AppArmor's records.
//!
//! Why `apparmor_parser -r`: the kernel takes only compiled policy; the parser compiles for the
//! running kernel's feature set (`/sys/kernel/security/apparmor/features`) and replaces the
//! profile with its children in one write to `.replace`, so tasks see either the old profile
//! or the new one, and a text the parser refuses never reaches the kernel (the previous profile
//! stays in force).
//!
//! Nodes without a parser: `armlet policy apparmor` runs the parser on the build side (for the
//! node's kernel features) and writes one binary policy per generated profile text, named by
//! the text's digest; `armlet run --apparmor-precompiled DIR` then loads by writing that binary
//! to `.replace` ([`set_precompiled`]). The agent still generates the text, so a binary can only
//! be used for exactly the profile it was compiled from; a text with no binary is refused like
//! a text the parser refuses (the previous profile stays in force).

use std::fs::File;
use std::io::{ErrorKind, Read, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const SECURITYFS: &str = "/sys/kernel/security/apparmor";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "apparmor_parser is not installed (looked in PATH, /usr/sbin, /sbin); on nodes without \
         it, precompile the profiles (`armlet policy apparmor`) and run with \
         --apparmor-precompiled DIR"
    )]
    NoParser,
    #[error(
        "no precompiled binary policy for profile {profile} in {dir} (expected {file}: the \
         policy or the workloads changed since `armlet policy apparmor` ran; the previous \
         profile stays in force)"
    )]
    NotPrecompiled {
        profile: String,
        dir: String,
        file: String,
    },
    #[error("loading binary policy {file} into {SECURITYFS}/.replace: {err}")]
    Binary { file: String, err: std::io::Error },
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
    #[error("reading AppArmor's audit records: {0}")]
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

static PRECOMPILED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Load profiles from precompiled binary policy in `dir` from now on (never the parser).
pub fn set_precompiled(dir: PathBuf) {
    let _ = PRECOMPILED.set(dir);
}

/// Are profiles loaded from precompiled binary policy?
pub fn precompiled() -> bool {
    PRECOMPILED.get().is_some()
}

/// Replace several profiles, one text each (precompiled mode: every binary is read first).
pub fn replace_each<'a>(
    profiles: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), LoadError> {
    let all: Vec<(&str, &str)> = profiles.collect();
    if let Some(dir) = PRECOMPILED.get() {
        let mut bins = Vec::new();
        for (name, text) in &all {
            bins.push(read_binary(dir, name, text)?);
        }
        for (path, bin) in bins {
            write_replace(&path, &bin)?;
        }
        return Ok(());
    }
    for (name, text) in all {
        replace(name, text)?;
    }
    Ok(())
}

/// The file a profile text's binary policy is kept in: the first 16 bytes of its SHA-256, hex.
pub fn binary_name(text: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(text.as_bytes());
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{hex}.bin")
}

/// Compile `text` with the parser into `out` (`armlet policy apparmor`, build side);
/// `features`: the node kernel's features file (else this machine's kernel).
pub fn compile_binary(
    profile: &str,
    text: &str,
    out: &Path,
    features: Option<&Path>,
) -> Result<(), LoadError> {
    let parser = parser().ok_or(LoadError::NoParser)?;
    let mut cmd = Command::new(&parser);
    // -Q: compile only; -K: no cache; -o: write the binary.
    cmd.args(["-Q", "-K", "-o"]).arg(out);
    if let Some(f) = features {
        cmd.arg("--features-file").arg(f);
    }
    run_parser(&parser, cmd, profile, text)
}

/// Load or atomically replace the profiles in `text` (`profile` names them in errors).
pub fn replace(profile: &str, text: &str) -> Result<(), LoadError> {
    if let Some(dir) = PRECOMPILED.get() {
        return replace_binary(dir, profile, text);
    }
    let parser = parser().ok_or(LoadError::NoParser)?;
    let mut cmd = Command::new(&parser);
    // -r: replace (or add); -K: no cache (the text changes with every policy).
    cmd.args(["-r", "-K"]);
    run_parser(&parser, cmd, profile, text)
}

/// Write the binary policy compiled from exactly `text` to `.replace` (one write: the kernel
/// replaces every profile in it atomically).
fn replace_binary(dir: &Path, profile: &str, text: &str) -> Result<(), LoadError> {
    let (path, bin) = read_binary(dir, profile, text)?;
    write_replace(&path, &bin)
}

fn read_binary(dir: &Path, profile: &str, text: &str) -> Result<(PathBuf, Vec<u8>), LoadError> {
    let path = dir.join(binary_name(text));
    let bin = std::fs::read(&path).map_err(|_| LoadError::NotPrecompiled {
        profile: profile.to_string(),
        dir: dir.display().to_string(),
        file: path.display().to_string(),
    })?;
    Ok((path, bin))
}

fn write_replace(path: &Path, bin: &[u8]) -> Result<(), LoadError> {
    let err = |err| LoadError::Binary {
        file: path.display().to_string(),
        err,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(Path::new(SECURITYFS).join(".replace"))
        .map_err(err)?;
    f.write_all(bin).map_err(err)
}

fn run_parser(parser: &Path, mut cmd: Command, profile: &str, text: &str) -> Result<(), LoadError> {
    let spawn_err = |err| LoadError::Spawn {
        parser: parser.display().to_string(),
        err,
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A parser that refuses the text may exit before reading all of it: a broken pipe
        // here is its answer, reported from its exit status and stderr below.
        match stdin.write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(spawn_err(e)),
            _ => {}
        }
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

/// Where AppArmor's records are read from.
#[derive(Debug)]
enum Feed {
    /// The audit netlink socket's read-only multicast group: every record, no rate limit.
    Netlink(OwnedFd),
    /// `/dev/kmsg`, read from its end: what the kernel prints when no audit daemon runs (the
    /// kernel rate-limits those prints to about 10 per 5 s, so records can be lost).
    Kmsg(File),
}

/// AppArmor's records as they arrive.
#[derive(Debug)]
pub struct AuditFeed {
    feed: Feed,
    /// Records lost before we read them (netlink ENOBUFS, kmsg EPIPE).
    pub overruns: u64,
}

/// Records read per poll before control returns to the daemon loop.
const MAX_BATCH: usize = 1024;
const NETLINK_AUDIT: libc::c_int = 9;
/// AUDIT_NLGRP_READLOG: the multicast group for read-only listeners (needs CAP_AUDIT_READ).
const AUDIT_NLGRP_READLOG: u32 = 1;
const RCVBUF: libc::c_int = 1 << 20;

fn open_netlink() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    #[allow(
        unsafe_code,
        reason = "socket(2) for NETLINK_AUDIT: std has no netlink sockets"
    )]
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_AUDIT,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    #[allow(unsafe_code, reason = "taking ownership of the fresh socket")]
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_nl is valid; we set family and groups and pass its size.
    #[allow(unsafe_code, reason = "bind(2)/setsockopt(2) on our own socket")]
    let r = unsafe {
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = AUDIT_NLGRP_READLOG;
        let size = RCVBUF;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn open_kmsg() -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")?;
    // SAFETY: lseek on a descriptor we own; SEEK_END on /dev/kmsg moves past the records
    // already in the buffer and touches no memory.
    #[allow(unsafe_code, reason = "lseek(2) SEEK_END on /dev/kmsg")]
    let r = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// The text of each netlink message in one datagram (header: len u32, type u16, flags u16,
/// seq u32, pid u32; messages 4-byte aligned).
pub fn netlink_texts(mut buf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let text = &buf[16..len];
        let text = text.split(|b| *b == 0).next().unwrap_or_default();
        out.push(String::from_utf8_lossy(text).into_owned());
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or_default();
    }
    out
}

impl AuditFeed {
    /// The audit multicast group, else the kernel log.
    pub fn open() -> Result<Self, LoadError> {
        let feed = match open_netlink() {
            Ok(fd) => Feed::Netlink(fd),
            Err(e) => {
                eprintln!(
                    "armlet: audit netlink multicast unavailable ({e}); reading AppArmor records \
                     from /dev/kmsg (rate-limited by the kernel)"
                );
                Feed::Kmsg(open_kmsg().map_err(LoadError::Kmsg)?)
            }
        };
        Ok(AuditFeed { feed, overruns: 0 })
    }

    pub fn describe(&self) -> &'static str {
        match self.feed {
            Feed::Netlink(_) => "audit netlink multicast",
            Feed::Kmsg(_) => "/dev/kmsg",
        }
    }

    fn raw_fd(&self) -> libc::c_int {
        match &self.feed {
            Feed::Netlink(fd) => fd.as_raw_fd(),
            Feed::Kmsg(f) => f.as_raw_fd(),
        }
    }

    /// Wait up to `timeout`, then return the records available (at most [`MAX_BATCH`]).
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<String>, LoadError> {
        let mut pfd = libc::pollfd {
            fd: self.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd on our own descriptor, count 1.
        #[allow(
            unsafe_code,
            reason = "poll(2): std has no readiness wait for these files"
        )]
        let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(LoadError::Kmsg(e));
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16384];
        while out.len() < MAX_BATCH {
            let res = match &mut self.feed {
                Feed::Kmsg(f) => f.read(&mut buf),
                Feed::Netlink(fd) => {
                    // SAFETY: recv into our own buffer of the given length.
                    #[allow(unsafe_code, reason = "recv(2) on the netlink socket")]
                    let n = unsafe {
                        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
                }
            };
            match res {
                Ok(0) => break,
                Ok(n) => match self.feed {
                    Feed::Kmsg(_) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Feed::Netlink(_) => out.extend(netlink_texts(&buf[..n])),
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Records were lost before we read them; the next read resumes.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ENOBUFS)) => {
                    self.overruns += 1;
                }
                Err(e) => return Err(LoadError::Kmsg(e)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_found_by_the_exact_text() {
        let a = "profile a {\n}\n";
        let b = "profile a {\n  file,\n}\n";
        assert_eq!(binary_name(a), binary_name(a));
        assert_ne!(binary_name(a), binary_name(b));
        assert_eq!(binary_name(a).len(), 32 + 4);
        let dir = std::env::temp_dir().join(format!("armlet-aa-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(binary_name(a)), b"BIN").unwrap();
        let (path, bin) = read_binary(&dir, "a", a).unwrap();
        assert_eq!((path, bin), (dir.join(binary_name(a)), b"BIN".to_vec()));
        // A changed text has no binary: refused, with the file it looked for.
        let err = read_binary(&dir, "a", b).unwrap_err();
        assert!(
            matches!(&err, LoadError::NotPrecompiled { profile, file, .. }
                if profile == "a" && file.ends_with(&binary_name(b))),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn netlink_datagrams_split_into_texts() {
        let mut d = Vec::new();
        for t in ["audit(1.2:3): apparmor=\"DENIED\"", "ab"] {
            let len = 16 + t.len();
            d.extend_from_slice(&(len as u32).to_ne_bytes());
            d.extend_from_slice(&1400u16.to_ne_bytes());
            d.extend_from_slice(&[0; 10]);
            d.extend_from_slice(t.as_bytes());
            d.resize((d.len() + 3) & !3, 0);
        }
        assert_eq!(
            netlink_texts(&d),
            vec!["audit(1.2:3): apparmor=\"DENIED\"", "ab"]
        );
        assert!(netlink_texts(&[1, 0, 0]).is_empty());
    }

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
