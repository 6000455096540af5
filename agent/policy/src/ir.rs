//! The rule IR: what every enforcer consumes, and what a signed bundle carries.
//!
//! Why this shape: KubeArmor applies policies per *workload* (a container, or the host), and
//! several policies that select the same workload are merged. Selectors that are written
//! identically are merged here, at compile time, into one [`WorkloadRules`]; selectors that
//! merely overlap (`group: g` and `container: c`) can only be resolved against a concrete
//! workload, which [`CompiledPolicy::effective`] does at run time. Rule ids are dense and stable
//! within one compilation, so kernel maps and alerts can refer to a rule by a `u32`.
//!
//! Allow-list semantics (KubeArmor's): an `Allow` rule puts its category into allow-list mode
//! for that workload — for every process when the rule has no `fromSource`, else only for the
//! named source executables. In allow-list mode, whatever no Allow rule permits falls to the
//! category's **default posture**, and those alerts carry the policy name `DefaultPosture`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{
    Action, Category, ExprKey, ExprOp, Policy, PolicyKind, Selector, Source, Target,
};

/// Version of the IR encoding carried in bundles; bump on any incompatible change.
pub const IR_FORMAT: u16 = 2;

/// The policy name KubeArmor gives alerts raised by the default posture.
pub const DEFAULT_POSTURE: &str = "DefaultPosture";

/// Node label that selects "every node" with the value `*` (KubeArmor's convention), and that
/// the agent sets to the node's host name.
pub const HOSTNAME_LABEL: &str = "kubearmor.io/hostname";

/// What happens to an operation no Allow rule permits, per category, in allow-list mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posture {
    pub process: Action,
    pub file: Action,
    pub network: Action,
    pub capabilities: Action,
}

impl Default for Posture {
    /// KubeArmor's default: audit everywhere, so an Allow policy never breaks an application
    /// until the operator chooses `block`.
    fn default() -> Self {
        Posture::uniform(Action::Audit)
    }
}

impl Posture {
    pub fn uniform(a: Action) -> Self {
        Posture {
            process: a,
            file: a,
            network: a,
            capabilities: a,
        }
    }

    pub fn for_category(&self, c: Category) -> Action {
        match c {
            Category::Process => self.process,
            Category::File => self.file,
            Category::Network => self.network,
            Category::Capabilities => self.capabilities,
            Category::Syscalls => Action::Audit,
        }
    }

    /// Parse `block`, `audit`, `allow`, or per category `file=block,network=audit,...`
    /// (categories not named keep KubeArmor's default, audit).
    pub fn parse(s: &str) -> Result<Self, PostureError> {
        fn action(v: &str) -> Result<Action, PostureError> {
            match v.trim().to_ascii_lowercase().as_str() {
                "block" => Ok(Action::Block),
                "audit" => Ok(Action::Audit),
                "allow" => Ok(Action::Allow),
                _ => Err(PostureError(format!(
                    "posture `{v}` is not block, audit or allow"
                ))),
            }
        }
        if !s.contains('=') {
            return Ok(Posture::uniform(action(s)?));
        }
        let mut p = Posture::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| PostureError(format!("`{part}` is not CATEGORY=POSTURE")))?;
            let a = action(v)?;
            match k.trim().to_ascii_lowercase().as_str() {
                "process" => p.process = a,
                "file" => p.file = a,
                "network" => p.network = a,
                "capabilities" => p.capabilities = a,
                other => {
                    return Err(PostureError(format!(
                        "unknown posture category `{other}`; expected process, file, network \
                         or capabilities"
                    )));
                }
            }
        }
        Ok(p)
    }
}

/// A malformed posture setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PostureError(pub String);

/// Which workloads a group of rules applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadSelector {
    /// The node itself (KubeArmorHostPolicy), chosen by node labels.
    Host(Selector),
    /// Containers of one namespace (KubeArmorPolicy).
    Namespaced {
        namespace: String,
        selector: Selector,
    },
    /// Containers of any namespace (KubeArmorClusterPolicy).
    Cluster(Selector),
}

/// A concrete workload, as the agent identifies it (labels come from the runtime or the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    Host {
        labels: BTreeMap<String, String>,
    },
    Container {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
}

/// Provenance of one source policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub kind: PolicyKind,
    pub namespace: Option<String>,
    /// Where it came from (`file.yaml#1`).
    pub source: String,
    /// Native AppArmor rules, for the AppArmor enforcer only.
    pub apparmor: Option<String>,
    /// Fields parsed but not enforced (`field: reason`).
    pub unsupported: Vec<String>,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Dense id, unique in this compilation.
    pub id: u32,
    /// Index into [`CompiledPolicy::policies`].
    pub policy: u32,
    pub target: Target,
    pub from_source: Vec<Source>,
    pub owner_only: bool,
    pub read_only: bool,
    pub action: Action,
    pub severity: u8,
    pub tags: Vec<String>,
    pub message: String,
}

impl Rule {
    pub fn category(&self) -> Category {
        self.target.category()
    }
}

/// Where a category is in allow-list mode: for everyone, or for one source executable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AllowScope {
    pub category: Category,
    pub source: Option<Source>,
}

/// All rules for one selector, merged from every policy that names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRules {
    pub selector: WorkloadSelector,
    pub rules: Vec<Rule>,
    pub allow_lists: Vec<AllowScope>,
    /// Policies (indices into [`CompiledPolicy::policies`]) with native AppArmor rules
    /// (`spec.apparmor`) for this selector; the AppArmor enforcer adds them to the profile.
    pub native: Vec<u32>,
}

/// The compiler's output and a bundle's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledPolicy {
    pub format: u16,
    pub posture: Posture,
    pub policies: Vec<PolicyInfo>,
    pub workloads: Vec<WorkloadRules>,
}

/// A policy document and where it came from, as the compiler takes it.
#[derive(Debug, Clone)]
pub struct SourcePolicy {
    pub policy: Policy,
    /// Display name of the source (`path/file.yaml#2`).
    pub source: String,
}

/// Compilation problems that span documents (each document is already valid on its own).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error(
        "{second}: {kind} `{name}`{ns} is also defined in {first}; a name may be used once per \
         kind and namespace"
    )]
    DuplicateName {
        kind: &'static str,
        name: String,
        ns: String,
        first: String,
        second: String,
    },
    #[error("{0} rules do not fit in a 32-bit rule id")]
    TooManyRules(usize),
}

/// Keep the last definition of each (kind, namespace, name), as `kubectl apply` of the same
/// files would: a later document with the same identity replaces the earlier one. Returns the
/// survivors in their original order and one note per replacement.
pub fn latest_definitions(inputs: Vec<SourcePolicy>) -> (Vec<SourcePolicy>, Vec<String>) {
    let key = |p: &Policy| (p.kind, p.namespace.clone(), p.name.clone());
    let mut last: BTreeMap<(PolicyKind, Option<String>, String), usize> = BTreeMap::new();
    for (i, input) in inputs.iter().enumerate() {
        last.insert(key(&input.policy), i);
    }
    let mut notes = Vec::new();
    let mut kept = Vec::with_capacity(last.len());
    let sources: Vec<String> = inputs.iter().map(|i| i.source.clone()).collect();
    for (i, input) in inputs.into_iter().enumerate() {
        match last.get(&key(&input.policy)) {
            Some(&winner) if winner != i => {
                let by = sources.get(winner).cloned().unwrap_or_default();
                notes.push(format!(
                    "{}: warning: {} `{}` is replaced by the later definition in {by} (same kind, \
                     namespace and name: the last one wins, as with kubectl apply)",
                    input.source,
                    input.policy.kind.as_str(),
                    input.policy.name,
                ));
            }
            _ => kept.push(input),
        }
    }
    (kept, notes)
}

/// Compile validated policies into the IR, merging policies that select the same workloads.
pub fn compile(inputs: &[SourcePolicy], posture: Posture) -> Result<CompiledPolicy, CompileError> {
    let mut seen: BTreeMap<(PolicyKind, Option<String>, String), String> = BTreeMap::new();
    let mut groups: BTreeMap<WorkloadSelector, Vec<(u32, &crate::model::RuleSpec)>> =
        BTreeMap::new();
    let mut native: BTreeMap<WorkloadSelector, Vec<u32>> = BTreeMap::new();
    let mut policies = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let p = &input.policy;
        let key = (p.kind, p.namespace.clone(), p.name.clone());
        if let Some(first) = seen.get(&key) {
            return Err(CompileError::DuplicateName {
                kind: p.kind.as_str(),
                name: p.name.clone(),
                ns: p
                    .namespace
                    .as_ref()
                    .map(|n| format!(" in namespace `{n}`"))
                    .unwrap_or_default(),
                first: first.clone(),
                second: input.source.clone(),
            });
        }
        seen.insert(key, input.source.clone());
        let policy_id = u32::try_from(index).map_err(|_| CompileError::TooManyRules(index))?;
        policies.push(PolicyInfo {
            name: p.name.clone(),
            kind: p.kind,
            namespace: p.namespace.clone(),
            source: input.source.clone(),
            apparmor: p.apparmor.clone(),
            unsupported: p
                .unsupported
                .iter()
                .map(|u| format!("{}: {}", u.field, u.reason))
                .collect(),
        });
        let selector = match p.kind {
            PolicyKind::KubeArmorHostPolicy => WorkloadSelector::Host(p.selector.clone()),
            PolicyKind::KubeArmorPolicy => WorkloadSelector::Namespaced {
                namespace: p.namespace.clone().unwrap_or_else(|| "default".to_string()),
                selector: p.selector.clone(),
            },
            PolicyKind::KubeArmorClusterPolicy => WorkloadSelector::Cluster(p.selector.clone()),
        };
        if p.apparmor.is_some() {
            native.entry(selector.clone()).or_default().push(policy_id);
        }
        let group = groups.entry(selector).or_default();
        group.extend(p.rules.iter().map(|r| (policy_id, r)));
    }

    let mut next_id: u32 = 0;
    let mut workloads = Vec::with_capacity(groups.len());
    for (selector, specs) in groups {
        let mut rules = Vec::with_capacity(specs.len());
        let mut allow: BTreeSet<AllowScope> = BTreeSet::new();
        for (policy, r) in specs {
            if r.action == Action::Allow {
                let category = r.target.category();
                // KubeArmor puts a container's whole network in allow-list mode even for an
                // Allow rule with fromSource (multiubuntu scenario 12: `wget` falls to the
                // posture beside an Allow for curl); host policies scope it to the source.
                let container_network =
                    category == Category::Network && !matches!(selector, WorkloadSelector::Host(_));
                if r.from_source.is_empty() || container_network {
                    allow.insert(AllowScope {
                        category,
                        source: None,
                    });
                } else {
                    allow.extend(r.from_source.iter().map(|s| AllowScope {
                        category,
                        source: Some(s.clone()),
                    }));
                }
            }
            rules.push(Rule {
                id: next_id,
                policy,
                target: r.target.clone(),
                from_source: r.from_source.clone(),
                owner_only: r.owner_only,
                read_only: r.read_only,
                action: r.action,
                severity: r.severity,
                tags: r.tags.clone(),
                message: r.message.clone(),
            });
            next_id = next_id
                .checked_add(1)
                .ok_or(CompileError::TooManyRules(usize::MAX))?;
        }
        workloads.push(WorkloadRules {
            native: native.remove(&selector).unwrap_or_default(),
            selector,
            rules,
            allow_lists: allow.into_iter().collect(),
        });
    }
    Ok(CompiledPolicy {
        format: IR_FORMAT,
        posture,
        policies,
        workloads,
    })
}

/// The rules in force for one concrete workload: the union of every matching group.
#[derive(Debug, Clone, Default)]
pub struct EffectiveRules<'a> {
    pub rules: Vec<&'a Rule>,
    pub allow_lists: BTreeSet<&'a AllowScope>,
    pub posture: Posture,
    /// Policies with native AppArmor rules that apply (see [`WorkloadRules::native`]): the
    /// policy index and the policy.
    pub native: Vec<(u32, &'a PolicyInfo)>,
}

/// Alerts for what a policy's native AppArmor rules denied carry this pseudo rule id
/// (`NATIVE_RULE_BASE + policy index`): dense rule ids never reach it.
pub const NATIVE_RULE_BASE: u32 = 0xf000_0000;

impl CompiledPolicy {
    /// Resolve the selectors against one workload (KubeArmor merges all matching policies).
    pub fn effective(&self, workload: &Workload) -> EffectiveRules<'_> {
        let mut eff = EffectiveRules {
            posture: self.posture,
            ..EffectiveRules::default()
        };
        for w in &self.workloads {
            if w.selector.matches(workload) {
                eff.rules.extend(w.rules.iter());
                eff.allow_lists.extend(w.allow_lists.iter());
                eff.native.extend(w.native.iter().filter_map(|i| {
                    usize::try_from(*i)
                        .ok()
                        .and_then(|u| self.policies.get(u))
                        .map(|p| (*i, p))
                }));
            }
        }
        eff
    }

    /// The policy a rule came from.
    pub fn policy_of(&self, rule: &Rule) -> Option<&PolicyInfo> {
        usize::try_from(rule.policy)
            .ok()
            .and_then(|i| self.policies.get(i))
    }

    pub fn rule_count(&self) -> usize {
        self.workloads.iter().map(|w| w.rules.len()).sum()
    }

    /// Encode as a bundle payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Decode a bundle payload; rejects other IR formats.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IrDecodeError> {
        let p: CompiledPolicy = postcard::from_bytes(bytes).map_err(IrDecodeError::Decode)?;
        if p.format != IR_FORMAT {
            return Err(IrDecodeError::Format(p.format));
        }
        Ok(p)
    }
}

/// A payload that is not a compiled policy this agent understands.
#[derive(Debug, thiserror::Error)]
pub enum IrDecodeError {
    #[error("payload is not a compiled policy: {0}")]
    Decode(postcard::Error),
    #[error("compiled policy format {0} is not supported (this agent reads format {IR_FORMAT})")]
    Format(u16),
}

impl WorkloadSelector {
    pub fn matches(&self, w: &Workload) -> bool {
        match (self, w) {
            (WorkloadSelector::Host(sel), Workload::Host { labels }) => sel
                .match_labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| v == "*" || have == v)),
            (
                WorkloadSelector::Namespaced {
                    namespace,
                    selector,
                },
                Workload::Container {
                    namespace: ns,
                    labels,
                },
            ) => namespace == ns && selector_matches(selector, ns, labels),
            (WorkloadSelector::Cluster(sel), Workload::Container { namespace, labels }) => {
                selector_matches(sel, namespace, labels)
            }
            _ => false,
        }
    }
}

fn selector_matches(sel: &Selector, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && sel.expressions.iter().all(|e| {
            let hit = e.values.iter().any(|v| match e.key {
                ExprKey::Namespace => v == namespace,
                ExprKey::Label => match v.split_once('=') {
                    Some((k, val)) => labels.get(k).is_some_and(|have| have == val),
                    None => labels.contains_key(v.as_str()),
                },
            });
            match e.op {
                ExprOp::In => hit,
                ExprOp::NotIn => !hit,
            }
        })
}

impl fmt::Display for WorkloadSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn sel(s: &Selector) -> String {
            let mut parts: Vec<String> = s
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.extend(s.expressions.iter().map(|e| {
                format!(
                    "{} {} ({})",
                    match e.key {
                        ExprKey::Label => "label",
                        ExprKey::Namespace => "namespace",
                    },
                    match e.op {
                        ExprOp::In => "in",
                        ExprOp::NotIn => "notin",
                    },
                    e.values.join(", ")
                )
            }));
            if parts.is_empty() {
                "*".to_string()
            } else {
                parts.join(", ")
            }
        }
        match self {
            WorkloadSelector::Host(s) => write!(f, "host [{}]", sel(s)),
            WorkloadSelector::Namespaced {
                namespace,
                selector,
            } => write!(f, "namespace {namespace} [{}]", sel(selector)),
            WorkloadSelector::Cluster(s) => write!(f, "cluster [{}]", sel(s)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::parse::parse_policies;

    pub(crate) fn compile_src(src: &str) -> CompiledPolicy {
        crate::compile_text(src, "test.yaml", Posture::uniform(Action::Block)).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    const TWO: &str = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: a, namespace: ms}\nspec:\n  selector: {matchLabels: {group: g}}\n  process: {matchPaths: [{path: /bin/sh}]}\n  action: Block\n---\napiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: b, namespace: ms}\nspec:\n  selector: {matchLabels: {group: g}}\n  file: {matchPaths: [{path: /etc/hosts, fromSource: [{path: /bin/cat}]}]}\n  action: Allow\n---\napiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: c, namespace: ms}\nspec:\n  selector: {matchLabels: {container: c1}}\n  network: {matchProtocols: [{protocol: raw}]}\n  action: Block\n";

    #[test]
    fn identical_selectors_merge_and_overlapping_ones_resolve_at_run_time() {
        let ir = compile_src(TWO);
        assert_eq!(ir.workloads.len(), 2);
        let merged = ir
            .workloads
            .iter()
            .find(|w| w.rules.len() == 2)
            .expect("merged group");
        assert_eq!(
            merged.allow_lists,
            vec![AllowScope {
                category: Category::File,
                source: Some(Source::Path("/bin/cat".into()))
            }]
        );
        let both = Workload::Container {
            namespace: "ms".into(),
            labels: labels(&[("group", "g"), ("container", "c1")]),
        };
        assert_eq!(ir.effective(&both).rules.len(), 3);
        let other_ns = Workload::Container {
            namespace: "other".into(),
            labels: labels(&[("group", "g"), ("container", "c1")]),
        };
        assert_eq!(ir.effective(&other_ns).rules.len(), 0);
        let ids: Vec<u32> = ir
            .workloads
            .iter()
            .flat_map(|w| w.rules.iter().map(|r| r.id))
            .collect();
        assert_eq!(ids, vec![0, 1, 2]);
    }

    #[test]
    fn duplicate_names_are_rejected_with_both_sources() {
        let doc = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: a}\nspec:\n  process: {matchPaths: [{path: /bin/sh}]}\n";
        let parsed = parse_policies(&format!("{doc}---\n{doc}"));
        let inputs: Vec<SourcePolicy> = parsed
            .documents
            .into_iter()
            .enumerate()
            .map(|(i, d)| SourcePolicy {
                policy: d.policy,
                source: format!("f.yaml#{}", i + 1),
            })
            .collect();
        let err = compile(&inputs, Posture::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml#2: KubeArmorPolicy `a` in namespace `default` is also defined in f.yaml#1; a \
             name may be used once per kind and namespace"
        );
    }

    #[test]
    fn the_last_definition_of_a_name_wins() {
        let doc = |p: &str| {
            format!(
                "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {{name: a}}\nspec:\n  process: {{matchPaths: [{{path: {p}}}]}}\n"
            )
        };
        let parsed = parse_policies(&format!("{}---\n{}", doc("/bin/one"), doc("/bin/two")));
        let inputs: Vec<SourcePolicy> = parsed
            .documents
            .into_iter()
            .enumerate()
            .map(|(i, d)| SourcePolicy {
                policy: d.policy,
                source: format!("f.yaml#{}", i + 1),
            })
            .collect();
        let (kept, notes) = latest_definitions(inputs);
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].policy.rules[0].target,
            Target::ExecPath("/bin/two".into())
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with(
            "f.yaml#1: warning: KubeArmorPolicy `a` is replaced by the later definition in f.yaml#2"
        ));
    }

    #[test]
    fn expressions_and_host_wildcards() {
        let src = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: e, namespace: m}\nspec:\n  selector:\n    matchExpressions:\n    - {key: label, operator: In, values: [container=ubuntu-1]}\n    - {key: label, operator: NotIn, values: [container=ubuntu-3]}\n  process: {matchPaths: [{execname: apt}]}\n---\napiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {name: h}\nspec:\n  nodeSelector: {matchLabels: {kubearmor.io/hostname: '*'}}\n  file: {matchPaths: [{path: /etc/shadow}]}\n";
        let ir = compile_src(src);
        let c1 = Workload::Container {
            namespace: "m".into(),
            labels: labels(&[("container", "ubuntu-1")]),
        };
        let c3 = Workload::Container {
            namespace: "m".into(),
            labels: labels(&[("container", "ubuntu-3")]),
        };
        assert_eq!(ir.effective(&c1).rules.len(), 1);
        assert_eq!(ir.effective(&c3).rules.len(), 0);
        let host = Workload::Host {
            labels: labels(&[(HOSTNAME_LABEL, "edge-7")]),
        };
        assert_eq!(ir.effective(&host).rules.len(), 1);
    }

    #[test]
    fn payload_round_trips_and_checks_its_format() {
        let ir = compile_src(TWO);
        let bytes = ir.to_bytes().unwrap();
        assert_eq!(CompiledPolicy::from_bytes(&bytes).unwrap(), ir);
        let mut other = ir.clone();
        other.format = 99;
        let bytes = other.to_bytes().unwrap();
        assert!(matches!(
            CompiledPolicy::from_bytes(&bytes),
            Err(IrDecodeError::Format(99))
        ));
    }

    #[test]
    fn posture_parsing() {
        assert_eq!(
            Posture::parse("block").unwrap(),
            Posture::uniform(Action::Block)
        );
        let p = Posture::parse("file=block,network=allow").unwrap();
        assert_eq!(
            (p.file, p.network, p.process),
            (Action::Block, Action::Allow, Action::Audit)
        );
        assert!(Posture::parse("files=block").is_err());
        assert!(Posture::parse("deny").is_err());
    }
}
