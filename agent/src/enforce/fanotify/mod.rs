//! The fanotify enforcer, for kernels with neither BPF-LSM nor AppArmor: real `EPERM` on file
//! opens and executions, decided in user space with the reference evaluator.
//!
//! Why fanotify: permission events (`FAN_OPEN_PERM`, `FAN_OPEN_EXEC_PERM`) make the kernel hold
//! an `open`/`execve` until a listener answers allow or deny, on every kernel since 5.0 with
//! `CONFIG_FANOTIFY_ACCESS_PERMISSIONS` — no LSM needed. The price is a round trip to user
//! space per watched open, so the marks are as narrow as the rules allow ([`marks`]).
//!
//! Data flow: [`Fanotify::apply`] plans the marks for the policy, adds the new ones, swaps the
//! policy the decision thread uses (one `Arc` swap, generation counter), then removes marks no
//! longer needed — so no operation is ever unwatched during an update. The decision thread
//! owns the fanotify fd: for each event it reads the opener's cgroup (which workload?), status
//! (uid, agent itself?), syscall (open flags for `readOnly`) and executable (`fromSource`) from
//! `/proc` into fixed buffers ([`procread`]), resolves the path from the event's fd, decides
//! with [`armlet_policy::eval::decide`], answers, and only then builds an alert, which goes
//! into a bounded channel (full: dropped and counted — never a wait).
//!
//! Failure behaviour (documented in ARCHITECTURE.md): an event the agent cannot attribute
//! (the process vanished, `/proc` unreadable) is allowed and counted (fail-open per event);
//! when the agent exits or dies the kernel allows every pending and future event (the marks go
//! with the fd) — fail-open, like every fanotify listener. While the agent is alive but
//! stopped (SIGSTOP), watched opens wait: the decision thread never blocks on anything but
//! `/proc` reads and its own answers.
//!
//! Scope: with a scope cgroup (`--scope-cgroup`), only tasks inside that cgroup subtree are
//! the host workload; everyone else is answered "allow" after one `/proc/<tid>/cgroup` read.
//! Pseudo file systems are never marked, so the agent's own `/proc` reads cannot wait on it.

pub mod marks;
pub mod net;
pub mod procread;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use armlet_policy::eval::{self, Access, Resource};
use armlet_policy::ir::{CompiledPolicy, Workload};
use armlet_policy::model::Category;

use crate::alert::{DecisionEvent, WorkloadInfo};
use crate::workloads::Container;
use marks::{MarkPlan, Mask, Object};
use procread::{Intent, PathBuf64};

/// Alerts waiting for the daemon loop (beyond: dropped and counted).
const ALERT_QUEUE: usize = 4096;
/// Bytes read from the fanotify fd at once (each event's metadata is 24 bytes).
const EVENT_BUF: usize = 24 * 256;
/// How often the decision thread looks for a new policy or a stop request when idle.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Errors of the fanotify enforcer.
#[derive(Debug, thiserror::Error)]
pub enum FanotifyError {
    #[error(
        "fanotify_init failed: {0} (needs CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS)"
    )]
    Init(std::io::Error),
    #[error("reading the mount table: {0}")]
    Mounts(std::io::Error),
    #[error("starting the decision thread: {0}")]
    Thread(std::io::Error),
    #[error("marking {object}: {source}")]
    Mark {
        object: String,
        source: std::io::Error,
    },
    #[error("the scope cgroup {0:?} is not a cgroup-v2 path below the root (e.g. /armlet-test)")]
    Scope(String),
    #[error("network rules (cgroup socket program): {0}")]
    Net(#[from] net::NetError),
}

/// Counters, readable while the thread runs.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub out_of_scope: AtomicU64,
    /// Events on files no rule can match (answered before the opener is looked at).
    pub ungoverned: AtomicU64,
    pub decided: AtomicU64,
    pub denied: AtomicU64,
    /// Events that could not be attributed and were allowed (fail-open per event).
    pub unattributed: AtomicU64,
    pub alerts_dropped: AtomicU64,
    pub overflows: AtomicU64,
    pub answer_errors: AtomicU64,
}

/// What the decision thread decides with.
#[derive(Debug)]
struct Policy {
    ir: CompiledPolicy,
    host: Workload,
    /// cgroup-v2 path standing in for the host (None: every task on the node).
    scope: Option<Vec<u8>>,
    enforce: bool,
    /// Container workloads, by cgroup-v2 path (checked before the host).
    containers: Vec<CtPolicy>,
}

#[derive(Debug, Clone)]
struct CtPolicy {
    cgroup: Vec<u8>,
    workload: Workload,
    info: WorkloadInfo,
}

#[derive(Debug)]
struct Shared {
    policy: Mutex<Arc<Policy>>,
    generation: AtomicU64,
    stop: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn current(&self) -> Arc<Policy> {
        match self.policy.lock() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// The loaded enforcer: the fanotify group, its marks, the decision thread.
#[derive(Debug)]
pub struct Fanotify {
    fd: Arc<OwnedFd>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    alerts: Receiver<DecisionEvent>,
    marks: BTreeMap<Object, Mask>,
    last_plan: MarkPlan,
    /// The host's cgroup socket program: attached only while the host has network rules
    /// (nothing is attached to a cgroup that no rule concerns).
    net: Option<net::SockGuard>,
    net_dir: std::path::PathBuf,
    net_classes: usize,
    cgroup2: String,
    enforce: bool,
    containers: Vec<Container>,
    /// One cgroup socket program per container cgroup, by container id (with its init pid).
    ct_net: BTreeMap<String, (u32, net::SockGuard)>,
}

/// How a container is confined after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub rules: usize,
    pub enforced: bool,
    /// Why not (or what is only partly watched).
    pub problems: Vec<String>,
}

fn prefixed(root: &str, o: &Object) -> Object {
    match o {
        Object::Dir(d) => Object::Dir(format!("{root}{d}")),
        Object::Mount(m) => Object::Mount(format!("{root}{m}")),
    }
}

/// A scope given as a cgroup path (`/armlet-test`) or a path below the cgroup-v2 mount
/// (`/sys/fs/cgroup/unified/armlet-test`) → the cgroup path. The root cgroup is refused.
pub fn scope_path(given: &str, cgroup2_mount: Option<&str>) -> Result<String, FanotifyError> {
    let mut p = given.trim_end_matches('/').to_string();
    if let Some(m) = cgroup2_mount
        && let Some(rest) = p.strip_prefix(m.trim_end_matches('/'))
    {
        p = rest.to_string();
    }
    if !p.starts_with('/') || p == "/" || p.split('/').any(|c| c == "..") {
        return Err(FanotifyError::Scope(given.to_string()));
    }
    Ok(p)
}

fn mark(fd: RawFd, add: bool, object: &Object, mask: Mask) -> Result<(), FanotifyError> {
    let mut bits: u64 = 0;
    if mask.open {
        bits |= libc::FAN_OPEN_PERM;
    }
    if mask.exec {
        bits |= libc::FAN_OPEN_EXEC_PERM;
    }
    let (mut flags, path) = match object {
        Object::Dir(d) => {
            bits |= libc::FAN_EVENT_ON_CHILD;
            (libc::FAN_MARK_ONLYDIR, d)
        }
        Object::Mount(m) => (libc::FAN_MARK_MOUNT, m),
    };
    flags |= if add {
        libc::FAN_MARK_ADD
    } else {
        libc::FAN_MARK_REMOVE
    };
    let err = |source| FanotifyError::Mark {
        object: format!("{object:?}"),
        source,
    };
    let c = std::ffi::CString::new(path.as_bytes())
        .map_err(|_| err(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
    // SAFETY: `fd` is our fanotify group; `c` is a valid NUL-terminated path for the call.
    #[allow(unsafe_code, reason = "fanotify_mark(2); no safe wrapper")]
    let r = unsafe { libc::fanotify_mark(fd, flags, bits, libc::AT_FDCWD, c.as_ptr()) };
    if r < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Fanotify {
    /// Create the fanotify group and start the decision thread (no marks yet: nothing is
    /// watched until [`Fanotify::apply`]).
    /// `cgroup_dir`: the cgroup directory whose subtree the socket program confines (the
    /// scope cgroup, or the cgroup-v2 root for the whole node).
    pub fn start(
        ir: &CompiledPolicy,
        host: &Workload,
        scope: Option<String>,
        cgroup_dir: &std::path::Path,
        cgroup2: &str,
        enforce: bool,
    ) -> Result<Fanotify, FanotifyError> {
        // SAFETY: plain syscall; the returned fd is checked and owned below.
        #[allow(unsafe_code, reason = "fanotify_init(2); no safe wrapper")]
        let raw = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT
                    | libc::FAN_CLOEXEC
                    | libc::FAN_NONBLOCK
                    | libc::FAN_REPORT_TID,
                u32::try_from(libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC).unwrap_or(0),
            )
        };
        if raw < 0 {
            return Err(FanotifyError::Init(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd we own.
        #[allow(unsafe_code, reason = "taking ownership of the fanotify fd")]
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let shared = Arc::new(Shared {
            policy: Mutex::new(Arc::new(Policy {
                ir: ir.clone(),
                host: host.clone(),
                scope: scope.map(String::into_bytes),
                enforce,
                containers: Vec::new(),
            })),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let (tx, alerts) = std::sync::mpsc::sync_channel(ALERT_QUEUE);
        let thread = {
            let fd = Arc::clone(&fd);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("armlet-fanotify".into())
                .spawn(move || decision_loop(fd.as_raw_fd(), &shared, &tx))
                .map_err(FanotifyError::Thread)?
        };
        Ok(Fanotify {
            fd,
            shared,
            thread: Some(thread),
            alerts,
            marks: BTreeMap::new(),
            last_plan: MarkPlan::default(),
            net: None,
            net_dir: cgroup_dir.to_path_buf(),
            net_classes: 0,
            cgroup2: cgroup2.trim_end_matches('/').to_string(),
            enforce,
            containers: Vec::new(),
            ct_net: BTreeMap::new(),
        })
    }

    /// Put `ir` in force for the host and the known containers: add the marks it needs,
    /// swap the policy, remove stale marks. A host mark that cannot be added fails the apply
    /// and leaves the previous policy in force (marks added so far stay: they only cost
    /// answers, never change a decision); a container's problems are reported per container.
    pub fn apply(
        &mut self,
        ir: &CompiledPolicy,
        host: &Workload,
    ) -> Result<&MarkPlan, FanotifyError> {
        let containers = self.containers.clone();
        self.reconfigure(ir, host, containers)
            .map(|_| &self.last_plan)
    }

    /// The containers changed (started, stopped): confine the new set with the policy in
    /// force.
    pub fn set_containers(
        &mut self,
        containers: Vec<Container>,
    ) -> Result<Vec<ContainerState>, FanotifyError> {
        let cur = self.shared.current();
        let (ir, host) = (cur.ir.clone(), cur.host.clone());
        self.reconfigure(&ir, &host, containers)
    }

    fn reconfigure(
        &mut self,
        ir: &CompiledPolicy,
        host: &Workload,
        containers: Vec<Container>,
    ) -> Result<Vec<ContainerState>, FanotifyError> {
        let mounts =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(FanotifyError::Mounts)?;
        let mounts = marks::parse_mountinfo(&mounts);
        let eff = ir.effective(host);
        let mut plan = marks::plan(&[&eff], &mounts, &|d| std::path::Path::new(d).is_dir());
        self.net_classes = if net::class_table(&eff)?.entries.is_empty() {
            self.net = None;
            0
        } else {
            let mut g = match self.net.take() {
                Some(g) => g,
                None => net::SockGuard::attach(&self.net_dir, self.enforce)?,
            };
            let n = g.apply(&eff, "")?;
            self.net = Some(g);
            n
        };
        let fd = self.fd.as_raw_fd();
        for (obj, mask) in &plan.marks {
            if self.marks.get(obj) != Some(mask) {
                mark(fd, true, obj, *mask)?;
            }
        }
        // Containers: their paths are container paths, reached through /proc/<pid>/root.
        let mut states = Vec::new();
        let mut ct_net = std::mem::take(&mut self.ct_net);
        let mut next_net = BTreeMap::new();
        for c in &containers {
            let root = c.root();
            let ceff = ir.effective(&c.workload());
            let mut st = ContainerState {
                id: c.id.clone(),
                rules: ceff.rules.len(),
                enforced: true,
                problems: Vec::new(),
            };
            let cmounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", c.init_pid))
                .map(|t| marks::parse_mountinfo(&t))
                .unwrap_or_default();
            let cplan = marks::plan(&[&ceff], &cmounts, &|d| {
                std::path::Path::new(&format!("{root}{d}")).is_dir()
            });
            for (obj, mask) in &cplan.marks {
                let obj = prefixed(&root, obj);
                if self.marks.get(&obj) != Some(mask)
                    && let Err(e) = mark(fd, true, &obj, *mask)
                {
                    st.enforced = false;
                    st.problems.push(e.to_string());
                    continue;
                }
                let e = plan.marks.entry(obj).or_default();
                e.open |= mask.open;
                e.exec |= mask.exec;
            }
            st.problems
                .extend(cplan.unmarked.iter().map(|u| format!("{}: {u}", c.name)));
            let has_net = match net::class_table(&ceff) {
                Ok(t) => !t.entries.is_empty(),
                Err(e) => {
                    st.enforced = false;
                    st.problems.push(format!("network rules: {e}"));
                    false
                }
            };
            if !has_net {
                ct_net.remove(&c.id);
                states.push(st);
                continue;
            }
            let guard = match ct_net.remove(&c.id) {
                Some((pid, g)) if pid == c.init_pid => Ok(g),
                _ => net::SockGuard::attach(
                    std::path::Path::new(&format!("{}{}", self.cgroup2, c.cgroup)),
                    self.enforce,
                ),
            };
            match guard.and_then(|mut g| g.apply(&ceff, &root).map(|_| g)) {
                Ok(g) => {
                    next_net.insert(c.id.clone(), (c.init_pid, g));
                }
                Err(e) => {
                    st.enforced = false;
                    st.problems.push(format!("network rules: {e}"));
                }
            }
            states.push(st);
        }
        // Guards left in `ct_net` belong to containers that are gone: dropped here (detached).
        drop(ct_net);
        self.ct_net = next_net;
        {
            let cur = self.shared.current();
            let next = Arc::new(Policy {
                ir: ir.clone(),
                host: host.clone(),
                scope: cur.scope.clone(),
                enforce: cur.enforce,
                containers: containers
                    .iter()
                    .map(|c| CtPolicy {
                        cgroup: c.cgroup.clone().into_bytes(),
                        workload: c.workload(),
                        info: c.info(),
                    })
                    .collect(),
            });
            match self.shared.policy.lock() {
                Ok(mut p) => *p = next,
                Err(poisoned) => *poisoned.into_inner() = next,
            }
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        for (obj, old) in &self.marks {
            let keep = plan.marks.get(obj).copied().unwrap_or_default();
            let gone = Mask {
                open: old.open && !keep.open,
                exec: old.exec && !keep.exec,
            };
            if !gone.is_empty() {
                // A mark that cannot be removed (its container is gone) only costs answers.
                let _ = mark(fd, false, obj, gone);
            }
        }
        self.marks = plan.marks.clone();
        self.last_plan = plan;
        self.containers = containers;
        Ok(states)
    }

    /// Alerts decided since the last call (file and exec decisions from the decision thread,
    /// socket records from the cgroup program), waiting up to `timeout` for the first.
    pub fn alerts(&mut self, timeout: Duration) -> Vec<DecisionEvent> {
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        let pol = self.shared.current();
        let eff = pol.ir.effective(&pol.host);
        let host_info = WorkloadInfo {
            host: true,
            ..WorkloadInfo::default()
        };
        let ct: Vec<_> = pol
            .containers
            .iter()
            .map(|c| {
                (
                    c.info.container_id.clone(),
                    pol.ir.effective(&c.workload),
                    c.info.clone(),
                )
            })
            .collect();
        loop {
            if let Some(g) = &mut self.net {
                g.drain(&eff, &host_info, &mut out);
            }
            for (id, ceff, info) in &ct {
                if let Some((_, g)) = self.ct_net.get_mut(id) {
                    g.drain(ceff, info, &mut out);
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Ok(first) = self
                .alerts
                .recv_timeout(left.min(Duration::from_millis(50)))
            {
                out.push(first);
            }
            while out.len() < ALERT_QUEUE
                && let Ok(next) = self.alerts.try_recv()
            {
                out.push(next);
            }
            if !out.is_empty() || std::time::Instant::now() >= deadline {
                return out;
            }
        }
    }

    /// Socket classes with a kernel verdict, and the socket program's (denials, dropped
    /// records).
    pub fn net_stats(&self) -> (usize, (u64, u64)) {
        let mut c = self.net.as_ref().map_or((0, 0), net::SockGuard::counters);
        for (_, g) in self.ct_net.values() {
            let (d, r) = g.counters();
            c.0 += d;
            c.1 += r;
        }
        (self.net_classes, c)
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }
}

impl Drop for Fanotify {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Closing the fd (last Arc) removes every mark; pending events are allowed.
    }
}

/// Scratch buffers for one event, allocated once per thread.
struct Scratch {
    path: PathBuf64,
    cgroup: [u8; 4096],
    status: [u8; 2048],
    syscall: [u8; 512],
    target: [u8; 4096],
    exe: [u8; 4096],
    comm: [u8; 32],
}

fn decision_loop(fd: RawFd, shared: &Shared, tx: &SyncSender<DecisionEvent>) {
    let mut buf = vec![0u8; EVENT_BUF];
    let mut s = Box::new(Scratch {
        path: PathBuf64::new(),
        cgroup: [0; 4096],
        status: [0; 2048],
        syscall: [0; 512],
        target: [0; 4096],
        exe: [0; 4096],
        comm: [0; 32],
    });
    let me = std::process::id();
    'policy: loop {
        let pol = shared.current();
        let generation = shared.generation.load(Ordering::SeqCst);
        let eff = pol.ir.effective(&pol.host);
        let ct_effs: Vec<_> = pol
            .containers
            .iter()
            .map(|c| pol.ir.effective(&c.workload))
            .collect();
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                break 'policy;
            }
            if shared.generation.load(Ordering::SeqCst) != generation {
                continue 'policy;
            }
            // SAFETY: `buf` is exclusively borrowed and the read is bounded by its length.
            #[allow(unsafe_code, reason = "read(2) of fanotify events")]
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else {
                let _ = crate::enforce::bpf_lsm::wait_readable(&[fd], IDLE_POLL);
                continue;
            };
            let mut off = 0;
            while off + 24 <= n {
                let b = &buf[off..n];
                let event_len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let mask =
                    u64::from_ne_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
                let efd = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
                let tid = i32::from_ne_bytes([b[20], b[21], b[22], b[23]]);
                off += event_len.max(24);
                let c = &shared.counters;
                c.events.fetch_add(1, Ordering::Relaxed);
                if efd < 0 {
                    c.overflows.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let (deny, alert) = decide(
                    &pol,
                    &eff,
                    &ct_effs,
                    &mut s,
                    me,
                    mask,
                    efd,
                    tid.unsigned_abs(),
                    c,
                );
                let resp = libc::fanotify_response {
                    fd: efd,
                    response: if deny {
                        libc::FAN_DENY
                    } else {
                        libc::FAN_ALLOW
                    },
                };
                // SAFETY: writes one fully initialised response struct; closes the event fd
                // the kernel gave us (ours to close).
                #[allow(unsafe_code, reason = "answering a fanotify permission event")]
                let w = unsafe {
                    let w = libc::write(
                        fd,
                        (&raw const resp).cast(),
                        std::mem::size_of::<libc::fanotify_response>(),
                    );
                    libc::close(efd);
                    w
                };
                if w < 0 {
                    c.answer_errors.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(a) = alert
                    && let Err(TrySendError::Full(_)) = tx.try_send(a)
                {
                    c.alerts_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Could any rule (or an allow-list) of this workload decide an operation on `r`? Ignores
/// `fromSource` and conditions: a cheap filter before the opener is looked at.
fn governed(eff: &armlet_policy::ir::EffectiveRules<'_>, r: &Resource<'_>) -> bool {
    let cat = r.category();
    eff.allow_lists.iter().any(|a| a.category == cat)
        || eff
            .rules
            .iter()
            .any(|rule| rule.category() == cat && eval::target_matches(&rule.target, r))
}

fn utf8(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Decide one permission event: (deny?, alert).
#[expect(
    clippy::too_many_arguments,
    reason = "the hot path passes its scratch state explicitly instead of bundling it"
)]
fn decide(
    pol: &Policy,
    host_eff: &armlet_policy::ir::EffectiveRules<'_>,
    ct_effs: &[armlet_policy::ir::EffectiveRules<'_>],
    s: &mut Scratch,
    me: u32,
    mask: u64,
    efd: i32,
    tid: u32,
    c: &Counters,
) -> (bool, Option<DecisionEvent>) {
    let unattributed = || {
        c.unattributed.fetch_add(1, Ordering::Relaxed);
        (false, None)
    };
    let fdname = {
        let mut b = [0u8; 24];
        let mut w = &mut b[..];
        if std::io::Write::write_fmt(&mut w, format_args!("fd/{efd}")).is_err() {
            return unattributed();
        }
        b
    };
    let fdname_len = fdname.iter().position(|&x| x == 0).unwrap_or(fdname.len());
    let Ok(fdname) = std::str::from_utf8(&fdname[..fdname_len]) else {
        return unattributed();
    };
    let Some(tn) = procread::readlink_into(&mut s.path, None, fdname, &mut s.target) else {
        return unattributed();
    };
    let exec = mask & libc::FAN_OPEN_EXEC_PERM != 0;
    // Most events on a mount mark concern files no rule can match: answer those first.
    {
        let target = utf8(&s.target[..tn]);
        let resource = if exec {
            Resource::Exec(&target)
        } else {
            Resource::File(&target)
        };
        if !governed(host_eff, &resource) && !ct_effs.iter().any(|e| governed(e, &resource)) {
            c.ungoverned.fetch_add(1, Ordering::Relaxed);
            return (false, None);
        }
    }
    // Which workload? Only the scope cgroup's subtree stands in for the host.
    let Some(n) = procread::read_into(&mut s.path, Some(tid), "cgroup", &mut s.cgroup) else {
        return unattributed();
    };
    let cg = procread::cgroup_v2(&s.cgroup[..n]).unwrap_or(b"");
    let container = pol
        .containers
        .iter()
        .position(|ct| procread::cgroup_within(cg, &ct.cgroup));
    let eff = match container {
        Some(i) => match ct_effs.get(i) {
            Some(e) => e,
            None => return unattributed(),
        },
        None => {
            if let Some(scope) = &pol.scope
                && !procread::cgroup_within(cg, scope)
            {
                c.out_of_scope.fetch_add(1, Ordering::Relaxed);
                return (false, None);
            }
            host_eff
        }
    };
    let Some(n) = procread::read_into(&mut s.path, Some(tid), "status", &mut s.status) else {
        return unattributed();
    };
    let st = procread::parse_status(&s.status[..n]);
    if st.tgid == me {
        return (false, None);
    }
    let en = procread::readlink_into(&mut s.path, Some(tid), "exe", &mut s.exe).unwrap_or(0);
    if exec && procread::is_elf_interpreter(&s.target[..tn]) {
        return (false, None);
    }
    let write = if exec {
        false
    } else {
        let intent = procread::read_into(&mut s.path, Some(tid), "syscall", &mut s.syscall)
            .and_then(|n| procread::parse_syscall(&s.syscall[..n]))
            .map_or(Intent::Unknown, |(nr, args)| procread::intent(nr, &args));
        match intent {
            Intent::Write(w) => w,
            Intent::Openat2(addr) => {
                procread::read_u64_at(&mut s.path, tid, addr).is_none_or(procread::flags_write)
            }
            // Unknown flags count as a write: a readOnly rule then errs on the side of the
            // rule (Block fires, Allow does not permit).
            Intent::Unknown => true,
        }
    };
    let owner = {
        // SAFETY: fstat on the event fd into a zeroed stat struct.
        #[allow(unsafe_code, reason = "fstat(2) of the event's file")]
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            (libc::fstat(efd, &raw mut st) == 0).then_some(st.st_uid)
        }
    };
    let target = utf8(&s.target[..tn]);
    let exe = utf8(&s.exe[..en]);
    let resource = if exec {
        Resource::Exec(&target)
    } else {
        Resource::File(&target)
    };
    let access = Access {
        exe: &exe,
        resource,
        uid: st.uid,
        owner_uid: owner,
        write,
    };
    c.decided.fetch_add(1, Ordering::Relaxed);
    let v = eval::decide(eff, &access);
    let deny = pol.enforce && v.denies();
    if deny {
        c.denied.fetch_add(1, Ordering::Relaxed);
    }
    if !v.alerts() {
        return (deny, None);
    }
    let (action, rule_id) = v.action_and_rule();
    let cn = procread::read_into(&mut s.path, Some(tid), "comm", &mut s.comm).unwrap_or(0);
    let alert = DecisionEvent {
        timestamp: SystemTime::now(),
        category: if exec {
            Category::Process
        } else {
            Category::File
        },
        rule_id,
        action,
        denied: deny,
        pid: st.tgid,
        ppid: st.ppid,
        uid: st.uid,
        comm: utf8(&s.comm[..cn]).trim_end().to_string(),
        source: exe.into_owned(),
        resource: target.into_owned(),
        workload: match container.and_then(|i| pol.containers.get(i)) {
            Some(ct) => ct.info.clone(),
            None => WorkloadInfo {
                host: true,
                ..WorkloadInfo::default()
            },
        },
    };
    (deny, Some(alert))
}

/// Functional probe: create a permission group, watch a fresh directory, and have a helper
/// thread open a file in it twice — the first open is answered allow, the second deny — and
/// check the thread saw success, then `EPERM`. Everything is closed when this returns.
pub fn functional_probe() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("armlet-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let result = probe_in(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn probe_in(dir: &std::path::Path) -> Result<String, String> {
    let file = dir.join("probe");
    std::fs::write(&file, b"armlet").map_err(|e| format!("writing {}: {e}", file.display()))?;
    // SAFETY: plain syscall; the fd is checked and owned below.
    #[allow(unsafe_code, reason = "fanotify_init(2); no safe wrapper")]
    let raw = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
            u32::try_from(libc::O_RDONLY | libc::O_CLOEXEC).unwrap_or(0),
        )
    };
    if raw < 0 {
        return Err(format!(
            "fanotify_init(FAN_CLASS_CONTENT) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `raw` is a fresh fd we own.
    #[allow(unsafe_code, reason = "taking ownership of the fanotify fd")]
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let obj = Object::Dir(dir.to_string_lossy().into_owned());
    mark(
        fd.as_raw_fd(),
        true,
        &obj,
        Mask {
            open: true,
            exec: false,
        },
    )
    .map_err(|e| e.to_string())?;
    let opener = {
        let file = file.clone();
        std::thread::spawn(move || {
            let first = std::fs::File::open(&file).map(drop);
            let second = std::fs::File::open(&file).map(drop);
            (first, second)
        })
    };
    let mut answered = 0;
    let mut buf = [0u8; 24 * 16];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while answered < 2 && std::time::Instant::now() < deadline {
        let _ = crate::enforce::bpf_lsm::wait_readable(&[fd.as_raw_fd()], IDLE_POLL);
        // SAFETY: bounded read into `buf`.
        #[allow(unsafe_code, reason = "read(2) of fanotify events")]
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(n) = usize::try_from(n) else { continue };
        let mut off = 0;
        while off + 24 <= n {
            let b = &buf[off..n];
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let efd = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
            off += len.max(24);
            if efd < 0 {
                continue;
            }
            let resp = libc::fanotify_response {
                fd: efd,
                response: if answered == 0 {
                    libc::FAN_ALLOW
                } else {
                    libc::FAN_DENY
                },
            };
            // SAFETY: one initialised response; then close the event fd we were given.
            #[allow(unsafe_code, reason = "answering a fanotify permission event")]
            unsafe {
                libc::write(
                    fd.as_raw_fd(),
                    (&raw const resp).cast(),
                    std::mem::size_of::<libc::fanotify_response>(),
                );
                libc::close(efd);
            }
            answered += 1;
        }
    }
    if answered < 2 {
        // Unblock the opener: closing the group allows whatever is still pending.
        drop(fd);
        let _ = opener.join();
        return Err(format!(
            "the permission group saw {answered} of 2 opens in {} within 5 s",
            dir.display()
        ));
    }
    let (first, second) = opener
        .join()
        .map_err(|_| "the probe's opener thread panicked".to_string())?;
    match (first, second) {
        (Ok(()), Err(e)) if e.raw_os_error() == Some(libc::EPERM) => Ok(
            "a permission group watched a probe directory: one open allowed, one denied with \
             EPERM"
                .to_string(),
        ),
        (a, b) => Err(format!(
            "the probe's opens did not get the answers given (allow: {a:?}, deny: {b:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_paths() {
        let m = Some("/sys/fs/cgroup/unified");
        assert_eq!(
            scope_path("/sys/fs/cgroup/unified/armlet-test/", m).unwrap(),
            "/armlet-test"
        );
        assert_eq!(scope_path("/armlet-test/a", m).unwrap(), "/armlet-test/a");
        assert!(scope_path("/sys/fs/cgroup/unified", m).is_err());
        assert!(scope_path("/", m).is_err());
        assert!(scope_path("armlet", m).is_err());
        assert!(scope_path("/a/../b", m).is_err());
    }
}
