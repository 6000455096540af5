//! Process context for alerts, read from `/proc`, with a bounded cache.
//!
//! Why: enforcers report the acting process by pid (with its comm, executable and parent pid as
//! the kernel saw them); a KubeArmor alert also names the parent's executable
//! (`ParentProcessName`) and, for containers, the pids as the container sees them (`PID`,
//! `PPID`). Those come from `/proc`, which is racy: the process may already have exited, or
//! have executed another program, and its pid may have been reused. So every lookup re-reads
//! the one small `/proc/<pid>/stat` and trusts a cached entry only when the process start time,
//! comm and parent are unchanged; a process that is gone yields what the event itself carried
//! (the caller fills those fields in from the event; see `alert::AlertBuilder::build`).
//!
//! The cache holds at most `capacity` processes (least recently used evicted first), so a fork
//! storm cannot grow the agent's memory.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Everything an alert needs to know about the acting process and its parent.
///
/// Empty strings and `live == false` mean "not known from /proc" (the process exited before
/// the lookup); callers fall back to the event's own fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// Host pid (as the agent's pid namespace sees it).
    pub pid: u32,
    /// Host pid of the parent (from /proc, else the event's hint).
    pub ppid: u32,
    /// Task comm (at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// Executable path (`/proc/<pid>/exe`); empty when unreadable.
    pub exe: String,
    pub parent_exe: String,
    pub parent_comm: String,
    /// The pid as the process's own (innermost) pid namespace sees it; equals `pid` on the host.
    pub ns_pid: u32,
    /// The parent's pid in *its* innermost pid namespace: inside the container for a parent in
    /// the container, the host pid for a parent outside it (runc, containerd-shim), as KubeArmor
    /// reports it.
    pub ns_ppid: u32,
    /// The process was found in /proc.
    pub live: bool,
}

/// Why one `/proc` read failed (internal: a failed read means "unknown", never an error to the
/// enforcement path).
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: unexpected format")]
    Format { path: PathBuf },
}

/// What `/proc/<pid>/stat` says (the fields we need).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    comm: String,
    ppid: u32,
    /// Clock ticks since boot when the process started: with the pid, identifies a process.
    start_time: u64,
}

/// One cached process.
#[derive(Debug, Clone)]
struct Entry {
    stat: Stat,
    exe: String,
    ns_pid: u32,
    /// LRU clock value of the last use.
    used: u64,
}

/// A bounded cache of process facts read from `/proc`.
#[derive(Debug)]
pub struct ProcCache {
    root: PathBuf,
    capacity: usize,
    entries: HashMap<u32, Entry>,
    /// LRU order: clock value → pid.
    order: BTreeMap<u64, u32>,
    clock: u64,
    hits: u64,
    misses: u64,
}

/// Default number of cached processes.
pub const DEFAULT_CAPACITY: usize = 4096;

impl ProcCache {
    /// A cache over the real `/proc` holding at most `capacity` processes (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::with_root(capacity, "/proc")
    }

    /// A cache over another proc root (tests use a fake tree).
    pub fn with_root(capacity: usize, root: impl Into<PathBuf>) -> Self {
        let capacity = capacity.max(1);
        ProcCache {
            root: root.into(),
            capacity,
            entries: HashMap::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            order: BTreeMap::new(),
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// (hits, misses) since creation, for status.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Facts about `pid` and its parent. `hint_ppid` (from the event) is used when the process
    /// has already exited. Never fails: what cannot be read is left empty.
    pub fn lookup(&mut self, pid: u32, hint_ppid: u32) -> ProcInfo {
        let me = self.entry(pid);
        let live = me.is_some();
        let (comm, exe, ppid, ns_pid) = match me {
            Some(e) => (e.stat.comm, e.exe, e.stat.ppid, e.ns_pid),
            None => (String::new(), String::new(), hint_ppid, pid),
        };
        let (parent_comm, parent_exe, ns_ppid) =
            match (ppid != 0).then(|| self.entry(ppid)).flatten() {
                Some(p) => (p.stat.comm, p.exe, p.ns_pid),
                None => (String::new(), String::new(), ppid),
            };
        ProcInfo {
            pid,
            ppid,
            comm,
            exe,
            parent_exe,
            parent_comm,
            ns_pid,
            ns_ppid,
            live,
        }
    }

    /// Forget a process (call on exit events to free the slot early).
    pub fn forget(&mut self, pid: u32) {
        if let Some(e) = self.entries.remove(&pid) {
            self.order.remove(&e.used);
        }
    }

    /// The current facts for one pid: re-validated against `/proc/<pid>/stat`, refreshed when
    /// the process changed (exec, pid reuse), None when it is gone.
    fn entry(&mut self, pid: u32) -> Option<Entry> {
        let dir = self.root.join(pid.to_string());
        let Ok(stat) = read_stat(&dir) else {
            self.forget(pid);
            return None;
        };
        self.clock = self.clock.wrapping_add(1);
        let now = self.clock;
        if let Some(e) = self.entries.get_mut(&pid)
            && e.stat == stat
        {
            self.order.remove(&e.used);
            e.used = now;
            self.order.insert(now, pid);
            self.hits = self.hits.saturating_add(1);
            return Some(e.clone());
        }
        self.misses = self.misses.saturating_add(1);
        let exe = read_exe(&dir).unwrap_or_default();
        let ns_pid = read_ns_pid(&dir).unwrap_or(pid);
        let entry = Entry {
            stat,
            exe,
            ns_pid,
            used: now,
        };
        self.forget(pid);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.order.insert(now, pid);
        self.entries.insert(pid, entry.clone());
        Some(entry)
    }
}

fn read_to_string(path: PathBuf) -> Result<String, ProcError> {
    fs::read_to_string(&path).map_err(|source| ProcError::Read { path, source })
}

/// Parse `/proc/<pid>/stat`: `pid (comm) state ppid ... starttime(22) ...`. The comm may hold
/// spaces and parentheses, so it ends at the *last* `)`.
fn read_stat(dir: &Path) -> Result<Stat, ProcError> {
    let path = dir.join("stat");
    let text = read_to_string(path.clone())?;
    parse_stat(&text).ok_or(ProcError::Format { path })
}

fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open.checked_add(1)?..close)?.to_string();
    let mut rest = text.get(close.checked_add(1)?..)?.split_ascii_whitespace();
    // Fields after the comm start at field 3 (state); ppid is field 4, starttime field 22.
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    let start_time = rest.nth(22 - 5)?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        start_time,
    })
}

fn read_exe(dir: &Path) -> Result<String, ProcError> {
    let path = dir.join("exe");
    let target = fs::read_link(&path).map_err(|source| ProcError::Read { path, source })?;
    let s = target.to_string_lossy();
    // An executable replaced or removed after exec reads as "/path (deleted)".
    Ok(s.strip_suffix(" (deleted)").unwrap_or(&s).to_string())
}

/// The innermost pid from the `NSpid:` line of `/proc/<pid>/status` (Linux ≥ 4.1).
fn read_ns_pid(dir: &Path) -> Result<u32, ProcError> {
    let path = dir.join("status");
    let text = read_to_string(path.clone())?;
    parse_ns_pid(&text).ok_or(ProcError::Format { path })
}

fn parse_ns_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_ascii_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(root: &Path, pid: u32, comm: &str, ppid: u32, start: u64, exe: &str, ns: &str) {
        let dir = root.join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        let stat = format!(
            "{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 100"
        );
        fs::write(dir.join("stat"), stat).unwrap();
        fs::write(
            dir.join("status"),
            format!("Name:\t{comm}\nPid:\t{pid}\nNSpid:\t{ns}\n"),
        )
        .unwrap();
        let _ = fs::remove_file(dir.join("exe"));
        std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
    }

    #[test]
    fn parses_stat_with_awkward_comm() {
        let s = parse_stat(
            "42 (a) b (c) R 7 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 999 1000 100 18",
        )
        .unwrap();
        assert_eq!(
            s,
            Stat {
                comm: "a) b (c".into(),
                ppid: 7,
                start_time: 999
            }
        );
        assert!(parse_stat("42 (x").is_none());
        assert!(parse_stat("42 (x) R").is_none());
        assert_eq!(parse_ns_pid("Name:\tx\nNSpid:\t4242\t17\n"), Some(17));
        assert_eq!(parse_ns_pid("Name:\tx\n"), None);
    }

    #[test]
    fn current_process_and_parent() {
        let me = std::process::id();
        let mut cache = ProcCache::new(8);
        let info = cache.lookup(me, 0);
        assert!(info.live);
        assert_eq!(info.pid, me);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(info.exe, exe.to_string_lossy());
        let comm = fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        assert_eq!(info.comm, comm.trim_end());
        assert_ne!(info.ppid, 0, "a test process has a parent");
        assert!(!info.parent_comm.is_empty());
        assert_ne!(info.ns_pid, 0);
        // The second lookup is served from the cache.
        let (hits_before, _) = cache.stats();
        assert_eq!(cache.lookup(me, 0), info);
        assert!(cache.stats().0 >= hits_before + 2);
    }

    #[test]
    fn exited_process_keeps_the_hint_and_still_finds_the_parent() {
        let tmp = tempfile::tempdir().unwrap();
        fake_proc(tmp.path(), 10, "bash", 1, 5, "/usr/bin/bash", "10\t3");
        let mut cache = ProcCache::with_root(4, tmp.path());
        let info = cache.lookup(11, 10);
        assert!(!info.live);
        assert_eq!((info.pid, info.ppid), (11, 10));
        assert_eq!(info.comm, "");
        assert_eq!(info.parent_exe, "/usr/bin/bash");
        assert_eq!(info.parent_comm, "bash");
        assert_eq!((info.ns_pid, info.ns_ppid), (11, 3));
        // No hint, no parent.
        let info = cache.lookup(12, 0);
        assert_eq!((info.ppid, info.parent_exe.as_str()), (0, ""));
    }

    #[test]
    fn container_pids_and_exec_refresh() {
        let tmp = tempfile::tempdir().unwrap();
        fake_proc(tmp.path(), 100, "bash", 90, 5, "/usr/bin/bash", "100\t1");
        fake_proc(tmp.path(), 101, "bash", 100, 6, "/usr/bin/bash", "101\t2");
        let mut cache = ProcCache::with_root(16, tmp.path());
        let info = cache.lookup(101, 0);
        assert_eq!(
            (info.pid, info.ppid, info.ns_pid, info.ns_ppid),
            (101, 100, 2, 1)
        );
        assert_eq!(info.exe, "/usr/bin/bash");
        // The process executes another program: comm and exe change, start time does not.
        fake_proc(
            tmp.path(),
            101,
            "cat",
            100,
            6,
            "/usr/bin/cat (deleted)",
            "101\t2",
        );
        let info = cache.lookup(101, 0);
        assert_eq!(
            (info.comm.as_str(), info.exe.as_str()),
            ("cat", "/usr/bin/cat")
        );
        // The pid is reused by another process: a new start time.
        fake_proc(tmp.path(), 101, "cat", 100, 77, "/usr/bin/ls", "101\t9");
        let info = cache.lookup(101, 0);
        assert_eq!((info.exe.as_str(), info.ns_pid), ("/usr/bin/ls", 9));
        // It exits: the cached entry is dropped.
        fs::remove_dir_all(tmp.path().join("101")).unwrap();
        assert!(!cache.lookup(101, 100).live);
        assert!(!cache.entries.contains_key(&101));
    }

    #[test]
    fn capacity_is_enforced_lru_first() {
        let tmp = tempfile::tempdir().unwrap();
        for pid in 1..=10 {
            fake_proc(tmp.path(), pid, "p", 0, 1, "/bin/p", &pid.to_string());
        }
        let mut cache = ProcCache::with_root(3, tmp.path());
        for pid in 1..=3 {
            cache.lookup(pid, 0);
        }
        cache.lookup(1, 0); // 1 is now the most recently used
        cache.lookup(4, 0); // evicts 2
        assert_eq!(cache.len(), 3);
        let mut cached: Vec<u32> = cache.entries.keys().copied().collect();
        cached.sort_unstable();
        assert_eq!(cached, vec![1, 3, 4]);
        for pid in 1..=10 {
            cache.lookup(pid, 0);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.order.len(), cache.entries.len());
        assert_eq!(ProcCache::new(0).capacity(), 1);
    }
}
