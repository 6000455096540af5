//! The enforcing daemon: load the chosen enforcer, apply the policy, turn kernel decisions
//! into alerts until asked to stop.
//!
//! Why this shape: the enforcement itself happens in the kernel; this loop only reads the
//! ring buffer, enriches each decision from `/proc` (bounded cache) and writes alerts. It never
//! blocks the kernel: a slow reader makes the ring buffer drop events (counted), never delays
//! a decision. SIGTERM/SIGINT end the loop; dropping the enforcer detaches every program.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use armlet_ebpf as abi;
use armlet_policy::ir::{CompiledPolicy, Workload};
use armlet_policy::model::{Action, Category};
use armlet_policy::names;
use armlet_policy::support::Enforcer;

use crate::alert::{AlertBuilder, AlertSink, DecisionEvent, Rotation, WorkloadInfo};
use crate::cmd::run::PolicySource;
use crate::enforce::audit_tp::{AuditDecider, AuditTracer};
use crate::enforce::bpf_lsm::{BpfLsm, Capacity, Controls};
use crate::enforce::fanotify::{ContainerState, Fanotify};
use crate::enforce::kernel_rules::KernelRules;
use crate::procinfo::ProcCache;
use crate::procmon::ProcTable;
use crate::workloads::{self, Container};

/// Most distinct `fromSource` executables one policy may name (bounds the sources map).
const MAX_SOURCES: usize = 1024;
/// Processes remembered for alert enrichment (from /proc, and from the process monitor).
const PROC_CACHE: usize = 4096;
const PROC_TABLE: usize = 16384;

fn exe_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
    }
}

fn install_signal_handlers() -> anyhow::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is fully initialised (zeroed, then handler and empty mask set).
        #[allow(unsafe_code, reason = "sigaction(2): std has no signal handling")]
        let r = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&raw mut sa.sa_mask);
            libc::sigaction(sig, &raw const sa, std::ptr::null_mut())
        };
        if r != 0 {
            anyhow::bail!(
                "cannot install a handler for signal {sig}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Where alerts go and how the daemon announces readiness.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub alerts_file: Option<PathBuf>,
    pub rotation: Rotation,
    pub ready_file: Option<PathBuf>,
    pub node: String,
    /// In-kernel alert budget per workload and priority (rule matches / default posture).
    pub alerts_per_sec: u32,
    /// Container naming (`--workloads`) and the table written for runners (`--workloads-file`).
    pub workload_map: Option<crate::workloads::WorkloadMap>,
    pub workloads_file: Option<PathBuf>,
    /// Publish alerts and take pushed bundles over MQTT (see `transport`).
    pub mqtt: Option<crate::transport::Config>,
}

/// Compile the policy for this node's kernel maps.
fn kernel_rules(ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<(KernelRules, usize)> {
    let eff = ir.effective(host);
    let mut rules = KernelRules::default();
    rules
        .add_workload(0, &eff, Enforcer::BpfLsm, MAX_SOURCES)
        .context("compiling the policy for the kernel")?;
    Ok((rules, eff.rules.len()))
}

/// What the daemon loop needs from an enforcement engine.
pub(crate) trait Engine {
    /// Replace the policy in force; an error leaves the current one in force. Returns a
    /// one-line summary.
    fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<String>;
    /// Wait up to `timeout` for activity; return the alerting decisions, updating `table`.
    fn poll(
        &mut self,
        timeout: Duration,
        table: &mut ProcTable,
    ) -> anyhow::Result<Vec<DecisionEvent>>;
    /// Counters for the stop message.
    fn counters_line(&self) -> String;
    /// Confine this set of containers; None when the engine confines the host only.
    fn set_containers(
        &mut self,
        _containers: Vec<Container>,
    ) -> Option<anyhow::Result<Vec<ContainerState>>> {
        None
    }
}

/// BPF-LSM in the kernel (`enforce`: deny; otherwise report-only). The host is workload 0;
/// every container the tracker reports gets an index of its own, its effective rules under
/// that index and its cgroup id in `armlet_workloads`.
struct LsmEngine {
    enforcer: BpfLsm,
    controls: Controls,
    ir: CompiledPolicy,
    host: Workload,
    cgroup2: String,
    /// Confined containers: (index, container, cgroup id).
    containers: Vec<(u32, Container, u64)>,
}

/// Kernel entries, the root each workload's `fromSource` paths are looked up in, and the rule
/// count per workload (index 0: the host).
type LsmRules = (KernelRules, BTreeMap<u32, String>, BTreeMap<u32, usize>);

/// The kernel entries of one policy for the host and `containers`.
fn lsm_rules(
    ir: &CompiledPolicy,
    host: &Workload,
    containers: &[(u32, Container, u64)],
) -> anyhow::Result<LsmRules> {
    let (mut rules, applicable) = kernel_rules(ir, host)?;
    let mut roots = BTreeMap::new();
    let mut counts = BTreeMap::from([(0, applicable)]);
    for (index, c, _) in containers {
        let eff = ir.effective(&c.workload());
        rules
            .add_workload(*index, &eff, Enforcer::BpfLsm, MAX_SOURCES)
            .with_context(|| format!("compiling the policy of container {}", c.name))?;
        roots.insert(*index, c.root());
        counts.insert(*index, eff.rules.len());
    }
    Ok((rules, roots, counts))
}

impl LsmEngine {
    /// Write rules for the host and `containers`, then point their cgroups at them.
    fn write(
        &mut self,
        ir: &CompiledPolicy,
        host: &Workload,
        containers: &[(u32, Container, u64)],
    ) -> anyhow::Result<(KernelRules, BTreeMap<u32, usize>)> {
        let (rules, roots, counts) = lsm_rules(ir, host, containers)?;
        let mut controls = self.controls;
        controls.host_confined = counts.get(&0).is_some_and(|n| *n > 0);
        // Cgroups of containers that are gone (or whose index moved) stop pointing at rules
        // first; new ones are added after their rules are in force.
        let keep: BTreeMap<u64, abi::Workload> = containers
            .iter()
            .filter(|(i, c, _)| {
                self.containers
                    .iter()
                    .any(|(j, d, _)| i == j && c.id == d.id)
            })
            .map(|(i, _, cg)| (*cg, workload_entry(*i, &counts)))
            .collect();
        self.enforcer
            .set_workloads(&keep)
            .context("updating the workload map")?;
        self.enforcer
            .apply(&rules, &roots, controls)
            .context("applying the policy")?;
        let all: BTreeMap<u64, abi::Workload> = containers
            .iter()
            .map(|(i, _, cg)| (*cg, workload_entry(*i, &counts)))
            .collect();
        self.enforcer
            .set_workloads(&all)
            .context("updating the workload map")?;
        self.controls = controls;
        self.containers = containers.to_vec();
        Ok((rules, counts))
    }
}

fn workload_entry(index: u32, counts: &BTreeMap<u32, usize>) -> abi::Workload {
    abi::Workload {
        index,
        confined: u8::from(counts.get(&index).is_some_and(|n| *n > 0)),
        _pad: [0; 3],
    }
}

impl Engine for LsmEngine {
    fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<String> {
        let containers = self.containers.clone();
        let (rules, counts) = self.write(ir, host, &containers)?;
        self.ir = ir.clone();
        self.host = host.clone();
        Ok(format!(
            "{} rules for this node{} ({} path keys, {} id keys, {} allow-lists, {} \
             sources); {} rules matched in user space only",
            counts.get(&0).copied().unwrap_or(0),
            if containers.is_empty() {
                String::new()
            } else {
                format!(", {} containers", containers.len())
            },
            rules.path_rules.len(),
            rules.id_rules.len(),
            rules.allow_lists.len(),
            rules.sources.len(),
            rules.not_in_kernel.len()
        ))
    }

    fn set_containers(
        &mut self,
        found: Vec<Container>,
    ) -> Option<anyhow::Result<Vec<ContainerState>>> {
        // Stable indices: a known container keeps its index; a new one takes the lowest free
        // index (1.. below the map's capacity; the rest are reported, not confined).
        let cap = self.enforcer.workload_capacity();
        let mut next: Vec<(u32, Container, u64)> = Vec::new();
        let mut states = Vec::new();
        for c in &found {
            if let Some((i, _, _)) = self.containers.iter().find(|(_, d, _)| d.id == c.id) {
                next.push((
                    *i,
                    c.clone(),
                    workloads::cgroup_id(&self.cgroup2, &c.cgroup),
                ));
            }
        }
        for c in &found {
            if next.iter().any(|(_, d, _)| d.id == c.id) {
                continue;
            }
            let cg = workloads::cgroup_id(&self.cgroup2, &c.cgroup);
            let free = (1..cap).find(|i| !next.iter().any(|(j, _, _)| j == i));
            match free {
                Some(i) if cg != 0 && cg != 1 => next.push((i, c.clone(), cg)),
                Some(_) => states.push(ContainerState {
                    id: c.id.clone(),
                    rules: 0,
                    enforced: false,
                    problems: vec![format!(
                        "cgroup {} not found (or the root cgroup)",
                        c.cgroup
                    )],
                }),
                None => states.push(ContainerState {
                    id: c.id.clone(),
                    rules: 0,
                    enforced: false,
                    problems: vec![format!("more than {} workloads", cap - 1)],
                }),
            }
        }
        next.sort_by_key(|(i, _, _)| *i);
        let (ir, host) = (self.ir.clone(), self.host.clone());
        Some(self.write(&ir, &host, &next).map(|(_, counts)| {
            states.extend(next.iter().map(|(i, c, _)| ContainerState {
                id: c.id.clone(),
                rules: counts.get(i).copied().unwrap_or(0),
                enforced: true,
                problems: Vec::new(),
            }));
            states
        }))
    }

    fn poll(
        &mut self,
        timeout: Duration,
        table: &mut ProcTable,
    ) -> anyhow::Result<Vec<DecisionEvent>> {
        let mut out = Vec::new();
        let containers = &self.containers;
        self.enforcer.poll_events(
            timeout,
            |ev| {
                if let Some(mut d) = decision(&ev)
                    && d.alerts()
                {
                    if let Some((_, c, _)) = containers
                        .iter()
                        .find(|(i, _, cg)| *cg == ev.h.cgroup_id && *i == ev.h.workload)
                    {
                        d.workload = c.info();
                    }
                    // A capability denied while creating a raw/packet socket: also the Network
                    // operation it stopped (KubeArmor reports the socket).
                    if d.category == Category::Capabilities && ev.sock != 0 {
                        let mut n = d.clone();
                        n.category = Category::Network;
                        n.resource = crate::enforce::fanotify::net::socket_resource(
                            ev.sock >> 16,
                            (ev.sock >> 8) & 0xff,
                            ev.sock & 0xff,
                            "",
                        );
                        out.push(d);
                        out.push(n);
                    } else {
                        out.push(d);
                    }
                }
            },
            |pev| table.apply(&pev, exe_of),
        )?;
        Ok(out)
    }

    fn counters_line(&self) -> String {
        let c = self.enforcer.counters();
        format!(
            "{} denials, {} events dropped (ring buffer full), {} alerts throttled, {} paths too \
             long, {} process records dropped",
            c[abi::CNT_DENIALS as usize],
            c[abi::CNT_RINGBUF_DROPS as usize],
            c[abi::CNT_THROTTLED as usize],
            c[abi::CNT_LONG_PATHS as usize],
            c[abi::CNT_PROC_DROPS as usize],
        )
    }
}

/// Tracepoints and user-space decisions (report-only).
struct TracepointEngine {
    tracer: AuditTracer,
    ir: CompiledPolicy,
    host: Workload,
}

impl Engine for TracepointEngine {
    fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<String> {
        self.ir = ir.clone();
        self.host = host.clone();
        Ok(format!(
            "{} rules for this node, matched in user space",
            ir.effective(host).rules.len()
        ))
    }

    fn poll(
        &mut self,
        timeout: Duration,
        table: &mut ProcTable,
    ) -> anyhow::Result<Vec<DecisionEvent>> {
        let decider = AuditDecider::new(&self.ir, &self.host);
        let table = std::cell::RefCell::new(table);
        let out = std::cell::RefCell::new(Vec::new());
        self.tracer.poll(
            timeout,
            &mut |pev| {
                // Decide an exec before the table learns the new program (fromSource is the
                // caller's executable).
                if let Some(d) = decider.exec(&pev, &table.borrow()) {
                    out.borrow_mut().push(d);
                }
                table.borrow_mut().apply(&pev, exe_of);
            },
            &mut |sev| {
                if let Some(d) = decider.syscall(&sev, &table.borrow()) {
                    out.borrow_mut().push(d);
                }
            },
        )?;
        Ok(out.into_inner())
    }

    fn counters_line(&self) -> String {
        let c = self.tracer.counters();
        format!(
            "{} syscall records dropped (ring buffer full), {} unreadable paths, {} process \
             records dropped",
            c[abi::CNT_RINGBUF_DROPS as usize],
            c[abi::CNT_LONG_PATHS as usize],
            c[abi::CNT_PROC_DROPS as usize],
        )
    }
}

/// fanotify permission events, decided in user space (`enforce`: deny; otherwise report-only).
struct FanotifyEngine {
    enforcer: Fanotify,
}

impl Engine for FanotifyEngine {
    fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<String> {
        let applicable = ir.effective(host).rules.len();
        let plan = self
            .enforcer
            .apply(ir, host)
            .context("applying the policy")?
            .clone();
        let mut summary = format!(
            "{applicable} rules for this node; {} fanotify marks ({} directories, {} mounts); {} \
             socket classes in the cgroup socket program",
            plan.marks.len(),
            plan.marks
                .keys()
                .filter(|o| matches!(o, crate::enforce::fanotify::marks::Object::Dir(_)))
                .count(),
            plan.marks
                .keys()
                .filter(|o| matches!(o, crate::enforce::fanotify::marks::Object::Mount(_)))
                .count(),
            self.enforcer.net_stats().0,
        );
        for u in &plan.unmarked {
            summary.push_str(&format!("; not watched: {u}"));
        }
        Ok(summary)
    }

    fn poll(
        &mut self,
        timeout: Duration,
        _table: &mut ProcTable,
    ) -> anyhow::Result<Vec<DecisionEvent>> {
        Ok(self.enforcer.alerts(timeout))
    }

    fn set_containers(
        &mut self,
        containers: Vec<Container>,
    ) -> Option<anyhow::Result<Vec<ContainerState>>> {
        Some(
            self.enforcer
                .set_containers(containers)
                .context("confining the containers"),
        )
    }

    fn counters_line(&self) -> String {
        let c = self.enforcer.counters();
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (_, (sock_denials, sock_drops)) = self.enforcer.net_stats();
        format!(
            "{} permission events ({} on files no rule names, {} outside the scope, {} decided, \
             {} denied, {} unattributed and allowed), {} alerts dropped (queue full), {} queue \
             overflows, {} answers failed; {} sockets denied, {} socket records dropped",
            g(&c.events),
            g(&c.ungoverned),
            g(&c.out_of_scope),
            g(&c.decided),
            g(&c.denied),
            g(&c.unattributed),
            g(&c.alerts_dropped),
            g(&c.overflows),
            g(&c.answer_errors),
            sock_denials,
            sock_drops,
        )
    }
}

/// Enforce with fanotify permission events (`enforcer_kind` Fanotify: deny; Audit:
/// report-only). `scope`: the cgroup-v2 path standing in for the host.
pub fn run_fanotify(
    ir: CompiledPolicy,
    host: &Workload,
    source: &PolicySource,
    enforcer_kind: Enforcer,
    scope: Option<String>,
    out: &Outputs,
) -> anyhow::Result<()> {
    let enforce = enforcer_kind == Enforcer::Fanotify;
    let mode = match (&scope, enforce) {
        (Some(s), true) => format!("enforcing with fanotify for the tasks of cgroup {s}"),
        (None, true) => "enforcing with fanotify".to_string(),
        (Some(s), false) => {
            format!("auditing (report-only) with fanotify for the tasks of cgroup {s}")
        }
        (None, false) => "auditing (report-only) with fanotify".to_string(),
    };
    let cgroup2 = crate::probe::cgroup2_mount()
        .context("the fanotify enforcer's socket program needs a cgroup-v2 mount")?;
    let cgroup_dir = std::path::PathBuf::from(format!(
        "{}{}",
        cgroup2.trim_end_matches('/'),
        scope.as_deref().unwrap_or("/")
    ));
    let enforcer = Fanotify::start(&ir, host, scope, &cgroup_dir, &cgroup2, enforce)
        .context("starting the fanotify enforcer")?;
    serve(
        FanotifyEngine { enforcer },
        ir,
        host,
        source,
        enforcer_kind,
        &mode,
        out,
    )
}

/// Enforce with the BPF-LSM programs (`enforcer_kind` BpfLsm: deny; Audit: report-only).
pub fn run_bpf_lsm(
    ir: CompiledPolicy,
    host: &Workload,
    source: &PolicySource,
    enforcer_kind: Enforcer,
    out: &Outputs,
) -> anyhow::Result<()> {
    // Map sizes: the host, the containers running now and those the mapping file names (so
    // containers that start later fit without a restart).
    let cgroup2 = crate::probe::cgroup2_mount().unwrap_or_default();
    let roots: Vec<PathBuf> = workloads::RUNC_ROOTS.iter().map(PathBuf::from).collect();
    let mut sizing = kernel_rules(&ir, host)?.0;
    let running = workloads::discover(&roots, &cgroup2, out.workload_map.as_ref());
    let expected = out
        .workload_map
        .as_ref()
        .map(|m| m.entries.iter().map(|e| e.workload()).collect::<Vec<_>>())
        .unwrap_or_default();
    for (i, w) in running
        .iter()
        .map(Container::workload)
        .chain(expected)
        .enumerate()
    {
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        sizing
            .add_workload(index, &ir.effective(&w), Enforcer::BpfLsm, MAX_SOURCES)
            .context("compiling the policy for the kernel")?;
    }
    let enforcer =
        BpfLsm::load(Capacity::for_rules(&sizing)).context("starting the BPF-LSM enforcer")?;
    let controls = Controls {
        enforce: enforcer_kind == Enforcer::BpfLsm,
        host_workload: 0,
        host_confined: false,
        agent_tgid: std::process::id(),
        supervisor_tgid: std::os::unix::process::parent_id(),
        probe: false,
        alerts_per_sec: out.alerts_per_sec,
    };
    let engine = LsmEngine {
        enforcer,
        controls,
        ir: ir.clone(),
        host: host.clone(),
        cgroup2,
        containers: Vec::new(),
    };
    let mode = if enforcer_kind == Enforcer::BpfLsm {
        "enforcing with bpf-lsm"
    } else {
        "auditing (report-only) with the bpf-lsm programs"
    };
    serve(engine, ir, host, source, enforcer_kind, mode, out)
}

/// Observe with tracepoints and decide in user space; nothing is blocked.
pub fn run_tracepoint_audit(
    ir: CompiledPolicy,
    host: &Workload,
    source: &PolicySource,
    out: &Outputs,
) -> anyhow::Result<()> {
    let tracer = AuditTracer::load().context("starting the tracepoint audit enforcer")?;
    let engine = TracepointEngine {
        tracer,
        ir: ir.clone(),
        host: host.clone(),
    };
    serve(
        engine,
        ir,
        host,
        source,
        Enforcer::Audit,
        "auditing (report-only) with tracepoints; nothing is blocked",
        out,
    )
}

/// How often the runtime state directories are rescanned for new and gone containers.
const RESCAN: Duration = Duration::from_millis(500);

/// Follows the containers on the node and hands them to the engine.
struct ContainerTracker {
    map: Option<workloads::WorkloadMap>,
    table: Option<PathBuf>,
    roots: Vec<PathBuf>,
    cgroup2: String,
    known: Vec<Container>,
    last: Option<std::time::Instant>,
    unsupported_noted: bool,
    /// Rescans left in which an unchanged set is handed to the engine again, because some
    /// container was not enforced yet (a container found while `runc init` still runs has
    /// not entered its AppArmor profile; a cgroup may appear late).
    retries: u32,
    /// Container ids that were not enforced at the last update.
    pending: Vec<String>,
}

/// Rescans (at [`RESCAN`] each) in which a not-yet-enforced container is tried again.
const RETRIES: u32 = 20;

impl ContainerTracker {
    fn new(out: &Outputs) -> Self {
        ContainerTracker {
            map: out.workload_map.clone(),
            table: out.workloads_file.clone(),
            roots: workloads::RUNC_ROOTS.iter().map(PathBuf::from).collect(),
            cgroup2: crate::probe::cgroup2_mount().unwrap_or_default(),
            known: Vec::new(),
            last: None,
            unsupported_noted: false,
            retries: 0,
            pending: Vec::new(),
        }
    }

    /// Rescan (at most every [`RESCAN`] unless `force`), confine what changed, rewrite the
    /// table. Errors are reported and the previous confinement stays.
    fn refresh(&mut self, engine: &mut impl Engine, ir: &CompiledPolicy, force: bool) {
        if !force && self.last.is_some_and(|t| t.elapsed() < RESCAN) {
            return;
        }
        self.last = Some(std::time::Instant::now());
        if self.cgroup2.is_empty() {
            return;
        }
        let found = workloads::discover(&self.roots, &self.cgroup2, self.map.as_ref());
        let retry = found == self.known && self.retries > 0;
        if !force && found == self.known && !retry {
            return;
        }
        if retry {
            self.retries -= 1;
        }
        let states = match engine.set_containers(found.clone()) {
            None => {
                if !found.is_empty() && !self.unsupported_noted {
                    eprintln!(
                        "armlet: {} container(s) found; this enforcer confines the host only \
                         (containers: bpf-lsm, apparmor, fanotify)",
                        found.len()
                    );
                    self.unsupported_noted = true;
                }
                Vec::new()
            }
            Some(Ok(states)) => states,
            Some(Err(e)) => {
                eprintln!("armlet: containers not updated: {e:#}");
                return;
            }
        };
        for c in found
            .iter()
            .filter(|c| !self.known.contains(c) || self.pending.contains(&c.id))
        {
            let st = states.iter().find(|s| s.id == c.id);
            let was_pending = self.pending.contains(&c.id) && self.known.contains(c);
            if was_pending && !st.is_some_and(|s| s.enforced) {
                continue; // still not enforced: said already
            }
            eprintln!(
                "armlet: container {} ({}, namespace {}, cgroup {}): {}",
                c.name,
                c.id,
                c.namespace,
                c.cgroup,
                match st {
                    Some(s) if s.enforced => format!("{} rules in force", s.rules),
                    Some(s) => format!("NOT fully enforced: {}", s.problems.join("; ")),
                    None => "not confined by this enforcer".to_string(),
                }
            );
        }
        let pending: Vec<String> = states
            .iter()
            .filter(|s| !s.enforced)
            .map(|s| s.id.clone())
            .collect();
        if pending.is_empty() {
            self.retries = 0;
        } else if !retry {
            self.retries = RETRIES;
        }
        self.pending = pending;
        if let Some(path) = &self.table {
            let rows: Vec<workloads::TableRow> = found
                .iter()
                .map(|c| {
                    let st = states.iter().find(|s| s.id == c.id);
                    workloads::TableRow {
                        container_name: c.name.clone(),
                        container_id: c.id.clone(),
                        namespace: c.namespace.clone(),
                        pod: c.pod.clone().unwrap_or_default(),
                        labels: c.labels.clone(),
                        cgroup: c.cgroup.clone(),
                        cgroup_id: workloads::cgroup_id(&self.cgroup2, &c.cgroup),
                        rules: st
                            .map_or_else(|| ir.effective(&c.workload()).rules.len(), |s| s.rules),
                        enforced: st.is_some_and(|s| s.enforced),
                    }
                })
                .collect();
            if let Err(e) = workloads::write_table(path, &rows) {
                eprintln!("armlet: {e}");
            }
        }
        self.known = found;
    }
}

/// Enforce with an AppArmor profile for the host (`armlet-host`, attached to `/**`) and one per
/// container (`armlet-<namespace>-<container>`, attached by the runtime).
pub fn run_apparmor(
    ir: CompiledPolicy,
    host: &Workload,
    source: &PolicySource,
    out: &Outputs,
) -> anyhow::Result<()> {
    let engine = crate::enforce::apparmor::engine::AppArmorEngine::new(
        ir.clone(),
        host.clone(),
        out.workload_map.as_ref(),
    )
    .context("starting the AppArmor enforcer")?;
    serve(
        engine,
        ir,
        host,
        source,
        Enforcer::AppArmor,
        "enforcing with apparmor",
        out,
    )
}

/// The daemon loop shared by every engine: apply, announce readiness, turn decisions into
/// alerts, reload on SIGHUP, stop on SIGTERM/SIGINT.
fn serve(
    mut engine: impl Engine,
    mut ir: CompiledPolicy,
    host: &Workload,
    source: &PolicySource,
    enforcer_kind: Enforcer,
    mode: &str,
    out: &Outputs,
) -> anyhow::Result<()> {
    let summary = engine.apply(&ir, host)?;
    let mut tracker = ContainerTracker::new(out);
    tracker.refresh(&mut engine, &ir, true);
    install_signal_handlers()?;
    let mut sink = AlertSink::new().with_stdout();
    if let Some(path) = &out.alerts_file {
        sink = sink
            .with_file(path, out.rotation)
            .with_context(|| format!("opening {}", path.display()))?;
    }
    eprintln!("armlet: {mode}: {summary}");
    if let Some(ready) = &out.ready_file {
        std::fs::write(ready, "ready\n").with_context(|| format!("writing {}", ready.display()))?;
    }

    let mut mqtt = match &out.mqtt {
        Some(c) => Some(
            crate::transport::Session::start(c, source, enforcer_kind, &ir)
                .context("starting the MQTT transport")?,
        ),
        None => None,
    };
    let mut builder = AlertBuilder::new(&ir, enforcer_kind, out.node.clone());
    let mut procs = ProcCache::new(PROC_CACHE);
    let mut monitor = ProcTable::new(PROC_TABLE);
    while !STOP.load(Ordering::SeqCst) {
        if RELOAD.swap(false, Ordering::SeqCst) {
            // Any failure keeps the policy in force: kernel maps are only swapped after the
            // new policy verified, compiled and was written completely.
            let result = source
                .load()
                .and_then(|(next, origin)| Ok((engine.apply(&next, host)?, next, origin)));
            match result {
                Ok((summary, next, origin)) => {
                    ir = next;
                    builder = AlertBuilder::new(&ir, enforcer_kind, out.node.clone());
                    if let Some(m) = &mqtt {
                        m.reloaded(&ir);
                    }
                    eprintln!("armlet: reloaded {origin}: {summary}");
                    for d in &armlet_policy::support::plan(enforcer_kind, &ir).downgrades {
                        eprintln!(
                            "armlet: downgrade: {} {} {} [{}]: {:?}",
                            d.action.as_str(),
                            d.category.as_str(),
                            d.resource,
                            d.policy,
                            d.support
                        );
                    }
                }
                Err(e) => {
                    eprintln!("armlet: reload refused, the current policy stays in force: {e:#}")
                }
            }
        }
        tracker.refresh(&mut engine, &ir, false);
        // A pushed bundle goes through the same apply as a reload; a refusal changes nothing.
        if let Some(m) = mqtt.as_mut()
            && let Some(next) = m.poll_push(|p| engine.apply(p, host).map_err(|e| format!("{e:#}")))
        {
            ir = next;
            builder = AlertBuilder::new(&ir, enforcer_kind, out.node.clone());
        }
        for d in engine.poll(Duration::from_millis(200), &mut monitor)? {
            let mut info = procs.lookup(d.pid, d.ppid);
            monitor.fill(&mut info);
            let alert = builder.build(&d, &info);
            sink.write(&alert);
            if let Some(m) = &mqtt {
                m.submit(&alert);
            }
        }
    }
    let (hits, misses) = procs.stats();
    let (known, alive, records) = monitor.stats();
    eprintln!(
        "armlet: stopping: {}, {} alerts written, {} alert writes failed, process cache \
         {hits}/{} hits, process monitor {records} records ({known} processes known, {alive} \
         alive)",
        engine.counters_line(),
        sink.stats().written,
        sink.stats().dropped,
        hits + misses,
    );
    if let Some(m) = mqtt.take() {
        eprintln!("armlet: {}", m.counters_line());
    }
    if let Some(ready) = &out.ready_file {
        let _ = std::fs::remove_file(ready);
    }
    Ok(())
}

/// Decode a kernel decision into the enforcer-independent form.
pub fn decision(ev: &abi::Event) -> Option<DecisionEvent> {
    if ev.h.kind != abi::EV_DECISION {
        return None;
    }
    let category = match ev.category {
        abi::CAT_PROCESS => Category::Process,
        abi::CAT_FILE => Category::File,
        abi::CAT_NETWORK => Category::Network,
        abi::CAT_CAPABILITY => Category::Capabilities,
        _ => return None,
    };
    let action = match ev.action {
        abi::ACT_ALLOW => Action::Allow,
        abi::ACT_AUDIT => Action::Audit,
        abi::ACT_BLOCK => Action::Block,
        _ => return None,
    };
    let resource = match category {
        Category::Process | Category::File => abi::c_str(&ev.target),
        Category::Network => {
            let name = u16::try_from(ev.id)
                .ok()
                .and_then(abi::protocol_name)
                .unwrap_or("unknown");
            if ev.sock == 0 {
                name.to_string()
            } else {
                // KubeArmor's form: `domain=AF_INET type=SOCK_DGRAM protocol=UDP`.
                crate::enforce::fanotify::net::socket_resource(
                    ev.sock >> 16,
                    (ev.sock >> 8) & 0xff,
                    ev.sock & 0xff,
                    name,
                )
            }
        }
        _ => names::CAPABILITIES
            .iter()
            .find(|(_, n)| u32::from(*n) == ev.id)
            .map_or_else(|| format!("cap{}", ev.id), |(name, _)| (*name).to_string()),
    };
    Some(DecisionEvent {
        timestamp: SystemTime::now(),
        category,
        rule_id: (ev.h.rule_id != abi::POSTURE_RULE).then_some(ev.h.rule_id),
        action,
        denied: ev.h.ret != 0,
        pid: ev.h.pid,
        ppid: ev.h.ppid,
        uid: ev.h.uid,
        comm: abi::c_str(&ev.comm),
        source: abi::c_str(&ev.source),
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

    fn event(category: u8, action: u8, rule: u32, id: u32, target: &str) -> abi::Event {
        let mut e = abi::Event {
            h: abi::EventHeader {
                kind: abi::EV_DECISION,
                pid: 10,
                ppid: 1,
                ret: -1,
                rule_id: rule,
                cgroup_id: 1,
                ..abi::EventHeader::default()
            },
            tid: 10,
            category,
            action,
            write: 0,
            op: 0,
            id,
            sock: 0,
            comm: [0; 16],
            source: [0; abi::PATH_MAX],
            target: [0; abi::PATH_MAX],
        };
        e.target = abi::path_bytes(target).unwrap();
        e
    }

    #[test]
    fn kernel_events_decode_to_decisions() {
        let d = decision(&event(abi::CAT_FILE, abi::ACT_BLOCK, 3, 0, "/etc/shadow")).unwrap();
        assert_eq!(
            (d.category, d.action, d.rule_id, d.denied),
            (Category::File, Action::Block, Some(3), true)
        );
        assert_eq!(d.resource, "/etc/shadow");
        let d = decision(&event(
            abi::CAT_NETWORK,
            abi::ACT_BLOCK,
            abi::POSTURE_RULE,
            5,
            "",
        ))
        .unwrap();
        assert_eq!((d.rule_id, d.resource.as_str()), (None, "raw"));
        let d = decision(&event(abi::CAT_CAPABILITY, abi::ACT_AUDIT, 1, 13, "")).unwrap();
        assert_eq!(d.resource, "net_raw");
        assert!(decision(&event(9, abi::ACT_BLOCK, 1, 0, "")).is_none());
    }
}
