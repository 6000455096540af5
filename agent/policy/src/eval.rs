//! The decision function: KubeArmor's semantics for one operation, in one place.
//!
//! Why here: every enforcer must decide the same way. The audit enforcer and the fanotify
//! enforcer call [`decide`] directly in user space; the BPF-LSM and AppArmor enforcers compile
//! the same IR into kernel maps or profiles, and their tests compare against this function.
//!
//! Precedence for the rules that match an operation (target, `fromSource`, and the
//! `readOnly`/`ownerOnly` conditions):
//! 1. a matching **Block** rule denies (alert: that policy, `Block`);
//! 2. else a matching **Audit** rule permits with an alert (`Audit`);
//! 3. else a matching **Allow** rule permits silently;
//! 4. else, when the category is in allow-list mode for this workload and this executable,
//!    the **default posture** decides (alert policy `DefaultPosture`; posture `allow` is silent);
//! 5. else the operation is not governed: permitted, no alert.
//!
//! Conditions say what stays permitted (`readOnly`: reads; `ownerOnly`: the file's owner). A
//! Block/Audit rule with conditions fires on any access outside that set (with both: a write,
//! or any access by someone else); an Allow rule permits only accesses inside it.

use crate::ir::{EffectiveRules, Rule};
use crate::model::{Action, Category, Source, Target};

/// The resource an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// Executing the binary at this (resolved, absolute) path.
    Exec(&'a str),
    /// Opening the file at this (resolved, absolute) path.
    File(&'a str),
    /// Creating or using a socket of this KubeArmor protocol (`tcp`, `udp`, `raw`, `icmp`, ...).
    Protocol(&'a str),
    /// Using the capability with this number.
    Capability(u8),
}

impl Resource<'_> {
    pub fn category(&self) -> Category {
        match self {
            Resource::Exec(_) => Category::Process,
            Resource::File(_) => Category::File,
            Resource::Protocol(_) => Category::Network,
            Resource::Capability(_) => Category::Capabilities,
        }
    }
}

/// One operation by one process.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The executable of the process performing the operation (`fromSource` matches this).
    pub exe: &'a str,
    pub resource: Resource<'a>,
    /// The caller's uid, and the file owner's uid (files and executables only).
    pub uid: u32,
    pub owner_uid: Option<u32>,
    /// The open asks for write access (or truncation).
    pub write: bool,
}

/// What the decision was and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not governed by any rule: permitted, no alert.
    Pass,
    /// A rule decided. `Allow` is silent; `Audit` and `Block` alert.
    Rule { action: Action, rule: u32 },
    /// The default posture decided (alert policy `DefaultPosture` unless the posture is allow).
    Posture { action: Action },
}

impl Verdict {
    /// Is the operation denied?
    pub fn denies(&self) -> bool {
        matches!(
            self,
            Verdict::Rule {
                action: Action::Block,
                ..
            } | Verdict::Posture {
                action: Action::Block
            }
        )
    }

    /// The deciding action and rule (None: the posture, or nothing, decided); `Pass` reads as
    /// an unalerted Allow. What every enforcer puts into its decision events.
    pub fn action_and_rule(&self) -> (Action, Option<u32>) {
        match *self {
            Verdict::Rule { action, rule } => (action, Some(rule)),
            Verdict::Posture { action } => (action, None),
            Verdict::Pass => (Action::Allow, None),
        }
    }

    /// Does the operation raise an alert?
    pub fn alerts(&self) -> bool {
        match self {
            Verdict::Pass => false,
            Verdict::Rule { action, .. } | Verdict::Posture { action } => *action != Action::Allow,
        }
    }
}

/// One socket has several protocol names (`tcp` and `stream`; `raw` and `packet`): a rule on
/// any of them decides, the strongest winning (Block > Audit > Allow), and the default posture
/// decides only when no rule names any of them — as the kernel enforcers look up every name.
/// Returns the verdict and the index of the name it came from.
pub fn decide_any(verdicts: impl IntoIterator<Item = Verdict>) -> (Verdict, usize) {
    let rank = |a: Action| match a {
        Action::Block => 3,
        Action::Audit => 2,
        Action::Allow => 1,
    };
    let mut best: Option<(Verdict, usize)> = None;
    let mut posture: Option<(Verdict, usize)> = None;
    for (i, v) in verdicts.into_iter().enumerate() {
        match v {
            Verdict::Rule { action, .. } => {
                let better = match best {
                    Some((Verdict::Rule { action: b, .. }, _)) => rank(action) > rank(b),
                    _ => true,
                };
                if better {
                    best = Some((v, i));
                }
            }
            Verdict::Posture { .. } if posture.is_none() => posture = Some((v, i)),
            _ => {}
        }
    }
    best.or(posture).unwrap_or((Verdict::Pass, 0))
}

/// Decide one operation for one workload.
pub fn decide(eff: &EffectiveRules<'_>, a: &Access<'_>) -> Verdict {
    let category = a.resource.category();
    let mut audit = None;
    let mut allowed = false;
    for rule in eff.rules.iter().filter(|r| r.category() == category) {
        if !target_matches(&rule.target, &a.resource) || !source_matches(&rule.from_source, a.exe) {
            continue;
        }
        let not_owner = a.owner_uid.is_some_and(|o| o != a.uid);
        match rule.action {
            Action::Block | Action::Audit => {
                // The conditions name what stays permitted (reads; the owner): a Block/Audit
                // rule with conditions fires on anything outside that set (KubeArmor's
                // multiubuntu scenarios 07/08: the owner may read, nobody may write, others
                // may not read).
                let fires = (!rule.read_only && !rule.owner_only)
                    || (rule.read_only && a.write)
                    || (rule.owner_only && not_owner);
                if !fires {
                    continue;
                }
                if rule.action == Action::Block {
                    return Verdict::Rule {
                        action: Action::Block,
                        rule: rule.id,
                    };
                }
                audit.get_or_insert(rule.id);
            }
            Action::Allow => {
                let permits = (!rule.read_only || !a.write) && (!rule.owner_only || !not_owner);
                allowed |= permits;
            }
        }
    }
    if let Some(rule) = audit {
        return Verdict::Rule {
            action: Action::Audit,
            rule,
        };
    }
    if allowed {
        return first_allow(eff, a).map_or(Verdict::Pass, |rule| Verdict::Rule {
            action: Action::Allow,
            rule,
        });
    }
    let allow_listed = eff.allow_lists.iter().any(|s| {
        s.category == category
            && s.source
                .as_ref()
                .is_none_or(|src| source_matches(std::slice::from_ref(src), a.exe))
    });
    if allow_listed {
        return Verdict::Posture {
            action: eff.posture.for_category(category),
        };
    }
    Verdict::Pass
}

fn first_allow(eff: &EffectiveRules<'_>, a: &Access<'_>) -> Option<u32> {
    eff.rules
        .iter()
        .find(|r: &&&Rule| {
            r.action == Action::Allow
                && target_matches(&r.target, &a.resource)
                && source_matches(&r.from_source, a.exe)
        })
        .map(|r| r.id)
}

/// Does a rule's target match the resource?
pub fn target_matches(t: &Target, r: &Resource<'_>) -> bool {
    match (t, r) {
        (Target::ExecPath(p), Resource::Exec(x)) | (Target::FilePath(p), Resource::File(x)) => {
            p == x
        }
        (Target::ExecName(n), Resource::Exec(x)) => x.rsplit('/').next() == Some(n.as_str()),
        (Target::ExecDir { dir, recursive }, Resource::Exec(x))
        | (Target::FileDir { dir, recursive }, Resource::File(x)) => in_dir(dir, *recursive, x),
        (Target::ExecPattern(p), Resource::Exec(x))
        | (Target::FilePattern(p), Resource::File(x)) => glob_match(p.as_bytes(), x.as_bytes()),
        (Target::Protocol(p), Resource::Protocol(x)) => p == "all" || p == x,
        (Target::Capability { number, .. }, Resource::Capability(c)) => number == c,
        _ => false,
    }
}

/// Does the caller's executable match one of the `fromSource` entries (empty: everyone)?
pub fn source_matches(sources: &[Source], exe: &str) -> bool {
    sources.is_empty()
        || sources.iter().any(|s| match s {
            Source::Path(p) => p == exe,
            Source::Dir { dir, recursive } => in_dir(dir, *recursive, exe),
        })
}

/// `path` is inside `dir` (which ends in `/`): directly, or at any depth when `recursive`.
pub fn in_dir(dir: &str, recursive: bool, path: &str) -> bool {
    match path.strip_prefix(dir) {
        Some(rest) if !rest.is_empty() => recursive || !rest.contains('/'),
        _ => false,
    }
}

/// Path globs as KubeArmor and AppArmor write them: `*` matches within one path component,
/// `**` across components, `?` one character other than `/`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with backtracking to the last star; `**` may cross `/`.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize, bool)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            let double = pattern.get(p + 1) == Some(&b'*');
            p += if double { 2 } else { 1 };
            star = Some((p, t, double));
            continue;
        }
        if p < pattern.len() && (pattern[p] == text[t] || (pattern[p] == b'?' && text[t] != b'/')) {
            p += 1;
            t += 1;
            continue;
        }
        match star {
            Some((sp, st, double)) if double || text[st] != b'/' => {
                star = Some((sp, st + 1, double));
                p = sp;
                t = st + 1;
            }
            _ => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_of_a_socket_decides() {
        let allow = Verdict::Rule {
            action: Action::Allow,
            rule: 1,
        };
        let block = Verdict::Rule {
            action: Action::Block,
            rule: 2,
        };
        let posture = Verdict::Posture {
            action: Action::Audit,
        };
        assert_eq!(decide_any([allow, posture]), (allow, 0));
        assert_eq!(decide_any([posture, allow]), (allow, 1));
        assert_eq!(decide_any([allow, block]), (block, 1));
        assert_eq!(decide_any([Verdict::Pass, posture]), (posture, 1));
        assert_eq!(decide_any([]), (Verdict::Pass, 0));
    }
    use crate::ir::{Workload, tests::compile_src};
    use std::collections::BTreeMap;

    fn host() -> Workload {
        Workload::Host {
            labels: BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                "kubearmor-dev".to_string(),
            )]),
        }
    }

    fn hsp(body: &str) -> String {
        format!(
            "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata: {{name: t}}\nspec:\n  nodeSelector: {{matchLabels: {{kubernetes.io/hostname: kubearmor-dev}}}}\n{body}"
        )
    }

    fn exec<'a>(exe: &'a str, target: &'a str) -> Access<'a> {
        Access {
            exe,
            resource: Resource::Exec(target),
            uid: 0,
            owner_uid: Some(0),
            write: false,
        }
    }

    fn open<'a>(exe: &'a str, path: &'a str, uid: u32, owner: u32, write: bool) -> Access<'a> {
        Access {
            exe,
            resource: Resource::File(path),
            uid,
            owner_uid: Some(owner),
            write,
        }
    }

    #[test]
    fn block_from_source_only_blocks_that_source() {
        // kubearmor-dev_test_04: bash cannot execute date; anything else may.
        let ir = compile_src(&hsp(
            "  process:\n    matchPaths:\n    - path: /usr/bin/date\n      fromSource: [{path: /usr/bin/bash}]\n  action: Block\n",
        ));
        let eff = ir.effective(&host());
        assert!(decide(&eff, &exec("/usr/bin/bash", "/usr/bin/date")).denies());
        assert_eq!(
            decide(&eff, &exec("/usr/bin/bash", "/usr/bin/ls")),
            Verdict::Pass
        );
        assert_eq!(
            decide(&eff, &exec("/usr/bin/sh", "/usr/bin/date")),
            Verdict::Pass
        );
    }

    #[test]
    fn allow_from_source_makes_an_allow_list_for_that_source_only() {
        // kubearmor-dev_test_05: bash may only execute date; others fall to the posture.
        let ir = compile_src(&hsp(
            "  process:\n    matchPaths:\n    - path: /usr/bin/date\n      fromSource: [{path: /usr/bin/bash}]\n  action: Allow\n",
        ));
        let eff = ir.effective(&host());
        assert_eq!(
            decide(&eff, &exec("/usr/bin/bash", "/usr/bin/date")),
            Verdict::Rule {
                action: Action::Allow,
                rule: 0
            }
        );
        let v = decide(&eff, &exec("/usr/bin/bash", "/usr/bin/ls"));
        assert_eq!(
            v,
            Verdict::Posture {
                action: Action::Block
            }
        );
        assert!(v.denies() && v.alerts());
        assert_eq!(
            decide(&eff, &exec("/usr/bin/sh", "/usr/bin/ls")),
            Verdict::Pass
        );
    }

    #[test]
    fn allow_without_source_governs_the_whole_workload() {
        let ir = compile_src(&hsp(
            "  file:\n    matchDirectories:\n    - dir: /etc/default/\n      recursive: true\n  action: Allow\n",
        ));
        let eff = ir.effective(&host());
        assert!(
            !decide(
                &eff,
                &open("/usr/bin/head", "/etc/default/a/b", 0, 0, false)
            )
            .denies()
        );
        assert!(decide(&eff, &open("/usr/bin/cat", "/etc/hostname", 0, 0, false)).denies());
        assert_eq!(
            decide(&eff, &exec("/usr/bin/bash", "/usr/bin/ls")),
            Verdict::Pass
        );
    }

    #[test]
    fn read_only_and_owner_only_conditions() {
        let ir = compile_src(&hsp(
            "  file:\n    matchPaths:\n    - path: /etc/app.conf\n      readOnly: true\n    - path: /home/u/secret\n      ownerOnly: true\n  action: Block\n",
        ));
        let eff = ir.effective(&host());
        assert_eq!(
            decide(&eff, &open("/bin/cat", "/etc/app.conf", 0, 0, false)),
            Verdict::Pass
        );
        assert!(decide(&eff, &open("/bin/sh", "/etc/app.conf", 0, 0, true)).denies());
        assert_eq!(
            decide(&eff, &open("/bin/cat", "/home/u/secret", 1000, 1000, false)),
            Verdict::Pass
        );
        assert!(decide(&eff, &open("/bin/cat", "/home/u/secret", 0, 1000, false)).denies());
        // Both conditions: the owner may read; writes and other users are denied.
        let ir = compile_src(&hsp("  file:
    matchPaths:
    - path: /home/u/k
      readOnly: true
      ownerOnly: true
  action: Block
"));
        let eff = ir.effective(&host());
        let k = |uid, write| decide(&eff, &open("/bin/cat", "/home/u/k", uid, 1000, write));
        assert_eq!(k(1000, false), Verdict::Pass);
        assert!(k(1000, true).denies());
        assert!(k(0, false).denies());
        assert!(k(0, true).denies());
    }

    #[test]
    fn audit_alerts_without_denying_and_block_wins() {
        let ir = compile_src(&hsp(
            "  file:\n    matchPaths:\n    - path: /etc/passwd\n      action: Audit\n    - path: /etc/shadow\n      action: Block\n    - path: /etc/shadow\n      action: Audit\n",
        ));
        let eff = ir.effective(&host());
        let v = decide(&eff, &open("/bin/cat", "/etc/passwd", 0, 0, false));
        assert!(v.alerts() && !v.denies());
        assert!(decide(&eff, &open("/bin/cat", "/etc/shadow", 0, 0, false)).denies());
    }

    #[test]
    fn directories_execnames_protocols_capabilities() {
        assert!(in_dir("/etc/", false, "/etc/hosts"));
        assert!(!in_dir("/etc/", false, "/etc/ssh/sshd_config"));
        assert!(in_dir("/etc/", true, "/etc/ssh/sshd_config"));
        assert!(!in_dir("/etc/", true, "/etc/"));
        assert!(target_matches(
            &Target::ExecName("apt".into()),
            &Resource::Exec("/usr/bin/apt")
        ));
        assert!(!target_matches(
            &Target::ExecName("apt".into()),
            &Resource::Exec("/usr/bin/apt-get")
        ));
        assert!(target_matches(
            &Target::Protocol("all".into()),
            &Resource::Protocol("udp")
        ));
        assert!(target_matches(
            &Target::Capability {
                name: "net_raw".into(),
                number: 13
            },
            &Resource::Capability(13)
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"/tmp/*", b"/tmp/x"));
        assert!(!glob_match(b"/tmp/*", b"/tmp/a/x"));
        assert!(glob_match(b"/tmp/**", b"/tmp/a/x"));
        assert!(glob_match(b"/etc/*/shadow", b"/etc/x/shadow"));
        assert!(glob_match(b"/home/*/.ssh/*", b"/home/u/.ssh/id_rsa"));
        assert!(glob_match(b"/a?c", b"/abc"));
        assert!(!glob_match(b"/a?c", b"/a/c"));
        assert!(!glob_match(b"/etc/*.conf", b"/etc/a.conff"));
    }
}
