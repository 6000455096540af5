//! The process monitor's table: what the exec/fork/exit tracepoints reported, bounded.
//!
//! Why: an alert names the acting process's parent and executable, but short-lived processes
//! (`bash -c date`) are often gone from `/proc` by the time the alert is read. The kernel
//! reports every process start (fork), program change (exec) and end (exit) on its own ring
//! buffer; this table keeps the last facts per pid so [`ProcTable::fill`] can complete what
//! `/proc` no longer knows. Exited processes stay until evicted (their alerts may still be in
//! flight); the table holds at most `capacity` processes, least recently touched evicted first.

use std::collections::{BTreeMap, HashMap};

use armlet_ebpf as abi;

use crate::procinfo::ProcInfo;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    ppid: u32,
    comm: String,
    /// The executable path: from `/proc/<pid>/exe` at exec time when readable, else the
    /// filename the caller passed to execve.
    exe: String,
    alive: bool,
    touched: u64,
}

/// A bounded pid → process facts table fed by the process monitor.
#[derive(Debug)]
pub struct ProcTable {
    capacity: usize,
    entries: HashMap<u32, Entry>,
    order: BTreeMap<u64, u32>,
    clock: u64,
    events: u64,
}

impl ProcTable {
    pub fn new(capacity: usize) -> Self {
        ProcTable {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            events: 0,
        }
    }

    /// Process one monitor record. `exe_of` reads `/proc/<pid>/exe` (injected for tests).
    pub fn apply(&mut self, ev: &abi::ProcEvent, exe_of: impl Fn(u32) -> Option<String>) {
        self.events += 1;
        let comm = abi::c_str(&ev.comm);
        match ev.h.kind {
            abi::EV_FORK => {
                // The child starts as a copy of its parent.
                let exe = self
                    .entries
                    .get(&ev.h.ppid)
                    .map(|p| p.exe.clone())
                    .unwrap_or_default();
                self.put(ev.h.pid, ev.h.ppid, comm, exe, true);
            }
            abi::EV_EXEC => {
                let exe = exe_of(ev.h.pid).unwrap_or_else(|| abi::c_str(&ev.filename));
                self.put(ev.h.pid, ev.h.ppid, comm, exe, true);
            }
            abi::EV_EXIT => {
                if let Some(e) = self.entries.get_mut(&ev.h.pid) {
                    e.alive = false;
                }
            }
            _ => {}
        }
    }

    fn put(&mut self, pid: u32, ppid: u32, comm: String, exe: String, alive: bool) {
        self.clock += 1;
        if let Some(old) = self.entries.get(&pid) {
            self.order.remove(&old.touched);
        } else if self.entries.len() >= self.capacity
            && let Some((_, victim)) = self.order.pop_first()
        {
            self.entries.remove(&victim);
        }
        self.order.insert(self.clock, pid);
        self.entries.insert(
            pid,
            Entry {
                ppid,
                comm,
                exe,
                alive,
                touched: self.clock,
            },
        );
    }

    /// The last known executable of `pid`.
    pub fn exe(&self, pid: u32) -> Option<&str> {
        self.entries
            .get(&pid)
            .map(|e| e.exe.as_str())
            .filter(|e| !e.is_empty())
    }

    /// Complete what `/proc` could not tell (empty fields) from the monitor's records.
    pub fn fill(&self, info: &mut ProcInfo) {
        if let Some(me) = self.entries.get(&info.pid) {
            if info.exe.is_empty() {
                info.exe.clone_from(&me.exe);
            }
            if info.comm.is_empty() {
                info.comm.clone_from(&me.comm);
            }
            if info.ppid == 0 {
                info.ppid = me.ppid;
            }
        }
        if let Some(parent) = self.entries.get(&info.ppid) {
            if info.parent_exe.is_empty() {
                info.parent_exe.clone_from(&parent.exe);
            }
            if info.parent_comm.is_empty() {
                info.parent_comm.clone_from(&parent.comm);
            }
        }
    }

    /// (processes known, of which alive, records seen).
    pub fn stats(&self) -> (usize, usize, u64) {
        let alive = self.entries.values().filter(|e| e.alive).count();
        (self.entries.len(), alive, self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: u32, pid: u32, ppid: u32, comm: &str, filename: &str) -> abi::ProcEvent {
        let mut e = abi::ProcEvent {
            h: abi::EventHeader {
                kind,
                pid,
                ppid,
                ..abi::EventHeader::default()
            },
            comm: [0; 16],
            filename: [0; abi::PATH_MAX],
        };
        e.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        e.filename = abi::path_bytes(filename).unwrap();
        e
    }

    #[test]
    fn fork_exec_exit_fill_what_proc_lost() {
        let mut t = ProcTable::new(8);
        let none = |_| None;
        t.apply(&ev(abi::EV_EXEC, 10, 1, "bash", "/bin/bash"), |_| {
            Some("/usr/bin/bash".into())
        });
        t.apply(&ev(abi::EV_FORK, 11, 10, "bash", ""), none);
        t.apply(&ev(abi::EV_EXEC, 11, 10, "date", "date"), none);
        t.apply(&ev(abi::EV_EXIT, 11, 10, "date", ""), none);
        let mut info = ProcInfo {
            pid: 11,
            ..ProcInfo::default()
        };
        t.fill(&mut info);
        assert_eq!(
            (info.ppid, info.comm.as_str(), info.exe.as_str()),
            (10, "date", "date")
        );
        assert_eq!(
            (info.parent_exe.as_str(), info.parent_comm.as_str()),
            ("/usr/bin/bash", "bash")
        );
        assert_eq!(t.stats(), (2, 1, 4));
    }

    #[test]
    fn what_proc_knows_is_kept() {
        let mut t = ProcTable::new(8);
        t.apply(&ev(abi::EV_EXEC, 5, 1, "x", "/x"), |_| None);
        let mut info = ProcInfo {
            pid: 5,
            ppid: 1,
            exe: "/usr/bin/real".into(),
            ..ProcInfo::default()
        };
        t.fill(&mut info);
        assert_eq!(info.exe, "/usr/bin/real");
        assert_eq!(info.comm, "x");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = ProcTable::new(3);
        for pid in 1..=10 {
            t.apply(&ev(abi::EV_FORK, pid, 0, "p", ""), |_| None);
        }
        assert_eq!(t.stats().0, 3);
        let mut info = ProcInfo {
            pid: 10,
            ..ProcInfo::default()
        };
        t.fill(&mut info);
        assert_eq!(info.comm, "p");
        let mut gone = ProcInfo {
            pid: 1,
            ..ProcInfo::default()
        };
        t.fill(&mut gone);
        assert_eq!(gone.comm, "");
    }
}
