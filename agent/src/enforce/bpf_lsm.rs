//! The BPF-LSM enforcer: loads armlet's eBPF object with aya, attaches the LSM programs, and
//! swaps policies atomically.
//!
//! Atomic swap: every rule key carries a generation bit. `apply` writes the complete next
//! generation while the kernel still reads the current one, flips `settings.generation` in one
//! array-map update, and only then deletes the old generation. If writing the next generation
//! fails (a map is full, say), what was written is removed and the current policy stays in
//! force untouched. There is no moment without a policy.
//!
//! Nothing is pinned: when the agent exits, the links close and the programs detach.

use std::os::fd::AsRawFd;
use std::time::Duration;

use armlet_ebpf::{self as abi, maps};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, Lsm};
use aya::{Btf, Ebpf, EbpfLoader};

use super::kernel_rules::{KernelRules, KernelRulesError};

/// Records read from one ring buffer per poll before control returns to the caller.
const MAX_BATCH: usize = 1024;

/// Map capacities, set at load time (DESIGN: bounded, sized from the bundle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub workloads: u32,
    pub sources: u32,
    pub path_rules: u32,
    pub id_rules: u32,
    pub allow_lists: u32,
}

impl Capacity {
    /// Room for two generations of `rules` (the swap writes the next before deleting the
    /// current) plus headroom for policy updates that grow, with floors for tiny policies.
    pub fn for_rules(rules: &KernelRules) -> Self {
        let room = |n: usize, floor: u32| {
            let n = u32::try_from(n).unwrap_or(u32::MAX / 4);
            n.saturating_mul(4).max(floor)
        };
        Capacity {
            workloads: 1024,
            sources: room(rules.sources.len(), 64),
            path_rules: room(rules.path_rules.len(), 1024),
            id_rules: room(rules.id_rules.len(), 256),
            allow_lists: room(rules.allow_lists.len(), 256),
        }
    }

    pub fn fits(&self, rules: &KernelRules) -> bool {
        let half = |cap: u32, n: usize| usize::try_from(cap / 2).is_ok_and(|c| n <= c);
        half(self.sources, rules.sources.len())
            && half(self.path_rules, rules.path_rules.len())
            && half(self.id_rules, rules.id_rules.len())
            && half(self.allow_lists, rules.allow_lists.len())
    }
}

/// What can go wrong loading or feeding the kernel programs.
#[derive(Debug, thiserror::Error)]
pub enum BpfLsmError {
    #[error(
        "this binary was built without its eBPF object (ARMLET_EBPF_STUB or no clang); refusing \
         to enforce"
    )]
    NoObject,
    #[error("kernel BTF is unavailable (/sys/kernel/btf/vmlinux): {0}")]
    Btf(#[from] aya::BtfError),
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program `{0}` is missing from the object")]
    MissingProgram(&'static str),
    #[error("eBPF map `{0}` is missing from the object")]
    MissingMap(&'static str),
    #[error("program `{name}` (LSM hook {hook}): {source}")]
    Program {
        name: &'static str,
        hook: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("the policy does not fit the kernel maps: {0}")]
    Rules(#[from] KernelRulesError),
    #[error("the policy needs larger maps than were sized at load time; restart the agent")]
    Capacity,
    #[error("waiting for events: {0}")]
    Poll(std::io::Error),
}

/// The settings the agent controls besides the rules.
#[derive(Debug, Clone, Copy)]
pub struct Controls {
    /// Deny Block decisions (false: report only).
    pub enforce: bool,
    pub host_workload: u32,
    pub host_confined: bool,
    pub agent_tgid: u32,
    pub supervisor_tgid: u32,
    /// Count every hook invocation (the functional probe).
    pub probe: bool,
    /// Alerts per second per workload and priority (0 = unlimited).
    pub alerts_per_sec: u32,
}

/// The loaded, attached programs and their maps.
pub struct BpfLsm {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    proc_events: Option<RingBuf<MapData>>,
    capacity: Capacity,
    generation: u8,
    written: Option<KernelRules>,
    /// Source keys of the generation in force (a container's root may be gone when they are
    /// deleted, so they are not looked up again).
    written_sources: Vec<abi::SourceKey>,
    /// cgroup id → workload entry currently in `armlet_workloads`.
    workloads: std::collections::BTreeMap<u64, abi::Workload>,
}

impl std::fmt::Debug for BpfLsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfLsm")
            .field("capacity", &self.capacity)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> BpfLsmError {
    move |source| BpfLsmError::Map { name, source }
}

impl BpfLsm {
    /// Load the object, size the maps, load and attach every LSM program. Until the first
    /// [`BpfLsm::apply`], settings are inactive and every hook passes.
    pub fn load(capacity: Capacity) -> Result<Self, BpfLsmError> {
        if !abi::object_is_real() {
            return Err(BpfLsmError::NoObject);
        }
        let btf = Btf::from_sys_fs()?;
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(&btf))
            .map_max_entries(maps::WORKLOADS, capacity.workloads)
            .map_max_entries(maps::SOURCES, capacity.sources)
            .map_max_entries(maps::PATH_RULES, capacity.path_rules)
            .map_max_entries(maps::ID_RULES, capacity.id_rules)
            .map_max_entries(maps::ALLOW_LISTS, capacity.allow_lists);
        let mut ebpf = loader.load(abi::object())?;
        for (name, hook) in abi::LSM_PROGRAMS {
            let prog: &mut Lsm = ebpf
                .program_mut(name)
                .ok_or(BpfLsmError::MissingProgram(name))?
                .try_into()
                .map_err(|source| BpfLsmError::Program { name, hook, source })?;
            prog.load(hook, &btf)
                .map_err(|source| BpfLsmError::Program { name, hook, source })?;
            prog.attach()
                .map_err(|source| BpfLsmError::Program { name, hook, source })?;
        }
        // The process monitor: observation only, so a kernel without these tracepoints still
        // enforces (alerts then have less context).
        let mut monitor = true;
        for (name, tp) in abi::TRACEPOINT_PROGRAMS {
            let attached = ebpf
                .program_mut(name)
                .ok_or(BpfLsmError::MissingProgram(name))
                .and_then(|p| {
                    let p: &mut BtfTracePoint =
                        p.try_into().map_err(|source| BpfLsmError::Program {
                            name,
                            hook: tp,
                            source,
                        })?;
                    p.load(tp, &btf).map_err(|source| BpfLsmError::Program {
                        name,
                        hook: tp,
                        source,
                    })?;
                    p.attach().map_err(|source| BpfLsmError::Program {
                        name,
                        hook: tp,
                        source,
                    })?;
                    Ok(())
                });
            if let Err(e) = attached {
                eprintln!("armlet: process monitor unavailable: {e}");
                monitor = false;
            }
        }
        let events = RingBuf::try_from(
            ebpf.take_map(maps::EVENTS)
                .ok_or(BpfLsmError::MissingMap(maps::EVENTS))?,
        )
        .map_err(map_err(maps::EVENTS))?;
        let proc_events = if monitor {
            Some(
                RingBuf::try_from(
                    ebpf.take_map(maps::PROC_EVENTS)
                        .ok_or(BpfLsmError::MissingMap(maps::PROC_EVENTS))?,
                )
                .map_err(map_err(maps::PROC_EVENTS))?,
            )
        } else {
            None
        };
        Ok(BpfLsm {
            ebpf,
            events,
            proc_events,
            capacity,
            generation: 0,
            written: None,
            written_sources: Vec::new(),
            workloads: std::collections::BTreeMap::new(),
        })
    }

    /// Replace the policy in force with `rules`, atomically (see the module docs). `roots`:
    /// where each workload's `fromSource` paths are looked up (a container's
    /// `/proc/<pid>/root`); workloads not listed use the agent's own root.
    pub fn apply(
        &mut self,
        rules: &KernelRules,
        roots: &std::collections::BTreeMap<u32, String>,
        controls: Controls,
    ) -> Result<(), BpfLsmError> {
        if !self.capacity.fits(rules) {
            return Err(BpfLsmError::Capacity);
        }
        let next = match self.written {
            None => 0,
            Some(_) => self.generation ^ 1,
        };
        let sources = source_keys(rules, roots, next);
        if let Err(e) = self.write_generation(rules, &sources, next) {
            // Best effort: remove the partial next generation; the current one is untouched.
            let keys: Vec<abi::SourceKey> = sources.iter().map(|(k, _)| *k).collect();
            let _ = self.delete_generation(rules, &keys, next);
            return Err(e);
        }
        let settings = abi::Settings {
            generation: next,
            enforce: u8::from(controls.enforce),
            active: 1,
            has_sources: u8::from(rules.has_sources()),
            host_workload: controls.host_workload,
            agent_tgid: controls.agent_tgid,
            supervisor_tgid: controls.supervisor_tgid,
            host_confined: u8::from(controls.host_confined),
            probe: u8::from(controls.probe),
            _pad: [0; 2],
            alerts_per_sec: controls.alerts_per_sec,
        };
        let mut array: Array<&mut MapData, abi::Settings> = Array::try_from(
            self.ebpf
                .map_mut(maps::SETTINGS)
                .ok_or(BpfLsmError::MissingMap(maps::SETTINGS))?,
        )
        .map_err(map_err(maps::SETTINGS))?;
        array.set(0, settings, 0).map_err(map_err(maps::SETTINGS))?;
        if let Some(old) = self.written.take() {
            let old_sources = std::mem::take(&mut self.written_sources);
            self.delete_generation(&old, &old_sources, self.generation)?;
        }
        self.generation = next;
        self.written = Some(rules.clone());
        self.written_sources = sources.into_iter().map(|(k, _)| k).collect();
        Ok(())
    }

    /// Make `armlet_workloads` hold exactly `entries` (cgroup id → workload): entries no
    /// longer wanted are removed first, then new and changed ones written, so a cgroup never
    /// points at an index whose rules are not in force (apply the rules before adding, after
    /// removing).
    pub fn set_workloads(
        &mut self,
        entries: &std::collections::BTreeMap<u64, abi::Workload>,
    ) -> Result<(), BpfLsmError> {
        let mut m: HashMap<&mut MapData, u64, abi::Workload> = HashMap::try_from(
            self.ebpf
                .map_mut(maps::WORKLOADS)
                .ok_or(BpfLsmError::MissingMap(maps::WORKLOADS))?,
        )
        .map_err(map_err(maps::WORKLOADS))?;
        for cg in self.workloads.keys() {
            if !entries.contains_key(cg) {
                match m.remove(cg) {
                    Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                    Err(e) => return Err(map_err(maps::WORKLOADS)(e)),
                }
            }
        }
        self.workloads.retain(|cg, _| entries.contains_key(cg));
        for (cg, w) in entries {
            if self.workloads.get(cg) != Some(w) {
                m.insert(cg, w, 0).map_err(map_err(maps::WORKLOADS))?;
                self.workloads.insert(*cg, *w);
            }
        }
        Ok(())
    }

    pub fn workload_capacity(&self) -> u32 {
        self.capacity.workloads
    }

    fn write_generation(
        &mut self,
        rules: &KernelRules,
        sources: &[(abi::SourceKey, u32)],
        gen_: u8,
    ) -> Result<(), BpfLsmError> {
        {
            let mut m: HashMap<&mut MapData, abi::SourceKey, u32> = self.hash(maps::SOURCES)?;
            for (key, id) in sources {
                m.insert(key, id, 0).map_err(map_err(maps::SOURCES))?;
            }
        }
        {
            let mut m: HashMap<&mut MapData, abi::PathKey, abi::RuleSet> =
                self.hash(maps::PATH_RULES)?;
            for ((wl, src, cat, kind, path), set) in &rules.path_rules {
                m.insert(path_key(*wl, *src, *cat, *kind, path, gen_)?, set, 0)
                    .map_err(map_err(maps::PATH_RULES))?;
            }
        }
        {
            let mut m: HashMap<&mut MapData, abi::IdKey, abi::RuleSet> =
                self.hash(maps::ID_RULES)?;
            for ((wl, src, cat, id), set) in &rules.id_rules {
                m.insert(id_key(*wl, *src, *cat, *id, gen_), set, 0)
                    .map_err(map_err(maps::ID_RULES))?;
            }
        }
        {
            let mut m: HashMap<&mut MapData, abi::PostureKey, abi::Posture> =
                self.hash(maps::ALLOW_LISTS)?;
            for ((wl, src, cat), action) in &rules.allow_lists {
                let v = abi::Posture {
                    action: *action,
                    _pad: [0; 7],
                };
                m.insert(posture_key(*wl, *src, *cat, gen_), v, 0)
                    .map_err(map_err(maps::ALLOW_LISTS))?;
            }
        }
        Ok(())
    }

    fn delete_generation(
        &mut self,
        rules: &KernelRules,
        sources: &[abi::SourceKey],
        gen_: u8,
    ) -> Result<(), BpfLsmError> {
        // Entries that were never written fail with "not found"; only the first real error is
        // reported, after trying every entry.
        let mut first: Option<BpfLsmError> = None;
        let mut note = |r: Result<(), aya::maps::MapError>, name: &'static str| {
            if let Err(e) = r
                && !matches!(e, aya::maps::MapError::KeyNotFound)
                && first.is_none()
            {
                first = Some(BpfLsmError::Map { name, source: e });
            }
        };
        {
            let mut m: HashMap<&mut MapData, abi::SourceKey, u32> = self.hash(maps::SOURCES)?;
            for key in sources {
                note(m.remove(key), maps::SOURCES);
            }
        }
        {
            let mut m: HashMap<&mut MapData, abi::PathKey, abi::RuleSet> =
                self.hash(maps::PATH_RULES)?;
            for (wl, src, cat, kind, path) in rules.path_rules.keys() {
                if let Ok(k) = path_key(*wl, *src, *cat, *kind, path, gen_) {
                    note(m.remove(&k), maps::PATH_RULES);
                }
            }
        }
        {
            let mut m: HashMap<&mut MapData, abi::IdKey, abi::RuleSet> =
                self.hash(maps::ID_RULES)?;
            for (wl, src, cat, id) in rules.id_rules.keys() {
                note(
                    m.remove(&id_key(*wl, *src, *cat, *id, gen_)),
                    maps::ID_RULES,
                );
            }
        }
        {
            let mut m: HashMap<&mut MapData, abi::PostureKey, abi::Posture> =
                self.hash(maps::ALLOW_LISTS)?;
            for (wl, src, cat) in rules.allow_lists.keys() {
                note(
                    m.remove(&posture_key(*wl, *src, *cat, gen_)),
                    maps::ALLOW_LISTS,
                );
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn hash<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, BpfLsmError> {
        HashMap::try_from(
            self.ebpf
                .map_mut(name)
                .ok_or(BpfLsmError::MissingMap(name))?,
        )
        .map_err(map_err(name))
    }

    /// Wait up to `timeout` for events; hand each decision to `on_decision` and each process
    /// monitor record to `on_proc` (process records first, so enrichment sees them). Returns
    /// how many records were read.
    pub fn poll_events(
        &mut self,
        timeout: Duration,
        mut on_decision: impl FnMut(abi::Event),
        mut on_proc: impl FnMut(abi::ProcEvent),
    ) -> Result<usize, BpfLsmError> {
        let mut n = self.drain(&mut on_decision, &mut on_proc);
        if n == 0 {
            let mut fds = vec![self.events.as_raw_fd()];
            if let Some(p) = &self.proc_events {
                fds.push(p.as_raw_fd());
            }
            wait_readable(&fds, timeout).map_err(BpfLsmError::Poll)?;
            n = self.drain(&mut on_decision, &mut on_proc);
        }
        Ok(n)
    }

    /// Read at most [`MAX_BATCH`] records per ring buffer, so a steady stream of events never
    /// keeps the caller from its other duties (reload, stop).
    fn drain(
        &mut self,
        on_decision: &mut impl FnMut(abi::Event),
        on_proc: &mut impl FnMut(abi::ProcEvent),
    ) -> usize {
        let mut n = 0;
        if let Some(rb) = &mut self.proc_events {
            let mut k = 0;
            while k < MAX_BATCH
                && let Some(item) = rb.next()
            {
                if let Some(ev) = abi::ProcEvent::from_bytes(&item) {
                    on_proc(ev);
                }
                k += 1;
            }
            n += k;
        }
        let mut k = 0;
        while k < MAX_BATCH
            && let Some(item) = self.events.next()
        {
            if let Some(ev) = abi::Event::from_bytes(&item) {
                on_decision(ev);
            }
            k += 1;
        }
        n + k
    }

    /// Kernel counters summed over CPUs: ring-buffer drops, denials, long paths, busy scratch.
    pub fn counters(&self) -> [u64; abi::CNT_MAX as usize] {
        read_counters(&self.ebpf)
    }
}

pub(crate) fn wait_readable(fds: &[std::os::fd::RawFd], timeout: Duration) -> std::io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let n = libc::nfds_t::try_from(pfds.len()).unwrap_or(0);
    // SAFETY: `pfds` is a valid, exclusively borrowed array of `n` pollfd structs for the call.
    #[allow(
        unsafe_code,
        reason = "poll(2) on the ring buffers' fds; no safe wrapper in std"
    )]
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), n, ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// The per-CPU counters of an object (`armlet_counters`), summed; zeros when unreadable.
pub(crate) fn read_counters(ebpf: &Ebpf) -> [u64; abi::CNT_MAX as usize] {
    let mut out = [0u64; abi::CNT_MAX as usize];
    let Some(map) = ebpf.map(maps::COUNTERS) else {
        return out;
    };
    let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map) else {
        return out;
    };
    for (slot, total) in out.iter_mut().enumerate() {
        if let Ok(values) = arr.get(&u32::try_from(slot).unwrap_or(0), 0) {
            *total = values.iter().sum();
        }
    }
    out
}

/// The device and inode of a fromSource executable, as the kernel sees them.
///
/// Limitation (documented in ARCHITECTURE.md): a binary replaced after the policy was applied
/// (a package upgrade) gets a new inode and is not matched until the policy is applied again.
/// The source keys of one generation: each (path, workload) use looked up under that
/// workload's root; a binary that does not exist cannot run, so it needs no key. When two
/// paths are the same file (`/bin/bash` and `/usr/bin/bash` on a merged-/usr system), the
/// path without symlinks keeps the file — the kernel reports executables by that path, so
/// rules written with it are the ones that can match — else the first one.
fn source_keys(
    rules: &KernelRules,
    roots: &std::collections::BTreeMap<u32, String>,
    gen_: u8,
) -> Vec<(abi::SourceKey, u32)> {
    let mut out: Vec<(abi::SourceKey, u32, bool)> = Vec::new();
    for (path, wl) in &rules.source_uses {
        let Some(id) = rules.sources.get(path) else {
            continue;
        };
        let root = roots.get(wl).map_or("", String::as_str);
        let Some(key) = source_key(&format!("{root}{path}"), gen_) else {
            continue;
        };
        let direct = !through_symlink(root, path);
        match out.iter_mut().find(|(k, _, _)| *k == key) {
            None => out.push((key, *id, direct)),
            Some(e) if direct && !e.2 => *e = (key, *id, direct),
            Some(_) => {}
        }
    }
    out.into_iter().map(|(k, id, _)| (k, id)).collect()
}

/// Does `path` (absolute, below `root`) pass through a symlink, the file itself included?
fn through_symlink(root: &str, path: &str) -> bool {
    let mut at = String::from(root);
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        at.push('/');
        at.push_str(comp);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

pub(crate) fn source_key(path: &str, gen_: u8) -> Option<abi::SourceKey> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    let dev = meta.dev();
    Some(abi::SourceKey {
        dev: abi::kernel_dev(libc::major(dev), libc::minor(dev)),
        ino: meta.ino(),
        generation: gen_,
        _pad: [0; 7],
    })
}

fn path_key(
    wl: u32,
    src: u32,
    cat: u8,
    kind: u8,
    path: &str,
    gen_: u8,
) -> Result<abi::PathKey, BpfLsmError> {
    Ok(abi::PathKey {
        workload: wl,
        source: src,
        generation: gen_,
        category: cat,
        kind,
        _pad0: 0,
        _pad1: 0,
        path: abi::path_bytes(path).map_err(|source| KernelRulesError::Path { rule: 0, source })?,
    })
}

fn id_key(wl: u32, src: u32, cat: u8, id: u16, gen_: u8) -> abi::IdKey {
    abi::IdKey {
        workload: wl,
        source: src,
        generation: gen_,
        category: cat,
        id,
        _pad: 0,
    }
}

fn posture_key(wl: u32, src: u32, cat: u8, gen_: u8) -> abi::PostureKey {
    abi::PostureKey {
        workload: wl,
        source: src,
        generation: gen_,
        category: cat,
        _pad0: 0,
        _pad1: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_named_through_a_symlink_yields_to_the_direct_path() {
        let d = std::env::temp_dir().join(format!("armlet-src-{}", std::process::id()));
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::fs::write(d.join("usr/bin/bash"), b"x").unwrap();
        let _ = std::fs::remove_file(d.join("bin"));
        std::os::unix::fs::symlink("usr/bin", d.join("bin")).unwrap();
        let root = d.to_str().unwrap().to_string();
        assert!(through_symlink(&root, "/bin/bash"));
        assert!(!through_symlink(&root, "/usr/bin/bash"));
        let mut rules = KernelRules::default();
        rules.sources.insert("/bin/bash".to_string(), 1);
        rules.sources.insert("/usr/bin/bash".to_string(), 2);
        rules.source_uses.insert(("/bin/bash".to_string(), 3));
        rules.source_uses.insert(("/usr/bin/bash".to_string(), 3));
        let roots = std::collections::BTreeMap::from([(3, root)]);
        let keys = source_keys(&rules, &roots, 0);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].1, 2, "the direct path's id keeps the file");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
