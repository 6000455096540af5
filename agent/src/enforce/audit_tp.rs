//! The tracepoint audit enforcer, for kernels without BPF-LSM: observe, match in user space,
//! never block.
//!
//! Why user space: without LSM hooks the kernel gives no resolved path at the moment of the
//! operation, only the syscall arguments (a path as the caller wrote it, relative to a
//! directory fd or the cwd). So the kernel part (`ebpf/src/bpf/audit.bpf.c`) only reports
//! open/openat/openat2/socket calls and exec/fork/exit; this module resolves each path through
//! `/proc/<pid>/{cwd,fd}` and `canonicalize` (symlinks, `..`), and decides with
//! [`armlet_policy::eval::decide`], the reference every enforcer is tested against. Every
//! decision is reported as `Audit (<action>)`.
//!
//! Known limits (documented in ARCHITECTURE.md): resolution is racy for processes that exit or
//! change directory before the event is read; an open reported at syscall entry may still fail;
//! user memory that is not yet faulted in cannot be read in the tracepoint (counted); capability
//! use is not observed. Observation costs one BTF raw tracepoint on every syscall entry.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use armlet_ebpf::{self as abi, maps};
use armlet_policy::eval::{self, Access, Resource, Verdict};
use armlet_policy::ir::{CompiledPolicy, EffectiveRules, Workload};
use armlet_policy::model::Category;
use aya::maps::{Array, MapData, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

use super::bpf_lsm::BpfLsmError;
use crate::alert::{DecisionEvent, WorkloadInfo};
use crate::procmon::ProcTable;

const AT_FDCWD: i32 = -100;
const O_ACCMODE: u32 = 0o3;
const O_TRUNC: u32 = 0o1000;
/// Records read from each ring buffer per poll before control returns to the caller.
const MAX_BATCH: usize = 1024;

/// The loaded tracepoint programs and their ring buffers.
pub struct AuditTracer {
    ebpf: Ebpf,
    syscalls: RingBuf<MapData>,
    procs: RingBuf<MapData>,
}

impl std::fmt::Debug for AuditTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTracer").finish_non_exhaustive()
    }
}

fn program_err(
    name: &'static str,
    hook: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> BpfLsmError {
    move |source| BpfLsmError::Program { name, hook, source }
}

impl AuditTracer {
    /// Load the audit object, attach the syscall and process tracepoints, and start reporting
    /// (every process but the agent itself).
    pub fn load() -> Result<Self, BpfLsmError> {
        if !abi::audit_object_is_real() {
            return Err(BpfLsmError::NoObject);
        }
        let btf = Btf::from_sys_fs()?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .load(abi::audit_object())?;
        let (sys_name, sys_tp) = abi::AUDIT_SYSCALL_PROGRAM;
        let mut programs = vec![(sys_name, sys_tp)];
        programs.extend(abi::TRACEPOINT_PROGRAMS.iter().copied());
        for (name, tp) in programs {
            let p: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or(BpfLsmError::MissingProgram(name))?
                .try_into()
                .map_err(program_err(name, tp))?;
            p.load(tp, &btf).map_err(program_err(name, tp))?;
            p.attach().map_err(program_err(name, tp))?;
        }
        {
            let mut settings: Array<&mut MapData, abi::AuditSettings> = Array::try_from(
                ebpf.map_mut(maps::AUDIT_SETTINGS)
                    .ok_or(BpfLsmError::MissingMap(maps::AUDIT_SETTINGS))?,
            )
            .map_err(|source| BpfLsmError::Map {
                name: maps::AUDIT_SETTINGS,
                source,
            })?;
            let st = abi::AuditSettings {
                agent_tgid: std::process::id(),
                active: 1,
            };
            settings.set(0, st, 0).map_err(|source| BpfLsmError::Map {
                name: maps::AUDIT_SETTINGS,
                source,
            })?;
        }
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            RingBuf::try_from(ebpf.take_map(name).ok_or(BpfLsmError::MissingMap(name))?)
                .map_err(|source| BpfLsmError::Map { name, source })
        };
        let syscalls = take(&mut ebpf, maps::AUDIT_EVENTS)?;
        let procs = take(&mut ebpf, maps::PROC_EVENTS)?;
        Ok(AuditTracer {
            ebpf,
            syscalls,
            procs,
        })
    }

    /// Wait up to `timeout`; process records first (they feed the table used to decide), then
    /// syscall records. Returns how many records were read.
    pub fn poll(
        &mut self,
        timeout: Duration,
        on_proc: &mut impl FnMut(abi::ProcEvent),
        on_syscall: &mut impl FnMut(abi::SyscallEvent),
    ) -> Result<usize, BpfLsmError> {
        let mut n = self.drain(on_proc, on_syscall);
        if n == 0 {
            super::bpf_lsm::wait_readable(
                &[self.syscalls.as_raw_fd(), self.procs.as_raw_fd()],
                timeout,
            )
            .map_err(BpfLsmError::Poll)?;
            n = self.drain(on_proc, on_syscall);
        }
        Ok(n)
    }

    fn drain(
        &mut self,
        on_proc: &mut impl FnMut(abi::ProcEvent),
        on_syscall: &mut impl FnMut(abi::SyscallEvent),
    ) -> usize {
        let mut n = 0;
        while n < MAX_BATCH
            && let Some(item) = self.procs.next()
        {
            if let Some(ev) = abi::ProcEvent::from_bytes(&item) {
                on_proc(ev);
            }
            n += 1;
        }
        let mut k = 0;
        while k < MAX_BATCH
            && let Some(item) = self.syscalls.next()
        {
            if let Some(ev) = abi::SyscallEvent::from_bytes(&item) {
                on_syscall(ev);
            }
            k += 1;
        }
        n + k
    }

    /// Counters: ring-buffer drops, unreadable paths, process records dropped (see abi::CNT_*).
    pub fn counters(&self) -> [u64; abi::CNT_MAX as usize] {
        super::bpf_lsm::read_counters(&self.ebpf)
    }
}

/// Resolve a path as the kernel would have: relative to `dfd` (or the cwd) of `pid`, then
/// canonicalized (symlinks, `.`, `..`) when the file exists, else normalized lexically.
pub fn resolve(pid: u32, dfd: i32, path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        let base = if dfd == AT_FDCWD {
            std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?
        } else {
            std::fs::read_link(format!("/proc/{pid}/fd/{dfd}")).ok()?
        };
        base.join(path)
    };
    let resolved = std::fs::canonicalize(&joined).unwrap_or_else(|_| normalize(&joined));
    Some(resolved.to_string_lossy().into_owned())
}

/// Lexical normalization (`.` dropped, `..` pops), for paths that do not exist.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// KubeArmor protocol names a `socket(family, type, protocol)` call counts as (the same
/// mapping as the BPF-LSM programs), most specific first.
pub fn socket_protocols(family: u32, sock_type: u32, protocol: u32) -> Vec<&'static str> {
    const AF_INET: u32 = 2;
    const AF_INET6: u32 = 10;
    const AF_PACKET: u32 = 17;
    let ty = sock_type & 0xf;
    let mut names = Vec::new();
    if family == AF_PACKET {
        if ty == 3 {
            names.push("raw");
        }
        names.push("packet");
        return names;
    }
    if family != AF_INET && family != AF_INET6 {
        return names;
    }
    match protocol {
        1 => names.push("icmp"),
        58 => names.push("icmpv6"),
        _ => {}
    }
    match ty {
        1 => {
            match protocol {
                0 | 6 => names.push("tcp"),
                132 => names.push("sctp"),
                _ => {}
            }
            names.push("stream");
        }
        2 => {
            if protocol == 0 || protocol == 17 {
                names.push("udp");
            }
            names.push("dgram");
        }
        3 => names.push("raw"),
        4 => names.push("rdm"),
        5 => {
            if protocol == 132 {
                names.push("sctp");
            }
            names.push("seqpacket");
        }
        6 => names.push("dccp"),
        _ => {}
    }
    names
}

/// Decides observed operations for one workload against the effective rules.
#[derive(Debug)]
pub struct AuditDecider<'a> {
    eff: EffectiveRules<'a>,
}

fn owner_of(path: &str) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.uid())
}

fn exe_of(pid: u32, table: &ProcTable) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .or_else(|| table.exe(pid).map(str::to_string))
        .unwrap_or_default()
}

impl<'a> AuditDecider<'a> {
    pub fn new(ir: &'a CompiledPolicy, host: &Workload) -> Self {
        AuditDecider {
            eff: ir.effective(host),
        }
    }

    /// An open or socket call; None when it raises no alert.
    pub fn syscall(&self, ev: &abi::SyscallEvent, table: &ProcTable) -> Option<DecisionEvent> {
        let exe = exe_of(ev.h.pid, table);
        match ev.h.kind {
            abi::EV_OPEN => {
                let path = resolve(ev.h.pid, ev.dfd, &abi::c_str(&ev.path))?;
                let write = ev.flags & O_ACCMODE != 0 || ev.flags & O_TRUNC != 0;
                let access = Access {
                    exe: &exe,
                    resource: Resource::File(&path),
                    uid: ev.h.uid,
                    owner_uid: owner_of(&path),
                    write,
                };
                let v = eval::decide(&self.eff, &access);
                decision(
                    v,
                    Category::File,
                    ev.h.pid,
                    ev.h.ppid,
                    ev.h.uid,
                    &ev.comm,
                    &exe,
                    path,
                )
            }
            abi::EV_SOCKET => {
                let names = socket_protocols(ev.family, ev.sock_type, ev.protocol);
                let (v, i) = eval::decide_any(names.iter().map(|name| {
                    eval::decide(
                        &self.eff,
                        &Access {
                            exe: &exe,
                            resource: Resource::Protocol(name),
                            uid: ev.h.uid,
                            owner_uid: None,
                            write: false,
                        },
                    )
                }));
                if !v.alerts() {
                    return None;
                }
                decision(
                    v,
                    Category::Network,
                    ev.h.pid,
                    ev.h.ppid,
                    ev.h.uid,
                    &ev.comm,
                    &exe,
                    names.get(i).copied().unwrap_or("").to_string(),
                )
            }
            _ => None,
        }
    }

    /// An exec record, decided before the table learns the new program: the acting executable
    /// (fromSource) is the one that called execve.
    pub fn exec(&self, ev: &abi::ProcEvent, table: &ProcTable) -> Option<DecisionEvent> {
        if ev.h.kind != abi::EV_EXEC {
            return None;
        }
        let caller = table.exe(ev.h.pid).unwrap_or_default().to_string();
        let target = std::fs::read_link(format!("/proc/{}/exe", ev.h.pid))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| resolve(ev.h.pid, AT_FDCWD, &abi::c_str(&ev.filename)))?;
        let access = Access {
            exe: &caller,
            resource: Resource::Exec(&target),
            uid: ev.h.uid,
            owner_uid: owner_of(&target),
            write: false,
        };
        let v = eval::decide(&self.eff, &access);
        decision(
            v,
            Category::Process,
            ev.h.pid,
            ev.h.ppid,
            ev.h.uid,
            &ev.comm,
            &caller,
            target,
        )
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a flat constructor for one event; a struct would only rename the fields"
)]
fn decision(
    v: Verdict,
    category: Category,
    pid: u32,
    ppid: u32,
    uid: u32,
    comm: &[u8],
    source: &str,
    resource: String,
) -> Option<DecisionEvent> {
    if !v.alerts() {
        return None;
    }
    let (action, rule_id) = v.action_and_rule();
    Some(DecisionEvent {
        timestamp: SystemTime::now(),
        category,
        rule_id,
        action,
        denied: false,
        pid,
        ppid,
        uid,
        comm: abi::c_str(comm),
        source: source.to_string(),
        resource,
        workload: WorkloadInfo {
            host: true,
            ..WorkloadInfo::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use armlet_policy::model::Action;

    #[test]
    fn socket_names_match_the_kernel_mapping() {
        assert_eq!(socket_protocols(2, 1, 0), vec!["tcp", "stream"]);
        assert_eq!(socket_protocols(2, 2 | 0o4000, 17), vec!["udp", "dgram"]);
        assert_eq!(socket_protocols(2, 3, 1), vec!["icmp", "raw"]);
        assert_eq!(socket_protocols(10, 2, 58), vec!["icmpv6", "dgram"]);
        assert_eq!(socket_protocols(17, 3, 0), vec!["raw", "packet"]);
        assert!(socket_protocols(1, 1, 0).is_empty());
    }

    #[test]
    fn paths_resolve_like_the_kernel() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        let got = resolve(me, AT_FDCWD, "Cargo.toml").unwrap();
        assert_eq!(
            got,
            std::fs::canonicalize(cwd.join("Cargo.toml"))
                .unwrap()
                .to_string_lossy()
        );
        assert_eq!(
            resolve(me, AT_FDCWD, "/no/such/../file").unwrap(),
            "/no/file"
        );
        assert!(resolve(me, AT_FDCWD, "").is_none());
    }

    #[test]
    fn opens_are_decided_with_the_reference_evaluator() {
        let ir = armlet_policy::compile_text(
            "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {name: a}\nspec:\n  nodeSelector: {matchLabels: {kubearmor.io/hostname: '*'}}\n  file:\n    matchPaths:\n    - path: /no/such/secret\n  action: Block\n",
            "t",
            armlet_policy::ir::Posture::default(),
        )
        .unwrap();
        let host = Workload::Host {
            labels: [("kubearmor.io/hostname".to_string(), "n".to_string())].into(),
        };
        let d = AuditDecider::new(&ir, &host);
        let mut ev = abi::SyscallEvent {
            h: abi::EventHeader {
                kind: abi::EV_OPEN,
                pid: std::process::id(),
                ppid: 1,
                ..abi::EventHeader::default()
            },
            dfd: AT_FDCWD,
            flags: 0,
            family: 0,
            sock_type: 0,
            protocol: 0,
            _pad: 0,
            comm: [0; 16],
            path: abi::path_bytes("/no/such/../such/secret").unwrap(),
        };
        let table = ProcTable::new(4);
        let hit = d.syscall(&ev, &table).expect("alert");
        assert_eq!(
            (hit.action, hit.denied, hit.resource.as_str()),
            (Action::Block, false, "/no/such/secret")
        );
        ev.path = abi::path_bytes("/no/other").unwrap();
        assert!(d.syscall(&ev, &table).is_none());
    }
}
