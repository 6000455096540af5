//! Reading `/proc` on the fanotify decision path without allocating.
//!
//! Why this exists: the opener waits in the kernel until the agent answers, so every event is
//! answered from fixed buffers (no heap allocation, no `std::fs` paths built as `String`s).
//! The parsers are pure and unit-tested; the reads are thin `open/read/readlink` calls.
//!
//! What the opener is doing comes from `/proc/<tid>/syscall`: the thread is stopped inside
//! `open`/`openat`/`openat2`/`execve` while it waits for our answer, so its syscall number and
//! arguments are stable and give the open flags (`readOnly` rules need them; fanotify itself
//! does not report them).

use std::io::Write as _;

/// Open flags the decision needs.
const O_ACCMODE: u64 = 0o3;
const O_TRUNC: u64 = 0o1000;
const O_CREAT: u64 = 0o100;

/// A `/proc` path, built in place (NUL-terminated).
pub struct PathBuf64 {
    buf: [u8; 64],
}

impl PathBuf64 {
    pub fn new() -> Self {
        PathBuf64 { buf: [0; 64] }
    }

    /// `/proc/<tid>/<name>` or, with `tid` None, `/proc/self/<name>`.
    fn set(&mut self, tid: Option<u32>, name: &str) -> Option<*const libc::c_char> {
        self.buf = [0; 64];
        let mut w = &mut self.buf[..63];
        let ok = match tid {
            Some(t) => write!(w, "/proc/{t}/{name}"),
            None => write!(w, "/proc/self/{name}"),
        };
        ok.ok()?;
        Some(self.buf.as_ptr().cast())
    }
}

impl Default for PathBuf64 {
    fn default() -> Self {
        Self::new()
    }
}

/// Read a whole (small) file into `out`; returns the bytes read.
pub fn read_into(
    path: &mut PathBuf64,
    tid: Option<u32>,
    name: &str,
    out: &mut [u8],
) -> Option<usize> {
    let p = path.set(tid, name)?;
    // SAFETY: `p` points to a NUL-terminated path in `path.buf`, alive for the call; `out` is
    // an exclusively borrowed buffer and each read is bounded by its remaining length.
    #[allow(
        unsafe_code,
        reason = "open/read/close on /proc without allocating (fanotify hot path)"
    )]
    unsafe {
        let fd = libc::open(p, libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut n = 0usize;
        while n < out.len() {
            let r = libc::read(fd, out[n..].as_mut_ptr().cast(), out.len() - n);
            if r <= 0 {
                break;
            }
            n += r.unsigned_abs();
        }
        libc::close(fd);
        Some(n)
    }
}

/// `readlink` of `/proc/<tid>/<name>` (or `/proc/self/<name>`) into `out`.
pub fn readlink_into(
    path: &mut PathBuf64,
    tid: Option<u32>,
    name: &str,
    out: &mut [u8],
) -> Option<usize> {
    let p = path.set(tid, name)?;
    // SAFETY: `p` is NUL-terminated (see `set`); readlink writes at most `out.len()` bytes.
    #[allow(
        unsafe_code,
        reason = "readlink on /proc without allocating (fanotify hot path)"
    )]
    let r = unsafe { libc::readlink(p, out.as_mut_ptr().cast(), out.len()) };
    let n = usize::try_from(r).ok()?;
    // A result that fills the buffer may be truncated: treat it as unreadable.
    (n < out.len()).then_some(n)
}

/// Read 8 bytes of the thread's memory at `addr` (`openat2`'s `open_how.flags`).
pub fn read_u64_at(path: &mut PathBuf64, tid: u32, addr: u64) -> Option<u64> {
    let p = path.set(Some(tid), "mem")?;
    let off = libc::off_t::try_from(addr).ok()?;
    let mut b = [0u8; 8];
    // SAFETY: NUL-terminated path; pread writes at most 8 bytes into `b`.
    #[allow(unsafe_code, reason = "pread of /proc/<tid>/mem (openat2 flags)")]
    let n = unsafe {
        let fd = libc::open(p, libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::pread(fd, b.as_mut_ptr().cast(), 8, off);
        libc::close(fd);
        n
    };
    (n == 8).then(|| u64::from_ne_bytes(b))
}

/// The cgroup-v2 path in `/proc/<pid>/cgroup` (the `0::` line), e.g. `/armlet-test/ubuntu-1`.
pub fn cgroup_v2(text: &[u8]) -> Option<&[u8]> {
    text.split(|&c| c == b'\n')
        .find_map(|l| l.strip_prefix(b"0::"))
        .map(|p| p.strip_suffix(b"\r").unwrap_or(p))
}

/// `path` is `scope` or below it (cgroup paths, `/`-separated; `scope` has no trailing `/`).
pub fn cgroup_within(path: &[u8], scope: &[u8]) -> bool {
    match path.strip_prefix(scope) {
        Some(rest) => rest.is_empty() || rest.first() == Some(&b'/') || scope == b"/",
        None => false,
    }
}

/// The fields of `/proc/<tid>/status` the decision needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub tgid: u32,
    pub ppid: u32,
    /// Real uid (what BPF-LSM's `bpf_get_current_uid_gid` reports).
    pub uid: u32,
}

pub fn parse_status(text: &[u8]) -> Status {
    let mut s = Status::default();
    for line in text.split(|&c| c == b'\n') {
        let num = |rest: &[u8]| -> u32 {
            let t = rest.trim_ascii_start();
            let end = t
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(t.len());
            std::str::from_utf8(&t[..end])
                .ok()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0)
        };
        if let Some(r) = line.strip_prefix(b"Tgid:") {
            s.tgid = num(r);
        } else if let Some(r) = line.strip_prefix(b"PPid:") {
            s.ppid = num(r);
        } else if let Some(r) = line.strip_prefix(b"Uid:") {
            s.uid = num(r);
            break; // Tgid and PPid come before Uid
        }
    }
    s
}

/// `/proc/<tid>/syscall`: the syscall number and its six arguments, when the thread is in a
/// syscall.
pub fn parse_syscall(text: &[u8]) -> Option<(i64, [u64; 6])> {
    let t = std::str::from_utf8(text).ok()?;
    let mut it = t.split_ascii_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    if nr < 0 {
        return None;
    }
    let mut args = [0u64; 6];
    for a in &mut args {
        let w = it.next()?;
        *a = u64::from_str_radix(w.strip_prefix("0x").unwrap_or(w), 16).ok()?;
    }
    Some((nr, args))
}

/// What an open asks for, from the syscall the opener is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Known flags: does it write (or truncate, or create)?
    Write(bool),
    /// `openat2`: the flags are the first field of the `open_how` at this address.
    Openat2(u64),
    /// Not a syscall we know the flags of (io_uring, a kernel-internal open, ...).
    Unknown,
}

/// Syscall numbers per architecture: (open, openat, openat2, creat, execve, execveat,
/// open_by_handle_at). aarch64 has no `open`/`creat`.
#[cfg(target_arch = "x86_64")]
const NR: [i64; 7] = [2, 257, 437, 85, 59, 322, 304];
#[cfg(target_arch = "aarch64")]
const NR: [i64; 7] = [-1, 56, 437, -1, 221, 281, 265];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NR: [i64; 7] = [-1; 7];

pub fn intent(nr: i64, args: &[u64; 6]) -> Intent {
    let writes = flags_write;
    let [open, openat, openat2, creat, execve, execveat, by_handle] = NR;
    if nr == open {
        Intent::Write(writes(args[1]))
    } else if nr == openat || nr == by_handle {
        Intent::Write(writes(args[2]))
    } else if nr == openat2 {
        Intent::Openat2(args[2])
    } else if nr == creat {
        Intent::Write(true)
    } else if nr == execve || nr == execveat {
        Intent::Write(false)
    } else {
        Intent::Unknown
    }
}

/// Does this open flag word write?
pub fn flags_write(flags: u64) -> bool {
    flags & O_ACCMODE != 0 || flags & (O_TRUNC | O_CREAT) != 0
}

/// The ELF program interpreter (`ld-linux-*.so*`, `ld-musl-*.so*`, `ld64.so*`): the kernel
/// opens it for exec while loading a dynamic binary, but it is not the program being run
/// (BPF-LSM's `bprm_check_security` never sees it either).
pub fn is_elf_interpreter(path: &[u8]) -> bool {
    let name = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
    (name.starts_with(b"ld-") || name.starts_with(b"ld64.so"))
        && name.windows(3).any(|w| w == b".so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_lines() {
        let t = b"9:name=systemd:/\n4:memory:/x\n0::/armlet-test/ubuntu-1\n";
        assert_eq!(cgroup_v2(t), Some(&b"/armlet-test/ubuntu-1"[..]));
        assert_eq!(cgroup_v2(b"1:cpu:/\n"), None);
        assert!(cgroup_within(b"/armlet-test/ubuntu-1", b"/armlet-test"));
        assert!(cgroup_within(b"/armlet-test", b"/armlet-test"));
        assert!(!cgroup_within(b"/armlet-test2", b"/armlet-test"));
        assert!(!cgroup_within(b"/", b"/armlet-test"));
        assert!(cgroup_within(b"/anything", b"/"));
    }

    #[test]
    fn status_fields() {
        let t = b"Name:\tcat\nUmask:\t0022\nState:\tR\nTgid:\t4242\nNgid:\t0\nPid:\t4243\nPPid:\t17\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(
            parse_status(t),
            Status {
                tgid: 4242,
                ppid: 17,
                uid: 1000
            }
        );
    }

    #[test]
    fn syscall_lines_give_open_intent() {
        let (nr, args) =
            parse_syscall(b"257 0xffffff9c 0x7ffd1234 0x0 0x0 0x0 0x0 0x7ffd0000 0x7f00\n")
                .unwrap();
        assert_eq!(nr, 257);
        assert_eq!(args[2], 0);
        assert_eq!(parse_syscall(b"running\n"), None);
        assert_eq!(parse_syscall(b"-1 0x7ffd0000 0x7f00\n"), None);
        let [_, openat, openat2, ..] = NR;
        if openat > 0 {
            assert_eq!(intent(openat, &[0, 0, 0, 0, 0, 0]), Intent::Write(false));
            assert_eq!(intent(openat, &[0, 0, 0o1, 0, 0, 0]), Intent::Write(true));
            assert_eq!(
                intent(openat, &[0, 0, 0o1000, 0, 0, 0]),
                Intent::Write(true)
            );
            assert_eq!(
                intent(openat2, &[0, 0, 0xabc, 0, 0, 0]),
                Intent::Openat2(0xabc)
            );
        }
        assert_eq!(intent(9999, &[0; 6]), Intent::Unknown);
        assert!(flags_write(0o2) && !flags_write(0o400000));
    }

    #[test]
    fn interpreters_are_recognised() {
        assert!(is_elf_interpreter(
            b"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        ));
        assert!(is_elf_interpreter(b"/lib/ld-linux-aarch64.so.1"));
        assert!(is_elf_interpreter(b"/lib/ld-musl-aarch64.so.1"));
        assert!(!is_elf_interpreter(b"/usr/bin/ld"));
        assert!(!is_elf_interpreter(b"/usr/bin/ld-wrapper"));
    }

    #[test]
    fn proc_reads_work_for_this_process() {
        let mut p = PathBuf64::new();
        let mut buf = [0u8; 4096];
        let n = read_into(&mut p, Some(std::process::id()), "status", &mut buf).unwrap();
        assert_eq!(parse_status(&buf[..n]).tgid, std::process::id());
        let n = readlink_into(&mut p, None, "exe", &mut buf).unwrap();
        assert!(n > 0);
    }
}
