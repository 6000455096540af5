//! IR → kernel map entries for the BPF-LSM enforcer (pure; unit-tested without a kernel).
//!
//! Why separate from the loader: what goes into the maps is the whole security decision, so it
//! is computed as plain data from the compiled policy and tested against the same expectations
//! as `armlet_policy::eval`; the loader only copies it into the kernel.
//!
//! Every concrete workload (the host at index 0, each confined container at its own index) gets
//! its *effective* rules — the union of every matching selector group — written under that
//! index. A `fromSource` path is one source id everywhere, but the executable it names is
//! looked up in the root of each workload that uses it (a container's `/bin/bash` is not the
//! host's), so [`KernelRules::source_uses`] records which workloads need which path. Rules the enforcer's support table marks "audit only" are written as Audit (observed,
//! never denied); "ignored" rules and targets the kernel cannot match (globs, syscalls, DNS)
//! are left out and stay listed in the support report.

use std::collections::BTreeMap;

use armlet_ebpf as abi;
use armlet_policy::ir::{EffectiveRules, Rule};
use armlet_policy::model::{Action, Category, Source, Target};
use armlet_policy::support::{self, Enforcer, Support};

/// Everything the kernel needs for one generation of the policy.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelRules {
    /// Source executable path → id (ids start at 1; 0 means "any process").
    pub sources: BTreeMap<String, u32>,
    /// (path, workload): the workloads whose rules name each source path.
    pub source_uses: std::collections::BTreeSet<(String, u32)>,
    /// (workload, source, category, kind, path) → up to four rule slots.
    pub path_rules: BTreeMap<(u32, u32, u8, u8, String), abi::RuleSet>,
    /// (workload, source, category, id) → up to four rule slots.
    pub id_rules: BTreeMap<(u32, u32, u8, u16), abi::RuleSet>,
    /// (workload, source, category) → default posture action, for allow-list scopes.
    pub allow_lists: BTreeMap<(u32, u32, u8), u8>,
    /// Rules that are only in the support report (not matched in the kernel), by id.
    pub not_in_kernel: Vec<u32>,
}

/// Why a policy does not fit the kernel's maps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelRulesError {
    #[error("rule #{rule}: {source}")]
    Path {
        rule: u32,
        #[source]
        source: abi::PathTooLong,
    },
    #[error(
        "more than {} rules on `{path}` for one workload and source; merge them",
        abi::RULES_PER_KEY
    )]
    TooManyOnOneKey { path: String },
    #[error("protocol `{0}` has no kernel id")]
    UnknownProtocol(String),
    #[error("more than {0} distinct fromSource executables")]
    TooManySources(usize),
}

fn action_code(a: Action) -> u8 {
    match a {
        Action::Allow => abi::ACT_ALLOW,
        Action::Audit => abi::ACT_AUDIT,
        Action::Block => abi::ACT_BLOCK,
    }
}

fn category_code(c: Category) -> Option<u8> {
    match c {
        Category::Process => Some(abi::CAT_PROCESS),
        Category::File => Some(abi::CAT_FILE),
        Category::Network => Some(abi::CAT_NETWORK),
        Category::Capabilities => Some(abi::CAT_CAPABILITY),
        Category::Syscalls => None,
    }
}

/// Where a rule lives in the maps.
enum Slot {
    Path(u8, u8, String),
    Id(u8, u16),
}

fn slot_of(rule: &Rule) -> Result<Option<Slot>, KernelRulesError> {
    Ok(Some(match &rule.target {
        Target::ExecPath(p) => Slot::Path(abi::CAT_PROCESS, abi::KIND_EXACT, p.clone()),
        Target::ExecName(n) => Slot::Path(abi::CAT_PROCESS, abi::KIND_NAME, n.clone()),
        Target::ExecDir { dir, recursive } => {
            Slot::Path(abi::CAT_PROCESS, dir_kind(*recursive), dir.clone())
        }
        Target::FilePath(p) => Slot::Path(abi::CAT_FILE, abi::KIND_EXACT, p.clone()),
        Target::FileDir { dir, recursive } => {
            Slot::Path(abi::CAT_FILE, dir_kind(*recursive), dir.clone())
        }
        Target::Protocol(p) => Slot::Id(
            abi::CAT_NETWORK,
            abi::protocol_id(p).ok_or_else(|| KernelRulesError::UnknownProtocol(p.clone()))?,
        ),
        Target::Capability { number, .. } => Slot::Id(abi::CAT_CAPABILITY, u16::from(*number)),
        Target::ExecPattern(_)
        | Target::FilePattern(_)
        | Target::DnsQuery(_)
        | Target::Syscall { .. } => {
            return Ok(None);
        }
    }))
}

fn dir_kind(recursive: bool) -> u8 {
    if recursive {
        abi::KIND_DIR_RECURSIVE
    } else {
        abi::KIND_DIR_DIRECT
    }
}

fn push(set: &mut abi::RuleSet, slot: abi::RuleSlot, what: &str) -> Result<(), KernelRulesError> {
    match set.slots.iter_mut().find(|s| s.rule_id == abi::NO_RULE) {
        Some(free) => {
            *free = slot;
            Ok(())
        }
        None => Err(KernelRulesError::TooManyOnOneKey {
            path: what.to_string(),
        }),
    }
}

impl KernelRules {
    /// Add the effective rules of one workload under `workload`.
    pub fn add_workload(
        &mut self,
        workload: u32,
        eff: &EffectiveRules<'_>,
        enforcer: Enforcer,
        max_sources: usize,
    ) -> Result<(), KernelRulesError> {
        for rule in &eff.rules {
            let action =
                match support::support(enforcer, &rule.target, &rule.from_source, rule.action) {
                    Support::Enforced | Support::Partial(_) => rule.action,
                    Support::AuditOnly(_) => Action::Audit,
                    Support::Ignored(_) => {
                        self.not_in_kernel.push(rule.id);
                        continue;
                    }
                };
            let Some(slot) = slot_of(rule)? else {
                self.not_in_kernel.push(rule.id);
                continue;
            };
            if let Slot::Path(_, _, p) = &slot {
                abi::path_bytes(p).map_err(|source| KernelRulesError::Path {
                    rule: rule.id,
                    source,
                })?;
            }
            let mut flags = 0;
            if rule.read_only {
                flags |= abi::FLAG_READ_ONLY;
            }
            if rule.owner_only {
                flags |= abi::FLAG_OWNER_ONLY;
            }
            let rs = abi::RuleSlot {
                rule_id: rule.id,
                action: action_code(action),
                flags,
                _pad: 0,
            };
            for src in self.source_ids(workload, &rule.from_source, max_sources)? {
                match &slot {
                    Slot::Path(cat, kind, path) => push(
                        self.path_rules
                            .entry((workload, src, *cat, *kind, path.clone()))
                            .or_default(),
                        rs,
                        path,
                    )?,
                    Slot::Id(cat, id) => push(
                        self.id_rules.entry((workload, src, *cat, *id)).or_default(),
                        rs,
                        &rule.target.resource(),
                    )?,
                }
            }
        }
        for scope in &eff.allow_lists {
            let Some(cat) = category_code(scope.category) else {
                continue;
            };
            let posture = action_code(eff.posture.for_category(scope.category));
            let sources = match &scope.source {
                None => vec![0],
                Some(s) => self.source_ids(workload, std::slice::from_ref(s), max_sources)?,
            };
            for src in sources {
                self.allow_lists.insert((workload, src, cat), posture);
            }
        }
        Ok(())
    }

    /// Ids for `fromSource` paths (0 = any process when the list is empty).
    fn source_ids(
        &mut self,
        workload: u32,
        from: &[Source],
        max: usize,
    ) -> Result<Vec<u32>, KernelRulesError> {
        if from.is_empty() {
            return Ok(vec![0]);
        }
        let mut ids = Vec::new();
        for s in from {
            // Directory sources exist only on syscall rules, which never reach the kernel.
            let Source::Path(p) = s else { continue };
            let id = match self.sources.get(p) {
                Some(id) => *id,
                None => {
                    if self.sources.len() >= max {
                        return Err(KernelRulesError::TooManySources(max));
                    }
                    let id = u32::try_from(self.sources.len() + 1)
                        .map_err(|_| KernelRulesError::TooManySources(max))?;
                    self.sources.insert(p.clone(), id);
                    id
                }
            };
            self.source_uses.insert((p.clone(), workload));
            ids.push(id);
        }
        Ok(ids)
    }

    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use armlet_policy::ir::{Posture, Workload};

    fn kernel(src: &str, posture: Action, enforcer: Enforcer) -> KernelRules {
        let ir = armlet_policy::compile_text(src, "t", Posture::uniform(posture)).unwrap();
        let host = Workload::Host {
            labels: [("kubernetes.io/hostname".to_string(), "n".to_string())].into(),
        };
        let mut k = KernelRules::default();
        k.add_workload(0, &ir.effective(&host), enforcer, 64)
            .unwrap();
        k
    }

    const HSP: &str = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {name: t}\nspec:\n  nodeSelector: {matchLabels: {kubernetes.io/hostname: n}}\n";

    #[test]
    fn paths_dirs_names_sources_and_flags() {
        let k = kernel(
            &format!(
                "{HSP}  process:\n    matchPaths:\n    - path: /usr/bin/date\n      fromSource: [{{path: /usr/bin/bash}}]\n    - execname: nc\n  file:\n    matchDirectories:\n    - dir: /etc/ssh/\n      recursive: true\n      readOnly: true\n    - dir: /tmp/\n      ownerOnly: true\n  action: Block\n"
            ),
            Action::Audit,
            Enforcer::BpfLsm,
        );
        assert_eq!(
            k.sources,
            BTreeMap::from([("/usr/bin/bash".to_string(), 1)])
        );
        let keys: Vec<_> = k.path_rules.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![
                (0, 0, abi::CAT_PROCESS, abi::KIND_NAME, "nc".to_string()),
                (
                    0,
                    0,
                    abi::CAT_FILE,
                    abi::KIND_DIR_DIRECT,
                    "/tmp/".to_string()
                ),
                (
                    0,
                    0,
                    abi::CAT_FILE,
                    abi::KIND_DIR_RECURSIVE,
                    "/etc/ssh/".to_string()
                ),
                (
                    0,
                    1,
                    abi::CAT_PROCESS,
                    abi::KIND_EXACT,
                    "/usr/bin/date".to_string()
                ),
            ]
        );
        let ssh = &k.path_rules[&(
            0,
            0,
            abi::CAT_FILE,
            abi::KIND_DIR_RECURSIVE,
            "/etc/ssh/".to_string(),
        )];
        assert_eq!(ssh.slots[0].flags, abi::FLAG_READ_ONLY);
        assert_eq!(ssh.slots[0].action, abi::ACT_BLOCK);
        assert_eq!(ssh.slots[1], abi::RuleSlot::EMPTY);
        assert!(k.allow_lists.is_empty());
    }

    #[test]
    fn allow_lists_carry_the_posture_per_source() {
        let k = kernel(
            &format!(
                "{HSP}  file:\n    matchPaths:\n    - path: /etc/hostname\n      fromSource: [{{path: /usr/bin/head}}]\n  network:\n    matchProtocols:\n    - protocol: tcp\n      fromSource: [{{path: /usr/bin/curl}}]\n  action: Allow\n"
            ),
            Action::Block,
            Enforcer::BpfLsm,
        );
        assert_eq!(
            k.allow_lists,
            BTreeMap::from([
                ((0, 1, abi::CAT_FILE), abi::ACT_BLOCK),
                ((0, 2, abi::CAT_NETWORK), abi::ACT_BLOCK)
            ])
        );
        assert!(k.id_rules.contains_key(&(0, 2, abi::CAT_NETWORK, 1)));
    }

    #[test]
    fn globs_stay_out_of_the_kernel_and_audit_enforcer_downgrades() {
        let src = format!(
            "{HSP}  file:\n    matchPatterns:\n    - pattern: /tmp/*.sh\n    matchPaths:\n    - path: /etc/shadow\n  action: Block\n"
        );
        let k = kernel(&src, Action::Audit, Enforcer::BpfLsm);
        assert_eq!(k.not_in_kernel, vec![1]); // matchPaths are read before matchPatterns
        let k = kernel(&src, Action::Audit, Enforcer::Audit);
        let shadow = &k.path_rules[&(
            0,
            0,
            abi::CAT_FILE,
            abi::KIND_EXACT,
            "/etc/shadow".to_string(),
        )];
        assert_eq!(shadow.slots[0].action, abi::ACT_AUDIT);
    }

    #[test]
    fn four_rules_fit_on_one_key_and_a_fifth_is_an_error() {
        let rules: String = (0..5)
            .map(|i| format!("    - path: /etc/x\n      severity: {}\n", i + 1))
            .collect();
        let src = format!("{HSP}  file:\n    matchPaths:\n{rules}  action: Block\n");
        let ir = armlet_policy::compile_text(&src, "t", Posture::default()).unwrap();
        let host = Workload::Host {
            labels: [("kubernetes.io/hostname".to_string(), "n".to_string())].into(),
        };
        let err = KernelRules::default()
            .add_workload(0, &ir.effective(&host), Enforcer::BpfLsm, 64)
            .unwrap_err();
        assert!(matches!(err, KernelRulesError::TooManyOnOneKey { .. }));
    }

    #[test]
    fn containers_get_their_own_index_and_source_lookups() {
        let src = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: c, namespace: ns}\nspec:\n  selector: {matchLabels: {container: a}}\n  file:\n    matchPaths:\n    - path: /secret.txt\n      fromSource: [{path: /bin/cat}]\n  action: Block\n";
        let ir = armlet_policy::compile_text(src, "t", Posture::default()).unwrap();
        let host = Workload::Host {
            labels: [("kubernetes.io/hostname".to_string(), "n".to_string())].into(),
        };
        let a = Workload::Container {
            namespace: "ns".to_string(),
            labels: [("container".to_string(), "a".to_string())].into(),
        };
        let b = Workload::Container {
            namespace: "ns".to_string(),
            labels: [("container".to_string(), "b".to_string())].into(),
        };
        let mut k = KernelRules::default();
        for (i, w) in [&host, &a, &b].into_iter().enumerate() {
            k.add_workload(i as u32, &ir.effective(w), Enforcer::BpfLsm, 64)
                .unwrap();
        }
        // Only container `a` has the rule, under its index, and only it looks up /bin/cat.
        let keys: Vec<_> = k.path_rules.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![(
                1,
                1,
                abi::CAT_FILE,
                abi::KIND_EXACT,
                "/secret.txt".to_string()
            )]
        );
        assert_eq!(
            k.source_uses.iter().cloned().collect::<Vec<_>>(),
            vec![("/bin/cat".to_string(), 1)]
        );
    }

    #[test]
    fn protocols_and_capabilities_use_kernel_ids() {
        let k = kernel(
            &format!(
                "{HSP}  network:\n    matchProtocols:\n    - protocol: raw\n      fromSource: [{{path: /usr/bin/ping}}]\n  capabilities:\n    matchCapabilities:\n    - capability: net_raw\n      fromSource: [{{path: /usr/bin/ping}}]\n  action: Block\n"
            ),
            Action::Audit,
            Enforcer::BpfLsm,
        );
        assert!(k.id_rules.contains_key(&(0, 1, abi::CAT_NETWORK, 5)));
        assert!(k.id_rules.contains_key(&(0, 1, abi::CAT_CAPABILITY, 13)));
    }
}
