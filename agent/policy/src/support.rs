//! The per-enforcer support table: what each enforcer can block, and what it must downgrade.
//!
//! Why in the compiler: a rule an enforcer cannot express must never be dropped silently. The
//! table is data ([`support`]), the report ([`plan`]) lists every affected rule with the reason,
//! and the agent puts the same report in its status and in each alert (`Audit (Block)`).
//! DESIGN §5 gives the mechanisms; the reasons below say which part of the mechanism is missing.

use serde::Serialize;

use crate::ir::{CompiledPolicy, DEFAULT_POSTURE};
use crate::model::{Action, Category, Source, Target};

/// The four enforcers of DESIGN §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Enforcer {
    #[serde(rename = "bpf-lsm")]
    BpfLsm,
    #[serde(rename = "apparmor")]
    AppArmor,
    #[serde(rename = "fanotify")]
    Fanotify,
    #[serde(rename = "audit")]
    Audit,
}

impl Enforcer {
    pub const ALL: [Enforcer; 4] = [
        Enforcer::BpfLsm,
        Enforcer::AppArmor,
        Enforcer::Fanotify,
        Enforcer::Audit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcer::BpfLsm => "bpf-lsm",
            Enforcer::AppArmor => "apparmor",
            Enforcer::Fanotify => "fanotify",
            Enforcer::Audit => "audit",
        }
    }

    /// The `Enforcer` field of KubeArmor-style alerts.
    pub fn alert_name(self) -> &'static str {
        match self {
            Enforcer::BpfLsm => "BPFLSM",
            Enforcer::AppArmor => "AppArmor",
            Enforcer::Fanotify => "fanotify",
            Enforcer::Audit => "eBPF Monitor",
        }
    }
}

/// How one enforcer handles one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Support {
    /// Enforced as written.
    Enforced,
    /// Observed and alerted as `Audit (<action>)`, never blocked.
    AuditOnly(&'static str),
    /// Not expressible at all: ignored (reported).
    Ignored(&'static str),
    /// Enforced for part of what the rule covers; the rest is neither blocked nor observed.
    Partial(&'static str),
}

const NO_LSM: &str = "the audit enforcer has no LSM: operations are observed, never blocked";
const AUDIT_CAPS: &str = "the audit enforcer never blocks; capability use is observed only where the \
     BPF-LSM programs load (report-only), not by the tracepoint audit enforcer";
const GLOB_IN_KERNEL: &str =
    "glob patterns are not compiled into BPF maps; matched in user space from events";
const FANOTIFY_NO_CAPS: &str = "capability checks have no hook on kernels without BPF-LSM and \
     AppArmor (no LSM, no tracepoint): the fanotify enforcer neither blocks nor observes them";
const FANOTIFY_PACKET: &str = "enforced for inet and inet6 sockets; packet sockets (AF_PACKET, \
     e.g. arping) are created without a cgroup-BPF hook: neither blocked nor observed";
const DNS: &str = "DNS query rules have no enforcer yet";
const SYSCALLS: &str = "syscall rules are audit-only by definition";
const APPARMOR_NO_PROTO: &str =
    "AppArmor network rules cannot name icmpv6, sctp or dccp (neither deny nor audit)";

/// The support table: how `enforcer` handles a rule with this target, sources and action.
pub fn support(
    enforcer: Enforcer,
    target: &Target,
    _from_source: &[Source],
    action: Action,
) -> Support {
    match target {
        Target::DnsQuery(_) => return Support::Ignored(DNS),
        Target::Syscall { .. } => return Support::AuditOnly(SYSCALLS),
        Target::Capability { .. } if enforcer == Enforcer::Fanotify => {
            return Support::Ignored(FANOTIFY_NO_CAPS);
        }
        Target::Protocol(p)
            if enforcer == Enforcer::Fanotify && matches!(p.as_str(), "raw" | "packet" | "all") =>
        {
            return Support::Partial(FANOTIFY_PACKET);
        }
        Target::Protocol(p)
            if enforcer == Enforcer::AppArmor
                && matches!(p.as_str(), "icmpv6" | "sctp" | "dccp") =>
        {
            return Support::Ignored(APPARMOR_NO_PROTO);
        }
        _ => {}
    }
    // Audit rules only need observation, which every enforcer has. Allow rules permit; what
    // they make blockable is the default posture, which `plan` checks per category.
    if action != Action::Block {
        return Support::Enforced;
    }
    match enforcer {
        Enforcer::Audit => match target {
            Target::Capability { .. } => Support::AuditOnly(AUDIT_CAPS),
            _ => Support::AuditOnly(NO_LSM),
        },
        Enforcer::AppArmor => Support::Enforced,
        Enforcer::BpfLsm => match target {
            Target::ExecPattern(_) | Target::FilePattern(_) => Support::AuditOnly(GLOB_IN_KERNEL),
            _ => Support::Enforced,
        },
        // Files and executions through fanotify permission events; sockets (with fromSource,
        // by the caller's exe inode) through a cgroup sock_create program.
        Enforcer::Fanotify => Support::Enforced,
    }
}

/// One rule (or posture) an enforcer does not enforce as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Downgrade {
    /// Rule id, or None for a default posture.
    pub rule: Option<u32>,
    pub policy: String,
    pub category: Category,
    pub resource: String,
    pub action: Action,
    #[serde(flatten)]
    pub support: Support,
}

/// Everything `enforcer` cannot enforce as written in `policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportReport {
    pub enforcer: Enforcer,
    pub downgrades: Vec<Downgrade>,
}

impl SupportReport {
    pub fn is_complete(&self) -> bool {
        self.downgrades.is_empty()
    }
}

/// Check a compiled policy against one enforcer's support table.
pub fn plan(enforcer: Enforcer, policy: &CompiledPolicy) -> SupportReport {
    let mut downgrades = Vec::new();
    for w in &policy.workloads {
        for r in &w.rules {
            let s = support(enforcer, &r.target, &r.from_source, r.action);
            if s != Support::Enforced {
                downgrades.push(Downgrade {
                    rule: Some(r.id),
                    policy: policy
                        .policy_of(r)
                        .map_or_else(String::new, |p| p.name.clone()),
                    category: r.category(),
                    resource: r.target.resource(),
                    action: r.action,
                    support: s,
                });
            }
        }
        // A blocking posture in allow-list mode needs the same mechanism as a Block rule.
        let mut cats: Vec<Category> = w.allow_lists.iter().map(|a| a.category).collect();
        cats.dedup();
        for c in cats {
            if policy.posture.for_category(c) == Action::Block {
                let s = match (enforcer, c) {
                    (Enforcer::Audit, _) => Support::AuditOnly(NO_LSM),
                    (Enforcer::Fanotify, Category::Capabilities) => {
                        Support::Ignored(FANOTIFY_NO_CAPS)
                    }
                    _ => Support::Enforced,
                };
                if s != Support::Enforced {
                    downgrades.push(Downgrade {
                        rule: None,
                        policy: DEFAULT_POSTURE.to_string(),
                        category: c,
                        resource: w.selector.to_string(),
                        action: Action::Block,
                        support: s,
                    });
                }
            }
        }
    }
    // Native AppArmor rules go into the AppArmor enforcer's profiles as written; no other
    // enforcer can read them.
    for p in &policy.policies {
        if p.apparmor.is_some() && enforcer != Enforcer::AppArmor {
            downgrades.push(Downgrade {
                rule: None,
                policy: p.name.clone(),
                category: Category::Process,
                resource: "spec.apparmor".to_string(),
                action: Action::Block,
                support: Support::Ignored("native AppArmor rules need the AppArmor enforcer"),
            });
        }
    }
    SupportReport {
        enforcer,
        downgrades,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::tests::compile_src;

    fn t_exec() -> Target {
        Target::ExecPath("/bin/sh".into())
    }
    fn t_glob() -> Target {
        Target::FilePattern("/tmp/**".into())
    }
    fn t_proto() -> Target {
        Target::Protocol("tcp".into())
    }
    fn t_cap() -> Target {
        Target::Capability {
            name: "net_raw".into(),
            number: 13,
        }
    }

    /// The whole table for Block rules, one row per feature, columns in [`Enforcer::ALL`] order.
    #[test]
    fn the_table() {
        use Support::{AuditOnly as A, Enforced as E, Ignored as I};
        let src = vec![Source::Path("/usr/bin/curl".into())];
        let rows: Vec<(&str, Target, Vec<Source>, [Support; 4])> = vec![
            ("exec path", t_exec(), vec![], [E, E, E, A(NO_LSM)]),
            (
                "file glob",
                t_glob(),
                vec![],
                [A(GLOB_IN_KERNEL), E, E, A(NO_LSM)],
            ),
            ("protocol", t_proto(), vec![], [E, E, E, A(NO_LSM)]),
            (
                "protocol+source",
                t_proto(),
                src.clone(),
                [E, E, E, A(NO_LSM)],
            ),
            (
                "capability",
                t_cap(),
                src,
                [E, E, I(FANOTIFY_NO_CAPS), A(AUDIT_CAPS)],
            ),
            (
                "dns",
                Target::DnsQuery("x".into()),
                vec![],
                [I(DNS), I(DNS), I(DNS), I(DNS)],
            ),
            (
                "syscalls",
                Target::Syscall {
                    names: vec!["unlink".into()],
                    path: None,
                    recursive: false,
                },
                vec![],
                [A(SYSCALLS), A(SYSCALLS), A(SYSCALLS), A(SYSCALLS)],
            ),
        ];
        for (name, target, sources, expected) in rows {
            for (e, want) in Enforcer::ALL.iter().zip(expected) {
                assert_eq!(
                    support(*e, &target, &sources, Action::Block),
                    want,
                    "{name} on {e:?}"
                );
            }
        }
        let v6 = Target::Protocol("icmpv6".into());
        assert_eq!(
            support(Enforcer::AppArmor, &v6, &[], Action::Audit),
            Support::Ignored(APPARMOR_NO_PROTO)
        );
        assert_eq!(
            support(Enforcer::BpfLsm, &v6, &[], Action::Block),
            Support::Enforced
        );
        // Audit rules need only observation.
        for e in Enforcer::ALL {
            assert_eq!(support(e, &t_glob(), &[], Action::Audit), Support::Enforced);
        }
        // ... which fanotify does not have for capabilities.
        assert_eq!(
            support(Enforcer::Fanotify, &t_cap(), &[], Action::Audit),
            Support::Ignored(FANOTIFY_NO_CAPS)
        );
    }

    #[test]
    fn plan_lists_rules_postures_and_native_apparmor() {
        let ir = compile_src(
            "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: p, namespace: n}\nspec:\n  file:\n    matchPatterns: [{pattern: /tmp/*.sh}]\n  capabilities:\n    matchCapabilities: [{capability: net_raw, action: Allow}]\n  apparmor: 'deny /x r,'\n  action: Block\n",
        );
        let bpf = plan(Enforcer::BpfLsm, &ir);
        let outcomes: Vec<(Option<u32>, &str)> = bpf
            .downgrades
            .iter()
            .map(|d| (d.rule, d.resource.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            vec![(Some(0), "/tmp/*.sh"), (None, "spec.apparmor")]
        );
        let fan = plan(Enforcer::Fanotify, &ir);
        assert!(
            fan.downgrades
                .iter()
                .any(|d| d.policy == DEFAULT_POSTURE && d.category == Category::Capabilities)
        );
        // The AppArmor enforcer writes native rules into the profile: nothing downgraded.
        let aa = plan(Enforcer::AppArmor, &ir);
        assert!(aa.downgrades.is_empty(), "{aa:#?}");
        let audit = plan(Enforcer::Audit, &ir);
        assert_eq!(audit.downgrades.len(), 3, "{audit:#?}");
    }
}
