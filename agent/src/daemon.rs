//! The enforcing daemon: load the chosen enforcer, apply the policy, turn kernel decisions
//! into alerts until asked to stop.
//!
//! Why this shape: the enforcement itself happens in the kernel; this loop only reads the
//! ring buffer, enriches each decision from `/proc` (bounded cache) and writes alerts. It never
//! blocks the kernel: a slow reader makes the ring buffer drop events (counted), never delays
//! a decision. SIGTERM/SIGINT end the loop; dropping the enforcer detaches every program.

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

/// BPF-LSM in the kernel (`enforce`: deny; otherwise report-only).
struct LsmEngine {
    enforcer: BpfLsm,
    controls: Controls,
}

impl Engine for LsmEngine {
    fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<String> {
        let (rules, applicable) = kernel_rules(ir, host)?;
        self.controls.host_confined = applicable > 0;
        self.enforcer
            .apply(&rules, self.controls)
            .context("applying the policy")?;
        Ok(format!(
            "{applicable} rules for this node ({} path keys, {} id keys, {} allow-lists, {} \
             sources); {} rules matched in user space only",
            rules.path_rules.len(),
            rules.id_rules.len(),
            rules.allow_lists.len(),
            rules.sources.len(),
            rules.not_in_kernel.len()
        ))
    }

    fn poll(
        &mut self,
        timeout: Duration,
        table: &mut ProcTable,
    ) -> anyhow::Result<Vec<DecisionEvent>> {
        let mut out = Vec::new();
        self.enforcer.poll_events(
            timeout,
            |ev| {
                if let Some(d) = decision(&ev)
                    && d.alerts()
                {
                    out.push(d);
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
    let (rules, _) = kernel_rules(&ir, host)?;
    let enforcer =
        BpfLsm::load(Capacity::for_rules(&rules)).context("starting the BPF-LSM enforcer")?;
    let controls = Controls {
        enforce: enforcer_kind == Enforcer::BpfLsm,
        host_workload: 0,
        host_confined: false,
        agent_tgid: std::process::id(),
        supervisor_tgid: std::os::unix::process::parent_id(),
        probe: false,
        alerts_per_sec: out.alerts_per_sec,
    };
    let engine = LsmEngine { enforcer, controls };
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
}

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
        if !force && found == self.known {
            return;
        }
        let states = match engine.set_containers(found.clone()) {
            None => {
                if !found.is_empty() && !self.unsupported_noted {
                    eprintln!(
                        "armlet: {} container(s) found; this enforcer confines the host only \
                         (containers: the fanotify enforcer)",
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
        for c in found.iter().filter(|c| !self.known.contains(c)) {
            let st = states.iter().find(|s| s.id == c.id);
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

/// Enforce with an AppArmor profile for the host (`armlet-host`, attached to `/**`).
pub fn run_apparmor(
    ir: CompiledPolicy,
    host: &Workload,
    source: &PolicySource,
    out: &Outputs,
) -> anyhow::Result<()> {
    let engine = crate::enforce::apparmor::engine::AppArmorEngine::new(ir.clone(), host.clone())
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
        Category::Network => u16::try_from(ev.id)
            .ok()
            .and_then(abi::protocol_name)
            .unwrap_or("unknown")
            .to_string(),
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
            _pad: 0,
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
