//! Network rules for the fanotify enforcer: a cgroup-BPF `sock_create` program decides every
//! `socket()` call of the confined tasks in the kernel.
//!
//! Why a cgroup hook: without BPF-LSM there is no LSM hook to attach to, but cgroup socket
//! programs work on every kernel with `CONFIG_CGROUP_BPF` (this CI machine's included) and
//! see exactly the tasks of one cgroup subtree — the scope the fanotify enforcer confines.
//! The kernel decides alone, from a table user space precomputes ([`class_table`]): per
//! *socket class* (the socket's up-to-three KubeArmor protocol names, as `net.bpf.h` assigns
//! them) the verdict for "any executable", and per `fromSource` executable (matched by the
//! device and inode of the caller's exe file, as the BPF-LSM programs do) the verdict for that
//! source — both computed with the reference evaluator, so precedence, allow-lists and the
//! posture are exactly [`armlet_policy::eval::decide`]'s. User space only turns the reported
//! sockets into alerts.
//!
//! The program is attached through a BPF link (multi-attach by nature) owned by this struct:
//! dropping it (agent exit, crash) detaches it — nothing is pinned.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use armlet_ebpf::{self as abi, maps};
use armlet_policy::eval::{self, Access, Resource, Verdict};
use armlet_policy::ir::EffectiveRules;
use armlet_policy::model::{Action, Category, Source};
use aya::maps::{Array, HashMap, MapData, RingBuf};
use aya::programs::{CgroupAttachMode, CgroupSock};
use aya::{Ebpf, EbpfLoader};

use crate::alert::{DecisionEvent, WorkloadInfo};

/// Socket records read per poll.
const MAX_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "this build has no cgroup socket object (built without clang or with ARMLET_EBPF_STUB=1)"
    )]
    NoObject,
    #[error("loading the cgroup socket object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the cgroup socket object has no {0}")]
    Missing(&'static str),
    #[error("the cgroup socket program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("{0} fromSource executables in network rules (at most {max})", max = abi::SOCK_SOURCES - 1)]
    TooManySources(usize),
    #[error("opening the cgroup {path}: {source}")]
    Cgroup {
        path: String,
        source: std::io::Error,
    },
}

/// The socket → protocol ids mapping of `net.bpf.h`, position for position (the class key
/// depends on the positions).
pub fn socket_ids(family: u32, sock_type: u32, protocol: u32) -> [u16; 3] {
    const AF_INET: u32 = 2;
    const AF_INET6: u32 = 10;
    const AF_PACKET: u32 = 17;
    let id = |n: &str| abi::protocol_id(n).unwrap_or(0);
    let mut ids = [0u16; 3];
    let ty = sock_type & 0xf;
    if family == AF_PACKET {
        ids[0] = id("packet");
        if ty == 3 {
            ids[1] = id("raw");
        }
        return ids;
    }
    if family != AF_INET && family != AF_INET6 {
        return ids;
    }
    match protocol {
        1 => ids[2] = id("icmp"),
        58 => ids[2] = id("icmpv6"),
        _ => {}
    }
    match ty {
        1 => {
            ids[0] = id("stream");
            match protocol {
                0 | 6 => ids[1] = id("tcp"),
                132 => ids[1] = id("sctp"),
                _ => {}
            }
        }
        2 => {
            ids[0] = id("dgram");
            if protocol == 0 || protocol == 17 {
                ids[1] = id("udp");
            }
        }
        3 => ids[0] = id("raw"),
        4 => ids[0] = id("rdm"),
        5 => {
            ids[0] = id("seqpacket");
            if protocol == 132 {
                ids[1] = id("sctp");
            }
        }
        6 => ids[0] = id("dccp"),
        _ => {}
    }
    ids
}

/// The names of a class, most specific first (what alerts name).
fn names_of(ids: [u16; 3]) -> Vec<&'static str> {
    [ids[2], ids[1], ids[0]]
        .into_iter()
        .filter(|&i| i != 0)
        .filter_map(abi::protocol_name)
        .collect()
}

/// Decide a socket with several protocol names the way the BPF-LSM programs do: a Block rule
/// for any name denies; else an Audit rule alerts; else an Allow rule for any name permits;
/// else the posture (allow-list mode) decides. Returns the verdict and the name it is about.
pub fn class_verdict<'n>(
    eff: &EffectiveRules<'_>,
    names: &[&'n str],
    exe: &str,
    uid: u32,
) -> (Verdict, &'n str) {
    let mut best: Option<(u8, Verdict, &'n str)> = None;
    for &n in names {
        let v = eval::decide(
            eff,
            &Access {
                exe,
                resource: Resource::Protocol(n),
                uid,
                owner_uid: None,
                write: false,
            },
        );
        let rank = match v {
            Verdict::Rule {
                action: Action::Block,
                ..
            } => 5,
            Verdict::Rule {
                action: Action::Audit,
                ..
            } => 4,
            Verdict::Rule {
                action: Action::Allow,
                ..
            } => 3,
            Verdict::Posture { .. } => 2,
            Verdict::Pass => 1,
        };
        if best.is_none_or(|(r, _, _)| rank > r) {
            best = Some((rank, v, n));
        }
    }
    match best {
        // An Allow for one name overrides the posture another name would get.
        Some((_, v, n)) => (v, n),
        None => (Verdict::Pass, ""),
    }
}

/// Every socket class a `socket()` call can produce (families × types × protocols that
/// change the names).
fn all_classes() -> Vec<[u16; 3]> {
    let mut out: Vec<[u16; 3]> = Vec::new();
    for family in [2u32, 10, 17] {
        for ty in 1u32..=6 {
            for proto in [0u32, 1, 6, 17, 33, 58, 132, 255] {
                let ids = socket_ids(family, ty, proto);
                if ids[0] != 0 && !out.contains(&ids) {
                    out.push(ids);
                }
            }
        }
    }
    out
}

/// The kernel's tables for one workload: (class, source id) → `SOCK_DENY`/`SOCK_REPORT` bits
/// (source 0: any executable), and the fromSource executables by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassTable {
    pub entries: BTreeMap<(u32, u16), u32>,
    pub sources: Vec<(u16, String)>,
}

fn bits_of(v: Verdict) -> u32 {
    let mut bits = 0;
    if v.denies() {
        bits |= abi::SOCK_DENY;
    }
    if v.alerts() {
        bits |= abi::SOCK_REPORT;
    }
    bits
}

/// Compute the kernel's tables for one workload.
pub fn class_table(eff: &EffectiveRules<'_>) -> Result<ClassTable, NetError> {
    let mut paths: Vec<String> = Vec::new();
    let mut note = |s: &Source| {
        if let Source::Path(p) = s
            && !paths.contains(p)
        {
            paths.push(p.clone());
        }
    };
    for r in eff
        .rules
        .iter()
        .filter(|r| r.category() == Category::Network)
    {
        r.from_source.iter().for_each(&mut note);
    }
    for a in eff
        .allow_lists
        .iter()
        .filter(|a| a.category == Category::Network)
    {
        if let Some(s) = &a.source {
            note(s);
        }
    }
    if paths.len() >= abi::SOCK_SOURCES as usize {
        return Err(NetError::TooManySources(paths.len()));
    }
    let sources: Vec<(u16, String)> = paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| (u16::try_from(i + 1).unwrap_or(u16::MAX), p))
        .collect();
    let mut entries = BTreeMap::new();
    for ids in all_classes() {
        let names = names_of(ids);
        let class = abi::sock_class(ids);
        let any = bits_of(class_verdict(eff, &names, "", 0).0);
        if any != 0 {
            entries.insert((class, 0), any);
        }
        for (id, path) in &sources {
            let mine = bits_of(class_verdict(eff, &names, path, 0).0);
            if mine != any {
                entries.insert((class, *id), mine);
            }
        }
    }
    Ok(ClassTable { entries, sources })
}

/// The loaded and attached cgroup socket program.
pub struct SockGuard {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    enforce: bool,
    generation: u8,
    /// What the current generation holds (to delete it after the next swap).
    keys: Vec<abi::SockKey>,
    source_keys: Vec<abi::SourceKey>,
    classes: usize,
    /// fromSource paths by id (names the caller when it exited before its alert was built).
    source_paths: Vec<(u16, String)>,
}

impl std::fmt::Debug for SockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockGuard")
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

fn hash<'a, K: aya::Pod, V: aya::Pod>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<HashMap<&'a mut MapData, K, V>, NetError> {
    HashMap::try_from(ebpf.map_mut(name).ok_or(NetError::Missing(name))?).map_err(map_err(name))
}

fn settings(enforce: bool, generation: u8) -> abi::SockSettings {
    abi::SockSettings {
        enforce: u32::from(enforce),
        agent_tgid: std::process::id(),
        generation: u32::from(generation),
        _pad: 0,
    }
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> NetError {
    move |source| NetError::Map { name, source }
}

impl SockGuard {
    /// Load the program and attach it to the cgroup directory `cgroup` (its whole subtree).
    /// Nothing is denied until [`SockGuard::apply`] fills the table.
    pub fn attach(cgroup: &Path, enforce: bool) -> Result<SockGuard, NetError> {
        if !abi::sock_object_is_real() {
            return Err(NetError::NoObject);
        }
        let mut ebpf = EbpfLoader::new().load(abi::sock_object())?;
        {
            let mut st: Array<&mut MapData, abi::SockSettings> = Array::try_from(
                ebpf.map_mut(maps::SOCK_SETTINGS)
                    .ok_or(NetError::Missing(maps::SOCK_SETTINGS))?,
            )
            .map_err(map_err(maps::SOCK_SETTINGS))?;
            st.set(0, settings(enforce, 0), 0)
                .map_err(map_err(maps::SOCK_SETTINGS))?;
        }
        let dir = std::fs::File::open(cgroup).map_err(|source| NetError::Cgroup {
            path: cgroup.display().to_string(),
            source,
        })?;
        let prog: &mut CgroupSock = ebpf
            .program_mut(abi::SOCK_PROGRAM)
            .ok_or(NetError::Missing(abi::SOCK_PROGRAM))?
            .try_into()?;
        prog.load()?;
        // Through a BPF link (kernel >= 5.7), which coexists with other programs on the cgroup;
        // links take no attach flags.
        prog.attach(&dir, CgroupAttachMode::Single)?;
        let events = RingBuf::try_from(
            ebpf.take_map(maps::SOCK_EVENTS)
                .ok_or(NetError::Missing(maps::SOCK_EVENTS))?,
        )
        .map_err(map_err(maps::SOCK_EVENTS))?;
        Ok(SockGuard {
            ebpf,
            events,
            enforce,
            generation: 0,
            keys: Vec::new(),
            source_keys: Vec::new(),
            classes: 0,
            source_paths: Vec::new(),
        })
    }

    /// Replace the tables: write the next generation, flip the generation in the settings,
    /// then delete the previous generation (the kernel never sees a half-written policy).
    /// Returns the number of (class, source) entries.
    /// `root`: prefix under which the workload's paths are found (`/proc/<pid>/root` for a
    /// container, empty for the host) — fromSource executables are stat'ed there.
    pub fn apply(&mut self, eff: &EffectiveRules<'_>, root: &str) -> Result<usize, NetError> {
        let table = class_table(eff)?;
        let next = self.generation ^ 1;
        let mut source_keys = Vec::new();
        {
            let mut m: HashMap<&mut MapData, abi::SourceKey, u32> =
                hash(&mut self.ebpf, maps::SOCK_SOURCES)?;
            for (id, path) in &table.sources {
                // A source that does not exist on this node cannot run here: nothing to match.
                if let Some(k) = crate::enforce::bpf_lsm::source_key(&format!("{root}{path}"), next)
                {
                    m.insert(k, u32::from(*id), 0)
                        .map_err(map_err(maps::SOCK_SOURCES))?;
                    source_keys.push(k);
                }
            }
        }
        let mut keys = Vec::new();
        {
            let mut m: HashMap<&mut MapData, abi::SockKey, u32> =
                hash(&mut self.ebpf, maps::SOCK_POLICY)?;
            for ((class, source), bits) in &table.entries {
                let k = abi::SockKey {
                    class: *class,
                    source: *source,
                    generation: next,
                    _pad: 0,
                };
                m.insert(k, bits, 0).map_err(map_err(maps::SOCK_POLICY))?;
                keys.push(k);
            }
        }
        {
            let mut st: Array<&mut MapData, abi::SockSettings> = Array::try_from(
                self.ebpf
                    .map_mut(maps::SOCK_SETTINGS)
                    .ok_or(NetError::Missing(maps::SOCK_SETTINGS))?,
            )
            .map_err(map_err(maps::SOCK_SETTINGS))?;
            st.set(0, settings(self.enforce, next), 0)
                .map_err(map_err(maps::SOCK_SETTINGS))?;
        }
        // The old generation is no longer read: delete it (failures only leave dead entries).
        if let Some(m) = self.ebpf.map_mut(maps::SOCK_POLICY)
            && let Ok(mut m) = HashMap::<&mut MapData, abi::SockKey, u32>::try_from(m)
        {
            for k in &self.keys {
                let _ = m.remove(k);
            }
        }
        if let Some(m) = self.ebpf.map_mut(maps::SOCK_SOURCES)
            && let Ok(mut m) = HashMap::<&mut MapData, abi::SourceKey, u32>::try_from(m)
        {
            for k in &self.source_keys {
                let _ = m.remove(k);
            }
        }
        self.generation = next;
        self.classes = keys.len();
        self.keys = keys;
        self.source_keys = source_keys;
        self.source_paths = table.sources;
        Ok(self.classes)
    }

    /// Read the waiting socket records and turn each into an alert (or nothing).
    pub fn drain(
        &mut self,
        eff: &EffectiveRules<'_>,
        info: &WorkloadInfo,
        out: &mut Vec<DecisionEvent>,
    ) {
        for _ in 0..MAX_BATCH {
            let Some(item) = self.events.next() else {
                break;
            };
            let Some(ev) = abi::SockEvent::from_bytes(&item) else {
                continue;
            };
            drop(item);
            let known = self
                .source_paths
                .iter()
                .find(|(id, _)| u32::from(*id) == ev.source)
                .map(|(_, p)| p.as_str());
            if let Some(d) = socket_alert(eff, info, &ev, known) {
                out.push(d);
            }
        }
    }

    /// (denials, records dropped because the ring buffer was full).
    pub fn counters(&self) -> (u64, u64) {
        let read = |slot: u32| -> Option<u64> {
            let m: Array<&MapData, u64> =
                Array::try_from(self.ebpf.map(maps::SOCK_COUNTERS)?).ok()?;
            m.get(&slot, 0).ok()
        };
        (
            read(abi::SOCK_CNT_DENIALS).unwrap_or(0),
            read(abi::SOCK_CNT_DROPS).unwrap_or(0),
        )
    }
}

/// KubeArmor's form of a socket in alerts: `domain=AF_INET type=SOCK_RAW protocol=ICMP`
/// (the protocol by its armlet name, upper-case, when the socket has one).
pub fn socket_resource(family: u32, sock_type: u32, protocol: u32, name: &str) -> String {
    let domain = match family {
        1 => "AF_UNIX".to_string(),
        2 => "AF_INET".to_string(),
        10 => "AF_INET6".to_string(),
        17 => "AF_PACKET".to_string(),
        f => format!("{f}"),
    };
    let ty = match sock_type & 0xf {
        1 => "SOCK_STREAM".to_string(),
        2 => "SOCK_DGRAM".to_string(),
        3 => "SOCK_RAW".to_string(),
        4 => "SOCK_RDM".to_string(),
        5 => "SOCK_SEQPACKET".to_string(),
        6 => "SOCK_DCCP".to_string(),
        t => format!("{t}"),
    };
    let proto = match protocol {
        1 => "ICMP".to_string(),
        6 => "TCP".to_string(),
        17 => "UDP".to_string(),
        58 => "ICMPV6".to_string(),
        132 => "SCTP".to_string(),
        _ if !name.is_empty() => name.to_ascii_uppercase(),
        p => format!("{p}"),
    };
    format!("domain={domain} type={ty} protocol={proto}")
}

fn socket_alert(
    eff: &EffectiveRules<'_>,
    info: &WorkloadInfo,
    ev: &abi::SockEvent,
    known_source: Option<&str>,
) -> Option<DecisionEvent> {
    // The kernel matched the caller's exe against the sources already; a process that is
    // gone by now is still named by that source.
    let exe = known_source.map_or_else(
        || {
            std::fs::read_link(format!("/proc/{}/exe", ev.tgid))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        str::to_string,
    );
    let names = names_of(socket_ids(ev.family, ev.sock_type, ev.protocol));
    let (v, name) = class_verdict(eff, &names, &exe, ev.uid);
    let denied = ev.denied != 0;
    let (action, rule_id) = match v {
        Verdict::Rule { action, rule } => (action, Some(rule)),
        Verdict::Posture { action } => (action, None),
        // The kernel denied on a verdict user space no longer sees (a policy swap between the
        // two): still report the denial.
        Verdict::Pass if denied => (Action::Block, None),
        Verdict::Pass => return None,
    };
    if action == Action::Allow && !denied {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", ev.tgid)).unwrap_or_default();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    let comm = abi::c_str(&ev.comm);
    Some(DecisionEvent {
        timestamp: SystemTime::now(),
        category: Category::Network,
        rule_id,
        action,
        denied,
        pid: ev.tgid,
        ppid,
        uid: ev.uid,
        comm,
        source: exe,
        resource: socket_resource(ev.family, ev.sock_type, ev.protocol, name),
        workload: info.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::audit_tp::socket_protocols;
    use armlet_policy::ir::{AllowScope, Posture, Rule};
    use armlet_policy::model::Target;

    fn rule(id: u32, proto: &str, action: Action, src: Option<&str>) -> Rule {
        Rule {
            id,
            policy: 0,
            target: Target::Protocol(proto.into()),
            from_source: src
                .map(|s| vec![Source::Path(s.into())])
                .unwrap_or_default(),
            owner_only: false,
            read_only: false,
            action,
            severity: 1,
            tags: vec![],
            message: String::new(),
        }
    }

    #[test]
    fn ids_name_the_same_protocols_as_the_user_space_mapping() {
        for family in [1u32, 2, 10, 17] {
            for ty in 1u32..=6 {
                for proto in [0u32, 1, 6, 17, 33, 58, 132, 255] {
                    let mut a = names_of(socket_ids(family, ty, proto));
                    let mut b = socket_protocols(family, ty, proto);
                    a.sort_unstable();
                    b.sort_unstable();
                    assert_eq!(a, b, "family {family} type {ty} protocol {proto}");
                }
            }
        }
    }

    #[test]
    fn class_table_decides_any_executable_and_each_source() {
        let rules = [
            rule(1, "raw", Action::Block, None),
            rule(2, "icmp", Action::Audit, None),
            rule(3, "tcp", Action::Block, Some("/usr/bin/curl")),
        ];
        let eff = EffectiveRules {
            rules: rules.iter().collect(),
            allow_lists: Default::default(),
            posture: Posture::uniform(Action::Audit),
            native: Vec::new(),
        };
        let t = class_table(&eff).unwrap();
        assert_eq!(t.sources, vec![(1, "/usr/bin/curl".to_string())]);
        let c = |f, ty, p| abi::sock_class(socket_ids(f, ty, p));
        let both = abi::SOCK_DENY | abi::SOCK_REPORT;
        assert_eq!(t.entries.get(&(c(2, 3, 255), 0)), Some(&both));
        assert_eq!(
            t.entries.get(&(c(2, 3, 1), 0)),
            Some(&both),
            "raw icmp: Block wins"
        );
        assert_eq!(t.entries.get(&(c(2, 2, 1), 0)), Some(&abi::SOCK_REPORT));
        assert_eq!(
            t.entries.get(&(c(2, 1, 6), 0)),
            None,
            "tcp for anyone: not governed"
        );
        assert_eq!(
            t.entries.get(&(c(2, 1, 6), 1)),
            Some(&both),
            "tcp for curl: blocked"
        );
        assert_eq!(
            t.entries.get(&(c(2, 3, 255), 1)),
            None,
            "curl's raw: as for anyone"
        );
        assert_eq!(t.entries.get(&(c(2, 2, 17), 0)), None);
    }

    #[test]
    fn allow_lists_for_everyone_deny_the_rest_with_posture_block() {
        let rules = [rule(1, "tcp", Action::Allow, None)];
        let allow = [AllowScope {
            category: Category::Network,
            source: None,
        }];
        let eff = EffectiveRules {
            rules: rules.iter().collect(),
            allow_lists: allow.iter().collect(),
            posture: Posture::uniform(Action::Block),
            native: Vec::new(),
        };
        let t = class_table(&eff).unwrap();
        let c = |f, ty, p| abi::sock_class(socket_ids(f, ty, p));
        assert_eq!(t.entries.get(&(c(2, 1, 0), 0)), None, "tcp allowed");
        assert_eq!(
            t.entries.get(&(c(2, 2, 17), 0)),
            Some(&(abi::SOCK_DENY | abi::SOCK_REPORT)),
            "udp: posture block"
        );
    }

    #[test]
    fn a_source_allow_list_overrides_the_verdict_for_everyone() {
        // tcp only from curl (host-policy style): curl's other sockets follow the posture,
        // everyone else is not governed.
        let rules = [rule(1, "tcp", Action::Allow, Some("/usr/bin/curl"))];
        let allow = [AllowScope {
            category: Category::Network,
            source: Some(Source::Path("/usr/bin/curl".into())),
        }];
        let eff = EffectiveRules {
            rules: rules.iter().collect(),
            allow_lists: allow.iter().collect(),
            posture: Posture::uniform(Action::Block),
            native: Vec::new(),
        };
        let t = class_table(&eff).unwrap();
        let c = |f, ty, p| abi::sock_class(socket_ids(f, ty, p));
        assert_eq!(
            t.entries.get(&(c(2, 1, 0), 1)),
            None,
            "curl tcp: allowed like anyone"
        );
        assert_eq!(
            t.entries.get(&(c(2, 2, 17), 1)),
            Some(&(abi::SOCK_DENY | abi::SOCK_REPORT))
        );
        assert_eq!(t.entries.get(&(c(2, 2, 17), 0)), None);
    }
}
