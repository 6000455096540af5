//! armlet's eBPF object and the Rust mirror of its ABI (`include/armlet_abi.h`).
//!
//! Why a crate of its own: the kernel programs are C with CO-RE (clang, built by `build.rs`),
//! and the user-space side needs their bytes and the exact layout of every map key, value and
//! event. Keeping both here, with layout tests that compare against what the C compiler
//! measured at build time, means the two sides cannot drift silently.
//!
//! All types are `#[repr(C)]`, integers only, explicit padding, `Copy`, and constructed zeroed
//! (hash maps compare raw key bytes, so padding must be zero).
#![deny(unsafe_code)]

/// The compiled eBPF object (empty when built with `ARMLET_EBPF_STUB=1` or without clang).
pub fn object() -> &'static [u8] {
    &OBJECT.0
}

/// The tracepoint audit object for this target architecture (empty when stubbed).
pub fn audit_object() -> &'static [u8] {
    &AUDIT_OBJECT.0
}

/// Whether [`audit_object`] holds real programs.
pub fn audit_object_is_real() -> bool {
    check_object(audit_object()).is_ok()
}

/// The fanotify enforcer's cgroup socket object (empty when stubbed).
pub fn sock_object() -> &'static [u8] {
    &SOCK_OBJECT.0
}

/// Whether [`sock_object`] holds real programs.
pub fn sock_object_is_real() -> bool {
    check_object(sock_object()).is_ok()
}

/// Whether [`object`] holds real programs (the agent refuses to enforce otherwise).
pub fn object_is_real() -> bool {
    check_object(object()).is_ok()
}

/// Why embedded bytes are not a usable eBPF object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectProblem {
    /// Zero bytes: a stub build (`ARMLET_EBPF_STUB=1`, or no clang when it was built).
    Empty,
    /// Not an ELF file, or shorter than an ELF header.
    NotElf,
    /// An ELF file for another machine than BPF (`e_machine` != `EM_BPF`).
    NotBpf,
}

impl core::fmt::Display for ObjectProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ObjectProblem::Empty => "empty (stub build)",
            ObjectProblem::NotElf => "not an ELF object",
            ObjectProblem::NotBpf => "an ELF object for another machine than BPF",
        })
    }
}

/// `EM_BPF` from `<elf.h>`.
const EM_BPF: u16 = 247;
/// Size of the 64-bit ELF header; `e_machine` is at offset 18.
const ELF64_HEADER: usize = 64;

/// Check that `bytes` is a 64-bit little-endian BPF ELF object (what clang `-target bpf`
/// produces on the hosts armlet supports). Cheap; the loader does the real parsing.
pub fn check_object(bytes: &[u8]) -> Result<(), ObjectProblem> {
    if bytes.is_empty() {
        return Err(ObjectProblem::Empty);
    }
    if bytes.len() < ELF64_HEADER || !bytes.starts_with(b"\x7fELF") {
        return Err(ObjectProblem::NotElf);
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != EM_BPF {
        return Err(ObjectProblem::NotBpf);
    }
    Ok(())
}

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/armlet.bpf.o")));
static AUDIT_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/audit.bpf.o")));
static SOCK_OBJECT: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/sock.bpf.o")));

/// Longest path matched in the kernel, including the NUL.
pub const PATH_MAX: usize = 256;
pub const RULES_PER_KEY: usize = 4;
pub const NO_RULE: u32 = 0xffff_ffff;
pub const POSTURE_RULE: u32 = 0xffff_fffe;

pub const CAT_PROCESS: u8 = 1;
pub const CAT_FILE: u8 = 2;
pub const CAT_NETWORK: u8 = 3;
pub const CAT_CAPABILITY: u8 = 4;

pub const KIND_EXACT: u8 = 1;
pub const KIND_DIR_DIRECT: u8 = 2;
pub const KIND_DIR_RECURSIVE: u8 = 3;
pub const KIND_NAME: u8 = 4;

pub const ACT_ALLOW: u8 = 1;
pub const ACT_AUDIT: u8 = 2;
pub const ACT_BLOCK: u8 = 3;

pub const FLAG_READ_ONLY: u8 = 1;
pub const FLAG_OWNER_ONLY: u8 = 2;

pub const EV_DECISION: u32 = 1;
pub const EV_EXEC: u32 = 2;
pub const EV_FORK: u32 = 3;
pub const EV_EXIT: u32 = 4;
pub const EV_OPEN: u32 = 5;
pub const EV_SOCKET: u32 = 6;

pub const CNT_RINGBUF_DROPS: u32 = 0;
pub const CNT_DENIALS: u32 = 1;
pub const CNT_LONG_PATHS: u32 = 2;
pub const CNT_SCRATCH_BUSY: u32 = 3;
pub const CNT_PROBE_HITS: u32 = 4;
pub const CNT_THROTTLED: u32 = 5;
pub const CNT_PROC_DROPS: u32 = 6;

pub const NET_CREATE: u8 = 1;
pub const NET_CONNECT: u8 = 2;
pub const NET_BIND: u8 = 3;
pub const NET_LISTEN: u8 = 4;
pub const NET_ACCEPT: u8 = 5;
pub const CNT_MAX: u32 = 8;

/// KubeArmor protocol names and their ABI ids.
pub const PROTOCOLS: &[(&str, u16)] = &[
    ("all", 0xff),
    ("tcp", 1),
    ("udp", 2),
    ("icmp", 3),
    ("icmpv6", 4),
    ("raw", 5),
    ("sctp", 6),
    ("stream", 7),
    ("dgram", 8),
    ("rdm", 9),
    ("seqpacket", 10),
    ("dccp", 11),
    ("packet", 12),
];

pub fn protocol_id(name: &str) -> Option<u16> {
    PROTOCOLS.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
}

pub fn protocol_name(id: u16) -> Option<&'static str> {
    PROTOCOLS.iter().find(|(_, i)| *i == id).map(|(n, _)| *n)
}

/// Map names, as in the C source.
pub mod maps {
    pub const SETTINGS: &str = "armlet_settings";
    pub const WORKLOADS: &str = "armlet_workloads";
    pub const SOURCES: &str = "armlet_sources";
    pub const PATH_RULES: &str = "armlet_path_rules";
    pub const ID_RULES: &str = "armlet_id_rules";
    pub const ALLOW_LISTS: &str = "armlet_allow_lists";
    pub const EVENTS: &str = "armlet_events";
    pub const PROC_EVENTS: &str = "armlet_proc_events";
    pub const AUDIT_SETTINGS: &str = "armlet_audit_settings";
    pub const AUDIT_EVENTS: &str = "armlet_audit_events";
    pub const COUNTERS: &str = "armlet_counters";
    pub const SOCK_POLICY: &str = "armlet_sock_policy";
    pub const SOCK_SETTINGS: &str = "armlet_sock_settings";
    pub const SOCK_SOURCES: &str = "armlet_sock_sources";
    pub const SOCK_EVENTS: &str = "armlet_sock_events";
    pub const SOCK_COUNTERS: &str = "armlet_sock_counters";
}

/// The cgroup socket program of the fanotify enforcer.
pub const SOCK_PROGRAM: &str = "armlet_sock_create";
pub const SOCK_CLASSES: u32 = 4096;
pub const SOCK_SOURCES: u32 = 256;
pub const SOCK_DENY: u32 = 1;
pub const SOCK_REPORT: u32 = 2;
pub const SOCK_CNT_DENIALS: u32 = 0;
pub const SOCK_CNT_DROPS: u32 = 1;

/// A socket class: its up-to-three protocol ids packed (`ARMLET_SOCK_CLASS`).
pub fn sock_class(ids: [u16; 3]) -> u32 {
    u32::from(ids[0] & 0xff) | (u32::from(ids[1] & 0xff) << 8) | (u32::from(ids[2] & 0xff) << 16)
}

/// `armlet_sock_settings`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockSettings {
    pub enforce: u32,
    pub agent_tgid: u32,
    pub generation: u32,
    pub _pad: u32,
}

/// `armlet_sock_key`: (socket class, source id or 0, generation).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SockKey {
    pub class: u32,
    pub source: u16,
    pub generation: u8,
    pub _pad: u8,
}

/// `armlet_sock_event`: one socket() call of a watched class.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockEvent {
    pub tid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    pub denied: u32,
    /// The caller's fromSource id for this generation (0: none).
    pub source: u32,
    pub comm: [u8; 16],
}

impl SockEvent {
    /// Decode a ring-buffer record; None when it is too short.
    pub fn from_bytes(b: &[u8]) -> Option<SockEvent> {
        let u = |i: usize| {
            b.get(i * 4..i * 4 + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        Some(SockEvent {
            tid: u(0)?,
            tgid: u(1)?,
            uid: u(2)?,
            family: u(3)?,
            sock_type: u(4)?,
            protocol: u(5)?,
            denied: u(6)?,
            source: u(7)?,
            comm: b.get(32..48)?.try_into().ok()?,
        })
    }
}

/// LSM programs: (program name in the object, LSM hook name).
pub const LSM_PROGRAMS: &[(&str, &str)] = &[
    ("armlet_file_open", "file_open"),
    ("armlet_bprm_check", "bprm_check_security"),
    ("armlet_socket_create", "socket_create"),
    ("armlet_socket_connect", "socket_connect"),
    ("armlet_socket_bind", "socket_bind"),
    ("armlet_socket_listen", "socket_listen"),
    ("armlet_socket_accept", "socket_accept"),
    ("armlet_capable", "capable"),
    ("armlet_task_kill", "task_kill"),
    ("armlet_ptrace_access_check", "ptrace_access_check"),
];

/// BTF tracepoints of the process monitor: (program name, tracepoint).
pub const TRACEPOINT_PROGRAMS: &[(&str, &str)] = &[
    ("armlet_proc_exec", "sched_process_exec"),
    ("armlet_proc_fork", "sched_process_fork"),
    ("armlet_proc_exit", "sched_process_exit"),
];

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub generation: u8,
    pub enforce: u8,
    pub active: u8,
    pub has_sources: u8,
    pub host_workload: u32,
    pub agent_tgid: u32,
    pub supervisor_tgid: u32,
    pub host_confined: u8,
    pub probe: u8,
    pub _pad: [u8; 2],
    /// Alerts per second per workload and priority; 0 = unlimited.
    pub alerts_per_sec: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workload {
    pub index: u32,
    pub confined: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// The kernel's device number of the file system (`major << 20 | minor`).
    pub dev: u64,
    pub ino: u64,
    pub generation: u8,
    pub _pad: [u8; 7],
}

/// The kernel's internal encoding of a device number (`MKDEV`), from user-space major/minor.
pub fn kernel_dev(major: u32, minor: u32) -> u64 {
    (u64::from(major) << 20) | u64::from(minor & 0xf_ffff)
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathKey {
    pub workload: u32,
    pub source: u32,
    pub generation: u8,
    pub category: u8,
    pub kind: u8,
    pub _pad0: u8,
    pub _pad1: u32,
    pub path: [u8; PATH_MAX],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IdKey {
    pub workload: u32,
    pub source: u32,
    pub generation: u8,
    pub category: u8,
    pub id: u16,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSlot {
    pub rule_id: u32,
    pub action: u8,
    pub flags: u8,
    pub _pad: u16,
}

impl RuleSlot {
    pub const EMPTY: RuleSlot = RuleSlot {
        rule_id: NO_RULE,
        action: 0,
        flags: 0,
        _pad: 0,
    };
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSet {
    pub slots: [RuleSlot; RULES_PER_KEY],
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            slots: [RuleSlot::EMPTY; RULES_PER_KEY],
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PostureKey {
    pub workload: u32,
    pub source: u32,
    pub generation: u8,
    pub category: u8,
    pub _pad0: u16,
    pub _pad1: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Posture {
    pub action: u8,
    pub _pad: [u8; 7],
}

/// The header first in every event (`armlet_event_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    pub workload: u32,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub ret: i32,
    pub rule_id: u32,
    pub _pad: u32,
    pub cgroup_id: u64,
    pub timestamp_ns: u64,
}

/// Size of [`EventHeader`] in bytes.
pub const HEADER_LEN: usize = 48;

impl EventHeader {
    /// Decode the header of any event; None when the record is too short.
    pub fn from_bytes(b: &[u8]) -> Option<EventHeader> {
        let u32_at = |o: usize| {
            b.get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let u64_at = |o: usize| {
            b.get(o..o + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_ne_bytes)
        };
        Some(EventHeader {
            kind: u32_at(0)?,
            workload: u32_at(4)?,
            pid: u32_at(8)?,
            ppid: u32_at(12)?,
            uid: u32_at(16)?,
            ret: i32::from_ne_bytes(b.get(20..24)?.try_into().ok()?),
            rule_id: u32_at(24)?,
            _pad: 0,
            cgroup_id: u64_at(32)?,
            timestamp_ns: u64_at(40)?,
        })
    }
}

/// An alerting decision (`armlet_event`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub h: EventHeader,
    pub tid: u32,
    pub category: u8,
    pub action: u8,
    pub write: u8,
    /// Network operation (`NET_*`), 0 otherwise.
    pub op: u8,
    pub id: u32,
    /// Network: `family << 16 | (type & 0xff) << 8 | (protocol & 0xff)`, 0 otherwise.
    pub sock: u32,
    pub comm: [u8; 16],
    pub source: [u8; PATH_MAX],
    pub target: [u8; PATH_MAX],
}

// SAFETY: every type is #[repr(C)], Copy, made only of integers and integer arrays with
// explicit padding fields, so any bit pattern is valid and there are no implicit padding bytes.
#[allow(
    unsafe_code,
    reason = "aya::Pod marks plain-old-data map keys and values"
)]
mod pod {
    use super::*;
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for SockSettings {}
    unsafe impl aya::Pod for SockKey {}
    unsafe impl aya::Pod for Workload {}
    unsafe impl aya::Pod for SourceKey {}
    unsafe impl aya::Pod for PathKey {}
    unsafe impl aya::Pod for IdKey {}
    unsafe impl aya::Pod for RuleSet {}
    unsafe impl aya::Pod for PostureKey {}
    unsafe impl aya::Pod for Posture {}
    unsafe impl aya::Pod for AuditSettings {}
}

/// The audit object's raw syscall tracepoint: (program name, BTF tracepoint).
pub const AUDIT_SYSCALL_PROGRAM: (&str, &str) = ("armlet_sys_enter", "sys_enter");

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditSettings {
    pub agent_tgid: u32,
    pub active: u32,
}

/// An open or socket call as the caller made it (`armlet_syscall_event`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SyscallEvent {
    pub h: EventHeader,
    pub dfd: i32,
    pub flags: u32,
    pub family: u32,
    pub sock_type: u32,
    pub protocol: u32,
    pub _pad: u32,
    pub comm: [u8; 16],
    pub path: [u8; PATH_MAX],
}

impl SyscallEvent {
    /// Decode a ring-buffer record; None when it is too short or not a syscall record.
    pub fn from_bytes(b: &[u8]) -> Option<SyscallEvent> {
        if b.len() < std::mem::size_of::<SyscallEvent>() {
            return None;
        }
        let h = EventHeader::from_bytes(b)?;
        if h.kind != EV_OPEN && h.kind != EV_SOCKET {
            return None;
        }
        let p = HEADER_LEN;
        let u32_at = |o: usize| {
            b.get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let mut e = SyscallEvent {
            h,
            dfd: i32::from_ne_bytes(b.get(p..p + 4)?.try_into().ok()?),
            flags: u32_at(p + 4)?,
            family: u32_at(p + 8)?,
            sock_type: u32_at(p + 12)?,
            protocol: u32_at(p + 16)?,
            _pad: 0,
            comm: [0; 16],
            path: [0; PATH_MAX],
        };
        e.comm.copy_from_slice(b.get(p + 24..p + 40)?);
        e.path.copy_from_slice(b.get(p + 40..p + 40 + PATH_MAX)?);
        Some(e)
    }
}

/// A process-monitor record (`armlet_proc_event`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ProcEvent {
    pub h: EventHeader,
    pub comm: [u8; 16],
    pub filename: [u8; PATH_MAX],
}

impl ProcEvent {
    /// Decode a ring-buffer record; None when it is too short or not a process record.
    pub fn from_bytes(b: &[u8]) -> Option<ProcEvent> {
        if b.len() < std::mem::size_of::<ProcEvent>() {
            return None;
        }
        let h = EventHeader::from_bytes(b)?;
        if !(EV_EXEC..=EV_EXIT).contains(&h.kind) {
            return None;
        }
        let mut e = ProcEvent {
            h,
            comm: [0; 16],
            filename: [0; PATH_MAX],
        };
        e.comm.copy_from_slice(b.get(HEADER_LEN..HEADER_LEN + 16)?);
        e.filename
            .copy_from_slice(b.get(HEADER_LEN + 16..HEADER_LEN + 16 + PATH_MAX)?);
        Some(e)
    }
}

/// Error for a path that does not fit a key (the kernel could never match it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path `{0}` is {1} bytes; the kernel matches at most {max} bytes", max = PATH_MAX - 1)]
pub struct PathTooLong(pub String, pub usize);

/// A zero-padded, NUL-terminated path buffer.
pub fn path_bytes(path: &str) -> Result<[u8; PATH_MAX], PathTooLong> {
    let b = path.as_bytes();
    if b.len() >= PATH_MAX {
        return Err(PathTooLong(path.to_string(), b.len()));
    }
    let mut out = [0u8; PATH_MAX];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// The text of a NUL-terminated buffer written by the kernel.
pub fn c_str(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Event {
    /// Decode a ring-buffer record; None when it is too short or of another kind.
    pub fn from_bytes(b: &[u8]) -> Option<Event> {
        if b.len() < std::mem::size_of::<Event>() {
            return None;
        }
        let h = EventHeader::from_bytes(b)?;
        if h.kind != EV_DECISION {
            return None;
        }
        let p = HEADER_LEN;
        let mut e = Event {
            h,
            tid: u32::from_ne_bytes(b.get(p..p + 4)?.try_into().ok()?),
            category: *b.get(p + 4)?,
            action: *b.get(p + 5)?,
            write: *b.get(p + 6)?,
            op: *b.get(p + 7)?,
            id: u32::from_ne_bytes(b.get(p + 8..p + 12)?.try_into().ok()?),
            sock: u32::from_ne_bytes(b.get(p + 12..p + 16)?.try_into().ok()?),
            comm: [0; 16],
            source: [0; PATH_MAX],
            target: [0; PATH_MAX],
        };
        let c = p + 16;
        e.comm.copy_from_slice(b.get(c..c + 16)?);
        e.source.copy_from_slice(b.get(c + 16..c + 16 + PATH_MAX)?);
        e.target
            .copy_from_slice(b.get(c + 16 + PATH_MAX..c + 16 + 2 * PATH_MAX)?);
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[allow(
        non_upper_case_globals,
        reason = "names generated from the C struct names"
    )]
    mod measured {
        include!(concat!(env!("OUT_DIR"), "/abi_layout.rs"));
    }

    #[test]
    fn stub_and_foreign_objects_are_refused() {
        assert_eq!(check_object(b""), Err(ObjectProblem::Empty));
        assert_eq!(check_object(b"\x7fELF"), Err(ObjectProblem::NotElf));
        assert_eq!(check_object(&[0u8; 64]), Err(ObjectProblem::NotElf));
        // A 64-bit ELF header for aarch64 (EM_AARCH64 = 183) is not a BPF object.
        let mut elf = [0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(check_object(&elf), Err(ObjectProblem::NotBpf));
        elf[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
        assert_eq!(check_object(&elf), Ok(()));
    }

    #[test]
    fn embedded_objects_are_real_unless_stubbed() {
        // scripts/test.sh builds with clang: the embedded objects must be real there. A stub
        // build (ARMLET_EBPF_STUB=1) must report them as not real.
        let stub = option_env!("ARMLET_EBPF_STUB") == Some("1");
        assert_eq!(object_is_real(), !stub, "{:?}", check_object(object()));
        if !stub {
            assert_eq!(check_object(audit_object()), Ok(()));
        }
    }

    #[test]
    fn rust_layout_matches_the_c_header() {
        use measured::*;
        if !MEASURED {
            eprintln!("skipped: no host C compiler measured the header");
            return;
        }
        assert_eq!(size_of::<Settings>(), SIZE_armlet_settings);
        assert_eq!(size_of::<Workload>(), SIZE_armlet_workload);
        assert_eq!(size_of::<SourceKey>(), SIZE_armlet_source_key);
        assert_eq!(size_of::<PathKey>(), SIZE_armlet_path_key);
        assert_eq!(size_of::<IdKey>(), SIZE_armlet_id_key);
        assert_eq!(size_of::<RuleSlot>(), SIZE_armlet_rule_slot);
        assert_eq!(size_of::<RuleSet>(), SIZE_armlet_rule_set);
        assert_eq!(size_of::<PostureKey>(), SIZE_armlet_posture_key);
        assert_eq!(size_of::<Posture>(), SIZE_armlet_posture);
        assert_eq!(size_of::<Event>(), SIZE_armlet_event);
        assert_eq!(size_of::<ProcEvent>(), SIZE_armlet_proc_event);
        assert_eq!(size_of::<AuditSettings>(), SIZE_armlet_audit_settings);
        assert_eq!(size_of::<SyscallEvent>(), SIZE_armlet_syscall_event);
        assert_eq!(size_of::<SockSettings>(), SIZE_armlet_sock_settings);
        assert_eq!(size_of::<SockEvent>(), SIZE_armlet_sock_event);
        assert_eq!(size_of::<SockKey>(), SIZE_armlet_sock_key);
        assert_eq!(offset_of!(SockEvent, comm), OFF_armlet_sock_event_comm);
        assert_eq!(offset_of!(SyscallEvent, dfd), OFF_armlet_syscall_event_dfd);
        assert_eq!(
            offset_of!(SyscallEvent, comm),
            OFF_armlet_syscall_event_comm
        );
        assert_eq!(
            offset_of!(SyscallEvent, path),
            OFF_armlet_syscall_event_path
        );
        assert_eq!(offset_of!(ProcEvent, comm), OFF_armlet_proc_event_comm);
        assert_eq!(
            offset_of!(ProcEvent, filename),
            OFF_armlet_proc_event_filename
        );
        assert_eq!(
            offset_of!(Settings, host_workload),
            OFF_armlet_settings_host_workload
        );
        assert_eq!(
            offset_of!(Settings, agent_tgid),
            OFF_armlet_settings_agent_tgid
        );
        assert_eq!(
            offset_of!(Settings, supervisor_tgid),
            OFF_armlet_settings_supervisor_tgid
        );
        assert_eq!(
            offset_of!(Settings, host_confined),
            OFF_armlet_settings_host_confined
        );
        assert_eq!(
            offset_of!(Settings, alerts_per_sec),
            OFF_armlet_settings_alerts_per_sec
        );
        assert_eq!(
            offset_of!(PathKey, generation),
            OFF_armlet_path_key_generation
        );
        assert_eq!(offset_of!(PathKey, kind), OFF_armlet_path_key_kind);
        assert_eq!(offset_of!(PathKey, path), OFF_armlet_path_key_path);
        assert_eq!(offset_of!(IdKey, id), OFF_armlet_id_key_id);
        assert_eq!(
            offset_of!(PostureKey, category),
            OFF_armlet_posture_key_category
        );
        assert_eq!(offset_of!(Event, id), OFF_armlet_event_id);
        assert_eq!(offset_of!(Event, sock), OFF_armlet_event_sock);
        assert_eq!(size_of::<EventHeader>(), SIZE_armlet_event_header);
        assert_eq!(size_of::<EventHeader>(), HEADER_LEN);
        assert_eq!(
            offset_of!(EventHeader, rule_id),
            OFF_armlet_event_header_rule_id
        );
        assert_eq!(
            offset_of!(EventHeader, cgroup_id),
            OFF_armlet_event_header_cgroup_id
        );
        assert_eq!(
            offset_of!(EventHeader, timestamp_ns),
            OFF_armlet_event_header_timestamp_ns
        );
        assert_eq!(offset_of!(Event, tid), OFF_armlet_event_tid);
        assert_eq!(offset_of!(Event, comm), OFF_armlet_event_comm);
        assert_eq!(offset_of!(Event, source), OFF_armlet_event_source);
        assert_eq!(offset_of!(Event, target), OFF_armlet_event_target);
    }

    #[test]
    fn every_size_is_a_multiple_of_eight() {
        for s in [
            size_of::<Settings>(),
            size_of::<Workload>(),
            size_of::<SourceKey>(),
            size_of::<PathKey>(),
            size_of::<IdKey>(),
            size_of::<RuleSet>(),
            size_of::<PostureKey>(),
            size_of::<Posture>(),
            size_of::<Event>(),
            size_of::<ProcEvent>(),
        ] {
            assert_eq!(s % 8, 0, "size {s}");
        }
    }

    #[test]
    fn event_decoding_reads_the_fields_where_the_kernel_writes_them() {
        // Offsets from the layout (itself checked against the C compiler above).
        let mut b = vec![0u8; size_of::<Event>()];
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(
            &mut b,
            offset_of!(EventHeader, kind),
            &EV_DECISION.to_ne_bytes(),
        );
        put(&mut b, offset_of!(EventHeader, pid), &42u32.to_ne_bytes());
        put(&mut b, offset_of!(EventHeader, ret), &(-1i32).to_ne_bytes());
        put(
            &mut b,
            offset_of!(EventHeader, rule_id),
            &7u32.to_ne_bytes(),
        );
        put(&mut b, offset_of!(Event, action), &[ACT_BLOCK]);
        put(&mut b, offset_of!(Event, op), &[NET_CONNECT]);
        put(&mut b, offset_of!(Event, comm), b"cat");
        put(&mut b, offset_of!(Event, source), b"/bin/cat");
        put(&mut b, offset_of!(Event, target), b"/etc/passwd");
        let e = Event::from_bytes(&b).unwrap();
        assert_eq!(
            (e.h.kind, e.h.pid, e.h.ret, e.h.rule_id),
            (EV_DECISION, 42, -1, 7)
        );
        assert_eq!((e.action, e.op), (ACT_BLOCK, NET_CONNECT));
        assert_eq!(c_str(&e.comm), "cat");
        assert_eq!(c_str(&e.source), "/bin/cat");
        assert_eq!(c_str(&e.target), "/etc/passwd");
        assert!(Event::from_bytes(&b[..100]).is_none());
        // Other event kinds share the header and are told apart by it.
        put(&mut b, 0, &EV_EXEC.to_ne_bytes());
        assert!(Event::from_bytes(&b).is_none());
        let p = ProcEvent::from_bytes(&b).unwrap();
        assert_eq!((p.h.kind, p.h.pid), (EV_EXEC, 42));
        assert!(SyscallEvent::from_bytes(&b).is_none());
    }

    #[test]
    fn the_object_is_built() {
        // With clang present (the test command installs it) the object must be real.
        if std::env::var_os("ARMLET_EBPF_STUB").is_none() {
            assert!(
                object_is_real(),
                "eBPF object is empty: is clang installed?"
            );
        }
    }

    #[test]
    fn paths_and_protocols() {
        assert_eq!(&path_bytes("/etc").unwrap()[..5], b"/etc\0");
        assert!(path_bytes(&"a".repeat(PATH_MAX)).is_err());
        assert_eq!(protocol_id("tcp"), Some(1));
        assert_eq!(protocol_name(0xff), Some("all"));
        for (name, _) in PROTOCOLS {
            assert!(armlet_policy::names::PROTOCOLS.contains(name), "{name}");
        }
    }
}
