//! The validated, typed form of KubeArmor policy documents.
//!
//! Why a separate model: [`crate::parse`] turns positioned YAML into these types only after
//! every CRD rule has been checked, so the compiler ([`crate::ir`]) never sees an invalid value
//! and needs no error paths of its own. Inheritance (rule → section → spec for `action`,
//! `severity`, `tags`, `message`) is resolved here, once, exactly as KubeArmor does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::yaml::Pos;

/// What happens when a rule matches (KubeArmor's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Audit,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "Allow",
            Action::Audit => "Audit",
            Action::Block => "Block",
        }
    }
}

/// The three KubeArmor document kinds armlet accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyKind {
    KubeArmorPolicy,
    KubeArmorHostPolicy,
    KubeArmorClusterPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::KubeArmorPolicy => "KubeArmorPolicy",
            PolicyKind::KubeArmorHostPolicy => "KubeArmorHostPolicy",
            PolicyKind::KubeArmorClusterPolicy => "KubeArmorClusterPolicy",
        }
    }
}

/// Rule categories; each has its own allow-list mode and default posture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    Process,
    File,
    Network,
    Capabilities,
    /// Observed only (KubeArmor's syscalls rules are audit-only by definition).
    Syscalls,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Process => "Process",
            Category::File => "File",
            Category::Network => "Network",
            Category::Capabilities => "Capabilities",
            Category::Syscalls => "Syscalls",
        }
    }
}

/// `matchExpressions[].key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExprKey {
    /// Values are `key=value` label pairs (or a bare key: the label exists).
    Label,
    /// Cluster policies only: values are namespace names.
    Namespace,
}

/// `matchExpressions[].operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExprOp {
    In,
    NotIn,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Expression {
    pub key: ExprKey,
    pub op: ExprOp,
    pub values: Vec<String>,
}

/// A workload (container) selector or, for host policies, a node selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub expressions: Vec<Expression>,
}

/// A `fromSource` entry: the executable of the process doing the operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// An exact executable path.
    Path(String),
    /// Executables in a directory (syscall rules only); `recursive` includes subdirectories.
    Dir { dir: String, recursive: bool },
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// Executing exactly this binary.
    ExecPath(String),
    /// Executing any binary with this file name.
    ExecName(String),
    /// Executing binaries in this directory (`recursive`: also below it).
    ExecDir { dir: String, recursive: bool },
    /// Executing binaries whose path matches this glob.
    ExecPattern(String),
    /// Opening exactly this file.
    FilePath(String),
    /// Opening files in this directory (`recursive`: also below it).
    FileDir { dir: String, recursive: bool },
    /// Opening files whose path matches this glob.
    FilePattern(String),
    /// Creating/using sockets of this protocol (lower-case KubeArmor name).
    Protocol(String),
    /// Using this capability (name without `cap_`, kernel number).
    Capability { name: String, number: u8 },
    /// DNS queries for this domain (parsed for compatibility; no enforcer implements it yet).
    DnsQuery(String),
    /// These syscalls, optionally only on a path or directory.
    Syscall {
        names: Vec<String>,
        path: Option<String>,
        recursive: bool,
    },
}

impl Target {
    pub fn category(&self) -> Category {
        match self {
            Target::ExecPath(_)
            | Target::ExecName(_)
            | Target::ExecDir { .. }
            | Target::ExecPattern(_) => Category::Process,
            Target::FilePath(_) | Target::FileDir { .. } | Target::FilePattern(_) => Category::File,
            Target::Protocol(_) | Target::DnsQuery(_) => Category::Network,
            Target::Capability { .. } => Category::Capabilities,
            Target::Syscall { .. } => Category::Syscalls,
        }
    }

    /// The resource as KubeArmor alerts name it (`Resource` / scenario `condition`).
    pub fn resource(&self) -> String {
        match self {
            Target::ExecPath(p) | Target::FilePath(p) => p.clone(),
            Target::ExecName(n) => n.clone(),
            Target::ExecDir { dir, .. } | Target::FileDir { dir, .. } => dir.clone(),
            Target::ExecPattern(p) | Target::FilePattern(p) => p.clone(),
            Target::Protocol(p) => p.clone(),
            Target::Capability { name, .. } => name.clone(),
            Target::DnsQuery(d) => d.clone(),
            Target::Syscall { names, .. } => names.join(","),
        }
    }
}

/// One rule with inheritance already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub target: Target,
    pub from_source: Vec<Source>,
    pub owner_only: bool,
    pub read_only: bool,
    pub action: Action,
    pub severity: u8,
    pub tags: Vec<String>,
    pub message: String,
    /// Where the rule is written (the list item).
    pub pos: Pos,
}

/// A field armlet parses for compatibility but no enforcer implements (reported, never silent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub pos: Pos,
    pub field: String,
    pub reason: String,
}

/// One validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub name: String,
    /// The namespace of a KubeArmorPolicy (default `default`); None for host and cluster policies.
    pub namespace: Option<String>,
    /// Workload selector (container policies) or node selector (host policies).
    pub selector: Selector,
    pub rules: Vec<RuleSpec>,
    /// Native AppArmor rules (`spec.apparmor`), passed through by the AppArmor enforcer only.
    pub apparmor: Option<String>,
    pub unsupported: Vec<Unsupported>,
    /// Where the document starts.
    pub pos: Pos,
}
