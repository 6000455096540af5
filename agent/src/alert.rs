//! Alerts: from an enforcer's decision to a KubeArmor-style JSON line.
//!
//! Why this shape: operators already have tooling that reads KubeArmor alerts (`karmor logs`,
//! SIEM parsers, the scenario runners of the conformance suite), so the human form uses
//! KubeArmor's field names and values (DESIGN §6). Every enforcer reports a decision as one
//! [`DecisionEvent`] (decoded and checked before it gets here); [`AlertBuilder`] adds what the
//! compiled policy knows (policy name, severity, tags, message: looked up by rule id in an index
//! built once per policy) and what `/proc` knows ([`ProcInfo`]); [`AlertSink`] writes one line
//! per alert to stdout and/or a size-rotated file. A failing sink never stops enforcement: its
//! errors are counted and reported in status.
//!
//! KubeArmor conventions followed here (from its `Alert` protobuf message and its alert docs):
//! - field order and names as the protobuf `Alert` message; like KubeArmor's JSON (Go's
//!   `omitempty`), empty strings and empty lists are left out (host alerts carry no
//!   `NamespaceName`/`PodName`/`ContainerID`, `DefaultPosture` alerts no `Severity`/`Tags`/
//!   `Message`). Unlike KubeArmor, numeric fields are always written (a `UID` of 0 is root, not
//!   "unknown").
//! - `Timestamp` is unix seconds, `UpdatedTime` RFC 3339 UTC with microseconds.
//! - `Severity` is the rule's severity as a string (`"5"`), `Tags` the tags joined by commas,
//!   `ATags` the same as a list.
//! - `Type` is `MatchedPolicy` for containers and `MatchedHostPolicy` for the host, also for
//!   `DefaultPosture` alerts.
//! - Action/Result: a Block that the kernel denied is `Block` / `Permission denied`; a Block
//!   that was not denied (audit enforcer, downgraded rule, posture that could not be enforced)
//!   is `Audit (Block)` / `Passed`; an Audit is `Audit` / `Passed`.
//! - For process (exec) alerts `ProcessName` and `Resource` are the program being executed and
//!   `Source` the executable doing the exec; for other operations `ProcessName` and `Source` are
//!   the acting executable.
//!
//! `Data` names the kernel hook (see [`data_for`]):
//!
//! | enforcer | Process | File | Network | Capabilities |
//! |---|---|---|---|---|
//! | bpf-lsm | `lsm=SECURITY_BPRM_CHECK` | `lsm=FILE_OPEN` | `lsm=SOCKET_CREATE` | `lsm=CAPABLE` |
//! | fanotify | `fanotify=FAN_OPEN_EXEC_PERM` | `fanotify=FAN_OPEN_PERM` | `cgroup=SOCK_CREATE` | `tracepoint=CAPABLE` |
//! | apparmor, audit | `syscall=SYS_EXECVE` | `syscall=SYS_OPENAT` | `syscall=SYS_SOCKET` | `tracepoint=CAPABLE` |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use armlet_policy::ir::{CompiledPolicy, DEFAULT_POSTURE, PolicyInfo, Rule};
use armlet_policy::model::{Action, Category};
use armlet_policy::support::Enforcer;
use serde::{Deserialize, Serialize};

use crate::procinfo::ProcInfo;

/// The identity of the workload an operation happened in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// The node itself (host policies), not a container.
    pub host: bool,
    pub namespace: String,
    pub pod: String,
    pub container_id: String,
    pub container_name: String,
}

/// One decision by any enforcer, decoded and checked (no raw kernel data beyond this point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionEvent {
    pub timestamp: SystemTime,
    /// Process, File, Network or Capabilities.
    pub category: Category,
    /// The rule that decided; None when the default posture decided.
    pub rule_id: Option<u32>,
    /// The rule's or posture's action.
    pub action: Action,
    /// The kernel returned an error to the caller (EPERM).
    pub denied: bool,
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Task comm.
    pub comm: String,
    /// Executable of the acting process.
    pub source: String,
    /// Path, protocol name
    /// or capability name.
    pub resource: String,
    pub workload: WorkloadInfo,
}

impl DecisionEvent {
    /// Does this decision raise an alert? An Allow that passed is silent (as in KubeArmor).
    pub fn alerts(&self) -> bool {
        self.action != Action::Allow || self.denied
    }
}

/// A KubeArmor-compatible alert. Serialises with KubeArmor's field names, in the order of its
/// protobuf `Alert` message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Alert {
    #[serde(rename = "Timestamp")]
    pub timestamp: i64,
    #[serde(rename = "UpdatedTime")]
    pub updated_time: String,
    #[serde(rename = "ClusterName", skip_serializing_if = "String::is_empty")]
    pub cluster_name: String,
    #[serde(rename = "HostName")]
    pub host_name: String,
    #[serde(rename = "NamespaceName", skip_serializing_if = "String::is_empty")]
    pub namespace_name: String,
    #[serde(rename = "PodName", skip_serializing_if = "String::is_empty")]
    pub pod_name: String,
    #[serde(rename = "Labels", skip_serializing_if = "String::is_empty")]
    pub labels: String,
    #[serde(rename = "ContainerID", skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    #[serde(rename = "ContainerName", skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    #[serde(rename = "ContainerImage", skip_serializing_if = "String::is_empty")]
    pub container_image: String,
    #[serde(rename = "HostPPID")]
    pub host_ppid: u32,
    #[serde(rename = "HostPID")]
    pub host_pid: u32,
    #[serde(rename = "PPID")]
    pub ppid: u32,
    #[serde(rename = "PID")]
    pub pid: u32,
    #[serde(rename = "UID")]
    pub uid: u32,
    #[serde(rename = "ParentProcessName")]
    pub parent_process_name: String,
    #[serde(rename = "ProcessName")]
    pub process_name: String,
    #[serde(rename = "PolicyName")]
    pub policy_name: String,
    #[serde(rename = "Severity", skip_serializing_if = "String::is_empty")]
    pub severity: String,
    #[serde(rename = "Tags", skip_serializing_if = "String::is_empty")]
    pub tags: String,
    #[serde(rename = "ATags", skip_serializing_if = "Vec::is_empty")]
    pub atags: Vec<String>,
    #[serde(rename = "Message", skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(rename = "Type")]
    pub alert_type: String,
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "Operation")]
    pub operation: String,
    #[serde(rename = "Resource")]
    pub resource: String,
    #[serde(rename = "Data", skip_serializing_if = "String::is_empty")]
    pub data: String,
    #[serde(rename = "Enforcer")]
    pub enforcer: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Result")]
    pub result: String,
}

/// `Result` of an operation the kernel denied.
pub const RESULT_DENIED: &str = "Permission denied";
/// `Result` of an operation that went through.
pub const RESULT_PASSED: &str = "Passed";

/// KubeArmor's `Action` and `Result` for a rule or posture action and what the kernel did.
pub fn action_and_result(action: Action, denied: bool) -> (&'static str, &'static str) {
    let result = if denied { RESULT_DENIED } else { RESULT_PASSED };
    let action = match (action, denied) {
        (Action::Block, true) => "Block",
        // A Block that was not enforced: the audit enforcer, a downgraded rule, or a posture
        // the enforcer cannot apply.
        (Action::Block, false) => "Audit (Block)",
        (Action::Audit, _) => "Audit",
        (Action::Allow, _) => "Allow",
    };
    (action, result)
}

/// The `Operation` field.
pub fn operation(category: Category) -> &'static str {
    match category {
        Category::Process => "Process",
        Category::File => "File",
        Category::Network => "Network",
        Category::Capabilities => "Capabilities",
        Category::Syscalls => "Syscall",
    }
}

/// The `Data` field: which hook saw the operation (table in the module docs).
pub fn data_for(enforcer: Enforcer, category: Category) -> &'static str {
    match (enforcer, category) {
        (_, Category::Syscalls) => "",
        (Enforcer::BpfLsm, Category::Process) => "lsm=SECURITY_BPRM_CHECK",
        (Enforcer::BpfLsm, Category::File) => "lsm=FILE_OPEN",
        (Enforcer::BpfLsm, Category::Network) => "lsm=SOCKET_CREATE",
        (Enforcer::BpfLsm, Category::Capabilities) => "lsm=CAPABLE",
        (Enforcer::Fanotify, Category::Process) => "fanotify=FAN_OPEN_EXEC_PERM",
        (Enforcer::Fanotify, Category::File) => "fanotify=FAN_OPEN_PERM",
        (Enforcer::Fanotify, Category::Network) => "cgroup=SOCK_CREATE",
        (Enforcer::AppArmor | Enforcer::Audit, Category::Process) => "syscall=SYS_EXECVE",
        (Enforcer::AppArmor | Enforcer::Audit, Category::File) => "syscall=SYS_OPENAT",
        (Enforcer::AppArmor | Enforcer::Audit, Category::Network) => "syscall=SYS_SOCKET",
        (Enforcer::Fanotify | Enforcer::AppArmor | Enforcer::Audit, Category::Capabilities) => {
            "tracepoint=CAPABLE"
        }
    }
}

/// Rule id → the rule and the policy it came from. Built once per compiled policy; its size is
/// the number of rules.
#[derive(Debug, Default)]
pub struct RuleIndex<'a> {
    map: HashMap<u32, (&'a Rule, &'a PolicyInfo)>,
}

impl<'a> RuleIndex<'a> {
    pub fn new(policy: &'a CompiledPolicy) -> Self {
        let mut map = HashMap::with_capacity(policy.rule_count());
        for w in &policy.workloads {
            for r in &w.rules {
                // A rule whose policy index is out of range cannot be named; it is left out and
                // its alerts say so (see `AlertBuilder::build`).
                if let Some(p) = policy.policy_of(r) {
                    map.insert(r.id, (r, p));
                }
            }
        }
        RuleIndex { map }
    }

    #[cfg(test)]
    pub fn get(&self, id: u32) -> Option<(&'a Rule, &'a PolicyInfo)> {
        self.map.get(&id).copied()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// What an alert says about the rule that fired, rendered once per policy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleMeta {
    policy_name: String,
    severity: String,
    tags: String,
    atags: Vec<String>,
    message: String,
}

/// Turns decisions into alerts for one compiled policy and one enforcer. Owns its rule table
/// (no borrow of the policy), so it can be swapped together with the policy.
#[derive(Debug)]
pub struct AlertBuilder {
    rules: HashMap<u32, RuleMeta>,
    enforcer: Enforcer,
    host_name: String,
    cluster_name: String,
}

impl AlertBuilder {
    pub fn new(policy: &CompiledPolicy, enforcer: Enforcer, hostname: String) -> Self {
        let index = RuleIndex::new(policy);
        let rules = index
            .map
            .iter()
            .map(|(id, (rule, info))| {
                let meta = RuleMeta {
                    policy_name: info.name.clone(),
                    severity: rule.severity.to_string(),
                    tags: rule.tags.join(","),
                    atags: rule.tags.clone(),
                    message: rule.message.clone(),
                };
                (*id, meta)
            })
            .chain(
                policy
                    .policies
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.apparmor.is_some())
                    .filter_map(|(i, p)| {
                        let i = u32::try_from(i).ok()?;
                        Some((
                            armlet_policy::ir::NATIVE_RULE_BASE.saturating_add(i),
                            RuleMeta {
                                policy_name: p.name.clone(),
                                severity: "1".to_string(),
                                tags: String::new(),
                                atags: Vec::new(),
                                message: String::new(),
                            },
                        ))
                    }),
            )
            .collect();
        AlertBuilder {
            rules,
            enforcer,
            host_name: hostname,
            cluster_name: String::new(),
        }
    }

    /// Set `ClusterName` (left out of alerts while empty).
    #[cfg(test)]
    pub fn with_cluster_name(mut self, name: String) -> Self {
        self.cluster_name = name;
        self
    }

    /// The alert for one decision. `proc` is the `/proc` view of the acting process (possibly
    /// empty when it already exited; the event's own fields are used then).
    pub fn build(&self, ev: &DecisionEvent, proc: &ProcInfo) -> Alert {
        let (policy_name, severity, tags, atags, message) = match ev.rule_id {
            None => (
                DEFAULT_POSTURE.to_string(),
                String::new(),
                String::new(),
                Vec::new(),
                String::new(),
            ),
            Some(id) => match self.rules.get(&id) {
                Some(m) => (
                    m.policy_name.clone(),
                    m.severity.clone(),
                    m.tags.clone(),
                    m.atags.clone(),
                    m.message.clone(),
                ),
                // The policy changed between the decision and now (or a corrupt id): say so
                // rather than name the wrong policy.
                None => (
                    format!("unknown-rule-{id}"),
                    String::new(),
                    String::new(),
                    Vec::new(),
                    String::new(),
                ),
            },
        };
        let (action, result) = action_and_result(ev.action, ev.denied);
        let source = if ev.source.is_empty() {
            proc.exe.clone()
        } else {
            ev.source.clone()
        };
        let process_name = if ev.category == Category::Process {
            ev.resource.clone()
        } else {
            source.clone()
        };
        let host_ppid = if ev.ppid != 0 { ev.ppid } else { proc.ppid };
        let (pid, ppid) = if ev.workload.host || !proc.live {
            // On the host the pids are the host's. A container process that is gone can only
            // be named by its host pid.
            (ev.pid, host_ppid)
        } else {
            (proc.ns_pid, proc.ns_ppid)
        };
        let (timestamp, updated_time) = times(ev.timestamp);
        let w = &ev.workload;
        Alert {
            timestamp,
            updated_time,
            cluster_name: self.cluster_name.clone(),
            host_name: self.host_name.clone(),
            namespace_name: w.namespace.clone(),
            pod_name: w.pod.clone(),
            labels: String::new(),
            container_id: w.container_id.clone(),
            container_name: w.container_name.clone(),
            container_image: String::new(),
            host_ppid,
            host_pid: ev.pid,
            ppid,
            pid,
            uid: ev.uid,
            parent_process_name: proc.parent_exe.clone(),
            process_name,
            policy_name,
            severity,
            tags,
            atags,
            message,
            alert_type: if w.host {
                "MatchedHostPolicy"
            } else {
                "MatchedPolicy"
            }
            .to_string(),
            source,
            operation: operation(ev.category).to_string(),
            resource: ev.resource.clone(),
            data: data_for(self.enforcer, ev.category).to_string(),
            enforcer: self.enforcer.alert_name().to_string(),
            action: action.to_string(),
            result: result.to_string(),
        }
    }
}

/// `Timestamp` (unix seconds) and `UpdatedTime` (RFC 3339, UTC, microseconds). Times before
/// 1970 or after 9999 are clamped (the formatter cannot represent them).
fn times(t: SystemTime) -> (i64, String) {
    const MAX_SECS: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let since = if since.as_secs() > MAX_SECS {
        Duration::from_secs(MAX_SECS)
    } else {
        since
    };
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let mut s = String::with_capacity(27);
    // Cannot fail after clamping; an empty string is the fallback all the same.
    if write!(
        s,
        "{}",
        humantime::format_rfc3339_micros(UNIX_EPOCH + since)
    )
    .is_err()
    {
        s.clear();
    }
    (secs, s)
}

/// A sink configuration error (operational: the agent reports it at start).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alerts file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("alerts file rotation size {0} is below the minimum of {MIN_ROTATE_BYTES} bytes")]
    RotateTooSmall(u64),
    #[error("alerts file keeps {0} old files; at most {MAX_KEEP} are allowed")]
    KeepTooMany(u32),
}

/// Smallest rotation size (a few alerts per file).
pub const MIN_ROTATE_BYTES: u64 = 4096;
/// Most old files kept.
pub const MAX_KEEP: u32 = 100;
/// Defaults for `--alerts-file`: 10 MiB per file, 5 old files.
pub const DEFAULT_ROTATE_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_KEEP: u32 = 5;

/// Size-based rotation: `PATH` grows to `max_bytes`, then becomes `PATH.1` (`PATH.1` becomes
/// `PATH.2`, ... and `PATH.<keep>` is deleted). Disk use is at most `(keep + 1) * max_bytes`
/// (plus one line, when a single line is larger than `max_bytes`: it is written alone to a new
/// file rather than lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    max_bytes: u64,
    keep: u32,
}

impl Rotation {
    pub fn new(max_bytes: u64, keep: u32) -> Result<Self, AlertError> {
        if max_bytes < MIN_ROTATE_BYTES {
            return Err(AlertError::RotateTooSmall(max_bytes));
        }
        if keep > MAX_KEEP {
            return Err(AlertError::KeepTooMany(keep));
        }
        Ok(Rotation { max_bytes, keep })
    }
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: DEFAULT_ROTATE_BYTES,
            keep: DEFAULT_KEEP,
        }
    }
}

/// The alerts file with rotation. The file is (re)opened lazily: after an I/O error the handle
/// is dropped and the next line tries again, so a full disk or a removed directory costs the
/// lines written meanwhile, not the sink.
#[derive(Debug)]
struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    fn open(path: PathBuf, rotation: Rotation) -> Result<Self, AlertError> {
        let mut f = RotatingFile {
            path,
            rotation,
            file: None,
            size: 0,
        };
        f.reopen().map_err(|source| AlertError::Open {
            path: f.path.clone(),
            source,
        })?;
        Ok(f)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// Shift `PATH.(k-1)` → `PATH.k`, ..., `PATH` → `PATH.1`; start an empty `PATH`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.rotation.keep == 0 {
            fs::remove_file(&self.path).or_else(ignore_not_found)?;
        } else {
            fs::remove_file(self.numbered(self.rotation.keep)).or_else(ignore_not_found)?;
            for n in (1..self.rotation.keep).rev() {
                fs::rename(self.numbered(n), self.numbered(n + 1)).or_else(ignore_not_found)?;
            }
            fs::rename(&self.path, self.numbered(1)).or_else(ignore_not_found)?;
        }
        self.reopen()
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<bool> {
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        let mut rotated = false;
        if self.file.is_none() {
            self.reopen()?;
        }
        if self.size > 0 && self.size.saturating_add(len) > self.rotation.max_bytes {
            self.rotate()?;
            rotated = true;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("alerts file is not open"));
        };
        // One write of the whole line (O_APPEND): readers never see half a line from us.
        match file.write_all(line) {
            Ok(()) => {
                self.size = self.size.saturating_add(len);
                Ok(rotated)
            }
            Err(e) => {
                self.file = None;
                Err(e)
            }
        }
    }
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Counters for status: lines written, lines lost (per target), rotations, the last error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub written: u64,
    pub dropped: u64,
    pub rotations: u64,
    pub last_error: Option<String>,
}

/// Writes one JSON line per alert to stdout (or any writer) and/or a rotated file, flushing
/// each line. Never panics and never returns an error to the caller: failures are counted.
pub struct AlertSink {
    stream: Option<Box<dyn Write + Send>>,
    file: Option<RotatingFile>,
    stats: SinkStats,
}

impl std::fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSink")
            .field("stream", &self.stream.is_some())
            .field("file", &self.file.as_ref().map(|r| &r.path))
            .field("stats", &self.stats)
            .finish()
    }
}

impl Default for AlertSink {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertSink {
    /// A sink that writes nowhere (add targets with the `with_*` methods).
    pub fn new() -> Self {
        AlertSink {
            stream: None,
            file: None,
            stats: SinkStats::default(),
        }
    }

    /// Also write to the process's stdout.
    pub fn with_stdout(self) -> Self {
        self.with_writer(Box::new(io::stdout()))
    }

    /// Also write to this writer (flushed after each line).
    pub fn with_writer(mut self, w: Box<dyn Write + Send>) -> Self {
        self.stream = Some(w);
        self
    }

    /// Also append to `path`, rotating as configured. Fails only if the file cannot be opened
    /// now (later failures are counted, not returned).
    pub fn with_file(mut self, path: &Path, rotation: Rotation) -> Result<Self, AlertError> {
        self.file = Some(RotatingFile::open(path.to_path_buf(), rotation)?);
        Ok(self)
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// Write one alert to every target.
    pub fn write(&mut self, alert: &Alert) {
        let mut line = match serde_json::to_vec(alert) {
            Ok(l) => l,
            Err(e) => {
                self.fail(format!("encode alert: {e}"));
                return;
            }
        };
        line.push(b'\n');
        let mut ok = true;
        if let Some(w) = self.stream.as_mut()
            && let Err(e) = w.write_all(&line).and_then(|()| w.flush())
        {
            ok = false;
            self.fail(format!("alerts stream: {e}"));
        }
        if let Some(f) = self.file.as_mut() {
            match f.write_line(&line) {
                Ok(rotated) => {
                    if rotated {
                        self.stats.rotations = self.stats.rotations.saturating_add(1);
                    }
                }
                Err(e) => {
                    ok = false;
                    let msg = format!("alerts file {}: {e}", f.path.display());
                    self.fail(msg);
                }
            }
        }
        if ok {
            self.stats.written = self.stats.written.saturating_add(1);
        }
    }

    fn fail(&mut self, msg: String) {
        self.stats.dropped = self.stats.dropped.saturating_add(1);
        self.stats.last_error = Some(msg);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use armlet_policy::ir::Posture;

    use super::*;

    const POLICIES: &str = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: ksp-block-sh, namespace: multiubuntu}\nspec:\n  severity: 5\n  tags: [MITRE, T1059]\n  message: shell execution blocked\n  selector: {matchLabels: {container: ubuntu-1}}\n  process: {matchPaths: [{path: /bin/sh}]}\n  action: Block\n---\napiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {name: hsp-audit-shadow}\nspec:\n  severity: 3\n  nodeSelector: {matchLabels: {kubearmor.io/hostname: '*'}}\n  file: {matchPaths: [{path: /etc/shadow}]}\n  action: Audit\n";

    fn compiled() -> CompiledPolicy {
        armlet_policy::compile_text(POLICIES, "t.yaml", Posture::default()).unwrap()
    }

    fn rule_id(p: &CompiledPolicy, name: &str) -> u32 {
        let idx = RuleIndex::new(p);
        (0..u32::try_from(p.rule_count()).unwrap())
            .find(|id| idx.get(*id).is_some_and(|(_, info)| info.name == name))
            .unwrap()
    }

    fn container() -> WorkloadInfo {
        WorkloadInfo {
            host: false,
            namespace: "multiubuntu".into(),
            pod: "ubuntu-1-deployment-5d6b975744-rrkhf".into(),
            container_id: "8f2c0d3a".into(),
            container_name: "ubuntu-1-container".into(),
        }
    }

    fn host() -> WorkloadInfo {
        WorkloadInfo {
            host: true,
            ..WorkloadInfo::default()
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_672_567_200, 123_456_789)
    }

    fn proc_of_shell() -> ProcInfo {
        ProcInfo {
            pid: 4242,
            ppid: 4200,
            comm: "bash".into(),
            exe: "/usr/bin/bash".into(),
            parent_exe: "/usr/bin/bash".into(),
            parent_comm: "bash".into(),
            ns_pid: 17,
            ns_ppid: 12,
            live: true,
        }
    }

    fn event(
        category: Category,
        rule_id: Option<u32>,
        action: Action,
        denied: bool,
    ) -> DecisionEvent {
        DecisionEvent {
            timestamp: at(),
            category,
            rule_id,
            action,
            denied,
            pid: 4242,
            ppid: 4200,
            uid: 0,
            comm: "bash".into(),
            source: "/usr/bin/bash".into(),
            resource: "/bin/sh".into(),
            workload: container(),
        }
    }

    fn json(a: &Alert) -> String {
        serde_json::to_string(a).unwrap()
    }

    #[test]
    fn golden_block() {
        let p = compiled();
        let b = AlertBuilder::new(&p, Enforcer::BpfLsm, "edge-7".into());
        let id = rule_id(&p, "ksp-block-sh");
        let ev = event(Category::Process, Some(id), Action::Block, true);
        assert!(ev.alerts());
        let a = b.build(&ev, &proc_of_shell());
        assert_eq!(
            json(&a),
            r#"{"Timestamp":1672567200,"UpdatedTime":"2023-01-01T10:00:00.123456Z","HostName":"edge-7","NamespaceName":"multiubuntu","PodName":"ubuntu-1-deployment-5d6b975744-rrkhf","ContainerID":"8f2c0d3a","ContainerName":"ubuntu-1-container","HostPPID":4200,"HostPID":4242,"PPID":12,"PID":17,"UID":0,"ParentProcessName":"/usr/bin/bash","ProcessName":"/bin/sh","PolicyName":"ksp-block-sh","Severity":"5","Tags":"MITRE,T1059","ATags":["MITRE","T1059"],"Message":"shell execution blocked","Type":"MatchedPolicy","Source":"/usr/bin/bash","Operation":"Process","Resource":"/bin/sh","Data":"lsm=SECURITY_BPRM_CHECK","Enforcer":"BPFLSM","Action":"Block","Result":"Permission denied"}"#
        );
        // The JSON reads back into the same alert (for `alerts tail`).
        let back: Alert = serde_json::from_str(&json(&a)).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn golden_audit_on_the_host() {
        let p = compiled();
        let b = AlertBuilder::new(&p, Enforcer::BpfLsm, "edge-7".into())
            .with_cluster_name("lab".into());
        let mut ev = event(
            Category::File,
            Some(rule_id(&p, "hsp-audit-shadow")),
            Action::Audit,
            false,
        );
        ev.workload = host();
        ev.uid = 1000;
        ev.source = "/usr/bin/cat".into();
        ev.resource = "/etc/shadow".into();
        let a = b.build(&ev, &proc_of_shell());
        assert_eq!(
            json(&a),
            r#"{"Timestamp":1672567200,"UpdatedTime":"2023-01-01T10:00:00.123456Z","ClusterName":"lab","HostName":"edge-7","HostPPID":4200,"HostPID":4242,"PPID":4200,"PID":4242,"UID":1000,"ParentProcessName":"/usr/bin/bash","ProcessName":"/usr/bin/cat","PolicyName":"hsp-audit-shadow","Severity":"3","Type":"MatchedHostPolicy","Source":"/usr/bin/cat","Operation":"File","Resource":"/etc/shadow","Data":"lsm=FILE_OPEN","Enforcer":"BPFLSM","Action":"Audit","Result":"Passed"}"#
        );
    }

    #[test]
    fn golden_audit_block_from_the_audit_enforcer() {
        let p = compiled();
        let b = AlertBuilder::new(&p, Enforcer::Audit, "edge-7".into());
        let ev = event(
            Category::Process,
            Some(rule_id(&p, "ksp-block-sh")),
            Action::Block,
            false,
        );
        let a = b.build(&ev, &proc_of_shell());
        assert_eq!(
            json(&a),
            r#"{"Timestamp":1672567200,"UpdatedTime":"2023-01-01T10:00:00.123456Z","HostName":"edge-7","NamespaceName":"multiubuntu","PodName":"ubuntu-1-deployment-5d6b975744-rrkhf","ContainerID":"8f2c0d3a","ContainerName":"ubuntu-1-container","HostPPID":4200,"HostPID":4242,"PPID":12,"PID":17,"UID":0,"ParentProcessName":"/usr/bin/bash","ProcessName":"/bin/sh","PolicyName":"ksp-block-sh","Severity":"5","Tags":"MITRE,T1059","ATags":["MITRE","T1059"],"Message":"shell execution blocked","Type":"MatchedPolicy","Source":"/usr/bin/bash","Operation":"Process","Resource":"/bin/sh","Data":"syscall=SYS_EXECVE","Enforcer":"eBPF Monitor","Action":"Audit (Block)","Result":"Passed"}"#
        );
    }

    #[test]
    fn golden_default_posture_block_of_an_exited_process() {
        let p = compiled();
        let b = AlertBuilder::new(&p, Enforcer::BpfLsm, "edge-7".into());
        let mut ev = event(Category::File, None, Action::Block, true);
        ev.resource = "/etc/hostname".into();
        ev.source = "/usr/bin/cat".into();
        // The process is gone: only its parent is known from /proc.
        let proc = ProcInfo {
            pid: 4242,
            ppid: 4200,
            parent_exe: "/usr/bin/bash".into(),
            parent_comm: "bash".into(),
            ns_pid: 4242,
            ns_ppid: 12,
            live: false,
            ..ProcInfo::default()
        };
        let a = b.build(&ev, &proc);
        assert_eq!(
            json(&a),
            r#"{"Timestamp":1672567200,"UpdatedTime":"2023-01-01T10:00:00.123456Z","HostName":"edge-7","NamespaceName":"multiubuntu","PodName":"ubuntu-1-deployment-5d6b975744-rrkhf","ContainerID":"8f2c0d3a","ContainerName":"ubuntu-1-container","HostPPID":4200,"HostPID":4242,"PPID":4200,"PID":4242,"UID":0,"ParentProcessName":"/usr/bin/bash","ProcessName":"/usr/bin/cat","PolicyName":"DefaultPosture","Type":"MatchedPolicy","Source":"/usr/bin/cat","Operation":"File","Resource":"/etc/hostname","Data":"lsm=FILE_OPEN","Enforcer":"BPFLSM","Action":"Block","Result":"Permission denied"}"#
        );
    }

    #[test]
    fn action_result_table_and_posture_names() {
        assert_eq!(
            action_and_result(Action::Block, true),
            ("Block", "Permission denied")
        );
        assert_eq!(
            action_and_result(Action::Block, false),
            ("Audit (Block)", "Passed")
        );
        assert_eq!(action_and_result(Action::Audit, false), ("Audit", "Passed"));
        let p = compiled();
        let b = AlertBuilder::new(&p, Enforcer::Fanotify, "n".into());
        let mut ev = event(Category::Network, None, Action::Block, false);
        ev.workload = host();
        let a = b.build(&ev, &ProcInfo::default());
        assert_eq!(
            (
                a.policy_name.as_str(),
                a.action.as_str(),
                a.alert_type.as_str()
            ),
            ("DefaultPosture", "Audit (Block)", "MatchedHostPolicy")
        );
        assert_eq!(a.severity, "");
        assert_eq!(a.data, "cgroup=SOCK_CREATE");
        let ev = event(Category::File, None, Action::Audit, false);
        let a = b.build(&ev, &ProcInfo::default());
        assert_eq!((a.action.as_str(), a.result.as_str()), ("Audit", "Passed"));
        // An Allow that passed is silent; an unknown rule id is named as such.
        assert!(!event(Category::File, Some(0), Action::Allow, false).alerts());
        let a = b.build(
            &event(Category::File, Some(999), Action::Audit, false),
            &ProcInfo::default(),
        );
        assert_eq!(a.policy_name, "unknown-rule-999");
        // An event without an executable falls back to /proc's.
        let mut ev = event(Category::File, None, Action::Audit, false);
        ev.source.clear();
        let a = b.build(&ev, &proc_of_shell());
        assert_eq!(
            (a.source.as_str(), a.process_name.as_str()),
            ("/usr/bin/bash", "/usr/bin/bash")
        );
    }

    #[test]
    fn rule_index_covers_every_rule_once() {
        let p = compiled();
        let idx = RuleIndex::new(&p);
        assert_eq!(idx.len(), p.rule_count());
        for w in &p.workloads {
            for r in &w.rules {
                let (rule, info) = idx.get(r.id).unwrap();
                assert_eq!(rule, r);
                assert_eq!(Some(info), p.policy_of(r));
            }
        }
        assert!(idx.get(u32::MAX).is_none());
        // A rule pointing at a policy that does not exist is left out, not a panic.
        let mut broken = p.clone();
        if let Some(r) = broken
            .workloads
            .first_mut()
            .and_then(|w| w.rules.first_mut())
        {
            r.policy = 77;
        }
        assert_eq!(RuleIndex::new(&broken).len(), p.rule_count() - 1);
    }

    #[test]
    fn times_are_clamped() {
        assert_eq!(
            times(UNIX_EPOCH - Duration::from_secs(5)),
            (0, "1970-01-01T00:00:00.000000Z".to_string())
        );
        let (secs, s) = times(UNIX_EPOCH + Duration::from_secs(400_000_000_000));
        assert_eq!(
            (secs, s.as_str()),
            (253_402_300_799, "9999-12-31T23:59:59.000000Z")
        );
    }

    fn sample() -> Alert {
        let p = compiled();
        let b = AlertBuilder::new(&p, Enforcer::BpfLsm, "edge-7".into());
        b.build(
            &event(
                Category::Process,
                Some(rule_id(&p, "ksp-block-sh")),
                Action::Block,
                true,
            ),
            &proc_of_shell(),
        )
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sink_writes_one_line_per_alert_to_the_stream() {
        let out = Shared::default();
        let mut sink = AlertSink::new().with_writer(Box::new(out.clone()));
        let a = sample();
        sink.write(&a);
        sink.write(&a);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(serde_json::from_str::<Alert>(lines[0]).unwrap(), a);
        assert_eq!(sink.stats().written, 2);
        assert_eq!(sink.stats().dropped, 0);
    }

    #[test]
    fn sink_counts_failures_and_keeps_going() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("alerts.jsonl");
        let mut sink = AlertSink::new()
            .with_writer(Box::new(Broken))
            .with_file(&path, Rotation::default())
            .unwrap();
        sink.write(&sample());
        assert_eq!(sink.stats().dropped, 1);
        assert_eq!(sink.stats().written, 0);
        assert!(
            sink.stats()
                .last_error
                .as_deref()
                .unwrap()
                .contains("broken pipe")
        );
        // The file target still got the line.
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        // A file that cannot be opened at start is a configuration error.
        let missing = tmp.path().join("no/such/dir/alerts.jsonl");
        let err = AlertSink::new()
            .with_file(&missing, Rotation::default())
            .unwrap_err();
        assert!(matches!(err, AlertError::Open { .. }), "{err}");
    }

    #[test]
    fn file_target_recovers_after_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        fs::create_dir(&dir).unwrap();
        let path = dir.join("alerts.jsonl");
        let mut sink = AlertSink::new()
            .with_file(&path, Rotation::default())
            .unwrap();
        sink.write(&sample());
        // Rotation into a removed directory fails: counted, not fatal.
        let mut small = AlertSink::new()
            .with_file(&path, Rotation::new(MIN_ROTATE_BYTES, 2).unwrap())
            .unwrap();
        fs::remove_dir_all(&dir).unwrap();
        for _ in 0..10 {
            small.write(&sample());
        }
        assert!(small.stats().dropped > 0);
        fs::create_dir(&dir).unwrap();
        small.write(&sample());
        assert!(small.stats().written >= 1);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        drop(sink);
    }

    #[test]
    fn rotation_caps_sizes_and_file_count() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("alerts.jsonl");
        let rot = Rotation::new(MIN_ROTATE_BYTES, 2).unwrap();
        let mut sink = AlertSink::new().with_file(&path, rot).unwrap();
        let a = sample();
        let line_len = serde_json::to_vec(&a).unwrap().len() as u64 + 1;
        let per_file = MIN_ROTATE_BYTES / line_len;
        let total = per_file * 5 + 1;
        for _ in 0..total {
            sink.write(&a);
        }
        assert_eq!(sink.stats().written, total);
        assert_eq!(sink.stats().dropped, 0);
        assert_eq!(sink.stats().rotations, 5);
        let mut names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"]
        );
        for n in &names {
            let len = fs::metadata(tmp.path().join(n)).unwrap().len();
            assert!(len <= MIN_ROTATE_BYTES, "{n} is {len} bytes");
            let text = fs::read_to_string(tmp.path().join(n)).unwrap();
            assert!(
                text.lines()
                    .all(|l| serde_json::from_str::<Alert>(l).is_ok())
            );
        }
        let full = fs::read_to_string(tmp.path().join("alerts.jsonl.1")).unwrap();
        assert_eq!(full.lines().count() as u64, per_file);
        let current = fs::read_to_string(&path).unwrap();
        assert_eq!(current.lines().count(), 1);
        // Reopening continues the current file's size count.
        drop(sink);
        let mut sink = AlertSink::new().with_file(&path, rot).unwrap();
        for _ in 0..per_file {
            sink.write(&a);
        }
        assert_eq!(sink.stats().rotations, 1);
    }

    #[test]
    fn rotation_with_no_old_files_and_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.log");
        let mut sink = AlertSink::new()
            .with_file(&path, Rotation::new(MIN_ROTATE_BYTES, 0).unwrap())
            .unwrap();
        for _ in 0..50 {
            sink.write(&sample());
        }
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        assert!(fs::metadata(&path).unwrap().len() <= MIN_ROTATE_BYTES);
        assert!(matches!(
            Rotation::new(MIN_ROTATE_BYTES - 1, 1),
            Err(AlertError::RotateTooSmall(_))
        ));
        assert!(matches!(
            Rotation::new(MIN_ROTATE_BYTES, MAX_KEEP + 1),
            Err(AlertError::KeepTooMany(_))
        ));
        // A line larger than the rotation size is written alone, not lost.
        let mut big = sample();
        big.resource = "x".repeat(usize::try_from(MIN_ROTATE_BYTES).unwrap());
        sink.write(&big);
        sink.write(&sample());
        assert_eq!(sink.stats().dropped, 0);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
    }
}
