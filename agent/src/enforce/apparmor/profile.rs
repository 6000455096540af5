//! Rule IR → AppArmor profile text (pure: no kernel, no files).
//!
//! Why text: `apparmor_parser` compiles it into the kernel's DFA, and golden tests can read it.
//! The generator takes any [`EffectiveRules`] and a profile name, so the host profile
//! (`armlet-host`, attached to `/**`) and container profiles (`armlet-<ns>-<name>`, attached by
//! the runtime) come from the same code.
//!
//! Shape of a profile (KubeArmor's approach, adapted):
//! - a **baseline** that allows everything, so the system keeps working: `/{,**} rwlkm`, exec
//!   with `ix` (children stay in the profile), `network,`, `capability,` and the other classes;
//! - per category in **allow-list mode** the baseline of that category is dropped (posture
//!   `block`: AppArmor denies what no rule allows), prefixed with `audit` (posture `audit`:
//!   everything is logged and user space keeps only what [`armlet_policy::eval::decide`] calls a
//!   posture decision) or kept (posture `allow`);
//! - **Block** rules become `audit deny` rules (a plain `deny` is not logged, and the alert
//!   comes from the log), **Audit** rules `audit` rules, **Allow** rules plain
//!   rules; `readOnly` narrows to `w`, `ownerOnly` uses the `other` qualifier for Block/Audit
//!   (fires for callers who do not own the file) and `owner` for Allow;
//! - `fromSource` executables get one **source profile** each: the parent enters it when that
//!   executable runs, and the source profile leaves it with `px` back to the parent for
//!   anything else it executes, so a rule follows the executable, not its descendants
//!   (KubeArmor's fromSource meaning). A source profile holds the baseline, the rules without
//!   `fromSource`, and its source's rules. Container profiles nest them as child profiles
//!   (`<name>//src_N`, entered with `cx`); the host's are top-level siblings
//!   (`armlet-host.src_N`, entered with `px`) **attached to the source's path**, because a
//!   task that was unconfined before the agent started enters a profile only through
//!   attachment, and a child profile has none.
//!
//! What AppArmor cannot express is returned in [`Profile::unexpressed`], never dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use armlet_policy::ir::{EffectiveRules, Rule};
use armlet_policy::model::{Action, Category, Source, Target};

/// The host profile's name (contract §AppArmor attach).
pub const HOST_PROFILE: &str = "armlet-host";
/// What the host profile attaches to: every later exec on the host.
pub const HOST_ATTACH: &str = "/**";

/// `armlet-<namespace>-<container>` with characters outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn container_profile_name(namespace: &str, container: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("armlet-{}-{}", clean(namespace), clean(container))
}

/// A rule (or part of one) the profile does not enforce as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unexpressed {
    pub rule: u32,
    pub resource: String,
    pub reason: &'static str,
}

/// A generated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub text: String,
    /// Full child profile name per fromSource executable (`parent//src_N` for containers, the
    /// sibling `armlet-host.src_N` for the host).
    pub children: BTreeMap<String, String>,
    pub unexpressed: Vec<Unexpressed>,
}

const BAD_PATH: &str = "the path contains a quote, a control character or is not absolute";
const SOURCE_DIR: &str = "directory fromSource entries are only used by syscall rules";
const NO_NETWORK_NAME: &str = "AppArmor network rules cannot name this protocol";
const NOT_APPARMOR: &str =
    "not an AppArmor rule class (DNS and syscall rules have no profile form)";

/// Quote a literal path for a profile, escaping AppArmor's glob characters.
fn literal(path: &str) -> Option<String> {
    if !valid(path) {
        return None;
    }
    let mut s = String::with_capacity(path.len() + 2);
    s.push('"');
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '^' | '\\' | ',') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    Some(s)
}

/// Quote a glob (KubeArmor's `*`, `**`, `?` mean the same in AppArmor).
fn glob(pattern: &str) -> Option<String> {
    valid(pattern).then(|| format!("\"{pattern}\""))
}

fn valid(p: &str) -> bool {
    p.starts_with('/') && !p.chars().any(|c| c == '"' || c.is_control())
}

/// The AppArmor path expression for a process or file target.
fn path_expr(t: &Target) -> Option<String> {
    match t {
        Target::ExecPath(p) | Target::FilePath(p) => literal(p),
        Target::ExecName(n) => (!n.contains('/'))
            .then(|| literal(&format!("/{n}")))
            .flatten()
            .map(|l| format!("\"/**{}", &l[1..])),
        Target::ExecDir { dir, recursive } | Target::FileDir { dir, recursive } => literal(dir)
            .map(|l| {
                let stem = &l[..l.len() - 1];
                format!("{stem}{}\"", if *recursive { "**" } else { "*" })
            }),
        Target::ExecPattern(p) | Target::FilePattern(p) => glob(p),
        _ => None,
    }
}

/// `network ...` arguments for a KubeArmor protocol name.
fn network_expr(proto: &str) -> Option<&'static str> {
    Some(match proto {
        "all" => "",
        "tcp" => " tcp",
        "udp" => " udp",
        "icmp" => " icmp",
        "raw" => " raw",
        "stream" => " stream",
        "dgram" => " dgram",
        "rdm" => " rdm",
        "seqpacket" => " seqpacket",
        "packet" => " packet",
        _ => return None,
    })
}

/// Which profile a rule is written into: the main one, or one source's child.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope<'a> {
    Main,
    Child(&'a str),
}

struct Gen<'a> {
    name: &'a str,
    /// Source executable → child name.
    children: BTreeMap<&'a str, String>,
    /// Host mode: source profiles are top-level siblings attached to their executable.
    host: bool,
    out: Vec<Unexpressed>,
}

impl<'a> Gen<'a> {
    /// The exec transition for `path` seen from `scope` (must agree with the baseline's, or
    /// the parser reports conflicting x modifiers).
    fn exec_mode(&self, scope: Scope<'_>, target: &Target) -> String {
        let exact = match target {
            Target::ExecPath(p) => Some(p.as_str()),
            _ => None,
        };
        match (scope, exact.and_then(|p| self.children.get(p))) {
            (Scope::Main, Some(child)) if self.host => format!("px -> {child}"),
            (Scope::Main, Some(child)) => format!("cx -> {child}"),
            (Scope::Main, None) => "ix".to_string(),
            (Scope::Child(src), _) if exact == Some(src) => "ix".to_string(),
            (Scope::Child(_), _) => format!("px -> {}", self.name),
        }
    }

    /// The profile lines for one rule in one scope (empty when it cannot be expressed).
    fn rule_lines(&mut self, scope: Scope<'_>, r: &Rule) -> Vec<String> {
        let prefix = match r.action {
            // Explicit deny rules are silent in AppArmor unless audited.
            Action::Block => "audit deny ",
            Action::Audit => "audit ",
            Action::Allow => "",
        };
        let note = |out: &mut Vec<Unexpressed>, reason| {
            out.push(Unexpressed {
                rule: r.id,
                resource: r.target.resource(),
                reason,
            });
        };
        let qualifier = match (r.owner_only, r.action) {
            (false, _) => "",
            (true, Action::Allow) => "owner ",
            (true, _) => "other ",
        };
        match r.category() {
            Category::Process => {
                let Some(p) = path_expr(&r.target) else {
                    note(&mut self.out, BAD_PATH);
                    return Vec::new();
                };
                let perm = match r.action {
                    Action::Block => "x".to_string(),
                    _ => self.exec_mode(scope, &r.target),
                };
                vec![format!("{prefix}{qualifier}{p} {perm},")]
            }
            Category::File => {
                let Some(p) = path_expr(&r.target) else {
                    note(&mut self.out, BAD_PATH);
                    return Vec::new();
                };
                // Block/Audit readOnly: only writes fire; Allow readOnly: only reads permitted.
                // Block/Audit with both readOnly and ownerOnly: any write, and any access by
                // someone other than the owner (KubeArmor's meaning, as `eval::decide`).
                if r.read_only && r.owner_only && r.action != Action::Allow {
                    return vec![format!("{prefix}{p} w,"), format!("{prefix}other {p} rw,")];
                }
                let perm = match (r.action, r.read_only) {
                    (_, false) => "rw",
                    (Action::Allow, true) => "r",
                    (_, true) => "w",
                };
                vec![format!("{prefix}{qualifier}{p} {perm},")]
            }
            Category::Network => match &r.target {
                Target::Protocol(proto) => match network_expr(proto) {
                    Some(args) => vec![format!("{prefix}network{args},")],
                    None => {
                        note(&mut self.out, NO_NETWORK_NAME);
                        Vec::new()
                    }
                },
                _ => {
                    note(&mut self.out, NOT_APPARMOR);
                    Vec::new()
                }
            },
            Category::Capabilities => match &r.target {
                Target::Capability { name, .. } => vec![format!("{prefix}capability {name},")],
                _ => Vec::new(),
            },
            Category::Syscalls => {
                note(&mut self.out, NOT_APPARMOR);
                Vec::new()
            }
        }
    }
}

/// Is `category` in allow-list mode in `scope`?
fn allow_listed(eff: &EffectiveRules<'_>, scope: Scope<'_>, category: Category) -> bool {
    eff.allow_lists.iter().any(|a| {
        a.category == category
            && match (&a.source, scope) {
                (None, _) => true,
                (Some(Source::Path(p)), Scope::Child(s)) => p == s,
                _ => false,
            }
    })
}

/// The baseline line for one category in one scope, after the posture.
fn baseline(eff: &EffectiveRules<'_>, scope: Scope<'_>, category: Category, line: &str) -> String {
    if !allow_listed(eff, scope, category) {
        return format!("  {line}\n");
    }
    match eff.posture.for_category(category) {
        Action::Block => format!("  # {line}  (allow-list, default posture block)\n"),
        Action::Audit => format!("  audit {line}  # allow-list, default posture audit\n"),
        Action::Allow => format!("  {line}  # allow-list, default posture allow\n"),
    }
}

/// Generate the profile `name` for these rules; `attach` is the attachment pattern (the host's
/// `/**`), None for profiles the runtime attaches by name.
pub fn generate(name: &str, attach: Option<&str>, eff: &EffectiveRules<'_>) -> Profile {
    let mut g = Gen {
        name,
        children: BTreeMap::new(),
        host: attach.is_some(),
        out: Vec::new(),
    };
    for r in &eff.rules {
        for s in &r.from_source {
            match s {
                Source::Path(p) if valid(p) => {
                    let n = g.children.len();
                    let child = if g.host {
                        format!("{name}.src_{n}")
                    } else {
                        format!("src_{n}")
                    };
                    g.children.entry(p.as_str()).or_insert(child);
                }
                Source::Path(_) => g.out.push(Unexpressed {
                    rule: r.id,
                    resource: r.target.resource(),
                    reason: BAD_PATH,
                }),
                Source::Dir { .. } => g.out.push(Unexpressed {
                    rule: r.id,
                    resource: r.target.resource(),
                    reason: SOURCE_DIR,
                }),
            }
        }
    }

    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Generated by armlet from the policy in force; do not edit (it is replaced on every \
         policy change)."
    );
    let head = match attach.and_then(glob) {
        Some(a) => format!("profile {name} {a}"),
        None => format!("profile {name}"),
    };
    let _ = writeln!(text, "{head} flags=(attach_disconnected) {{");
    body(&mut g, &mut text, Scope::Main, eff);
    let children: Vec<(&str, String)> = g.children.iter().map(|(s, c)| (*s, c.clone())).collect();
    if g.host {
        // An unconfined task (started before the agent) that executes a source enters the
        // source's profile directly through its attachment, which is more specific than `/**`.
        let _ = writeln!(text, "}}");
        for (source, child) in &children {
            let (source, child) = (*source, child);
            let Some(l) = literal(source) else { continue };
            let _ = writeln!(text, "\n# fromSource {source}");
            let _ = writeln!(text, "profile {child} {l} flags=(attach_disconnected) {{");
            body(&mut g, &mut text, Scope::Child(source), eff);
            let _ = writeln!(text, "}}");
        }
    }
    let nested = if g.host { Vec::new() } else { children };
    for (source, child) in nested {
        let _ = writeln!(text, "\n  # fromSource {source}");
        let _ = writeln!(text, "  profile {child} flags=(attach_disconnected) {{");
        let mut inner = String::new();
        body(&mut g, &mut inner, Scope::Child(source), eff);
        for line in inner.lines() {
            let _ = writeln!(text, "  {line}");
        }
        let _ = writeln!(text, "  }}");
    }
    if !g.host {
        let _ = writeln!(text, "}}");
    }
    g.out.sort_by_key(|u| u.rule);
    g.out.dedup();
    Profile {
        name: name.to_string(),
        text,
        children: g
            .children
            .into_iter()
            .map(|(s, c)| {
                let full = if attach.is_some() {
                    c
                } else {
                    format!("{name}//{c}")
                };
                (s.to_string(), full)
            })
            .collect(),
        unexpressed: g.out,
    }
}

fn body(g: &mut Gen<'_>, text: &mut String, scope: Scope<'_>, eff: &EffectiveRules<'_>) {
    let exec = match scope {
        Scope::Main => "ix".to_string(),
        Scope::Child(_) => format!("px -> {}", g.name),
    };
    text.push_str(&baseline(eff, scope, Category::File, "/{,**} rwlkm,"));
    text.push_str(&baseline(
        eff,
        scope,
        Category::Process,
        &format!("/{{,**}} {exec},"),
    ));
    text.push_str(&baseline(eff, scope, Category::Network, "network,"));
    text.push_str(&baseline(eff, scope, Category::Capabilities, "capability,"));
    text.push_str(
        "  signal,\n  ptrace,\n  unix,\n  mount,\n  umount,\n  pivot_root,\n  dbus,\n  \
         change_profile,\n",
    );
    if scope == Scope::Main {
        let entries: Vec<(String, String)> = g
            .children
            .iter()
            .map(|(s, c)| ((*s).to_string(), c.clone()))
            .collect();
        for (source, child) in entries {
            if let Some(l) = literal(&source) {
                let mode = if g.host { "px" } else { "cx" };
                // Entering a source is an exec like any other: under a process allow-list
                // only an Allow rule permits it.
                text.push_str(&baseline(
                    eff,
                    scope,
                    Category::Process,
                    &format!("{l} {mode} -> {child},"),
                ));
            }
        }
    } else if let Scope::Child(src) = scope
        && let Some(l) = literal(src)
    {
        // The source executing itself stays in its profile (the baseline would leave it).
        text.push_str(&baseline(
            eff,
            scope,
            Category::Process,
            &format!("{l} ix,"),
        ));
    }
    for r in &eff.rules {
        let applies = r.from_source.is_empty()
            || matches!(scope, Scope::Child(s) if r.from_source.iter().any(|f| *f == Source::Path(s.to_string())));
        if !applies {
            continue;
        }
        let lines = g.rule_lines(scope, r);
        for l in lines {
            let _ = writeln!(text, "  {l}  # rule {}", r.id);
        }
        // A net_raw capability rule stops raw and packet sockets inside socket(); AppArmor's
        // capability record does not name the socket, so these sockets are audited (allowed,
        // logged) and the engine reports the Network operation the capability denial stopped.
        // Only where the network category is not an allow-list (there the baseline already
        // audits or denies them, and an allow line here would widen it).
        if matches!(&r.target, Target::Capability { name, .. } if name == "net_raw")
            && r.action != Action::Allow
            && !allow_listed(eff, scope, Category::Network)
        {
            let _ = writeln!(
                text,
                "  audit network raw,  # rule {} (names the socket)\n  audit network packet,  # rule {} (names the socket)",
                r.id, r.id
            );
        }
    }
    // Native AppArmor rules (`spec.apparmor`), as written, in every scope of the workload's
    // profile (a fromSource child is still the workload).
    for (_, p) in &eff.native {
        let Some(native) = &p.apparmor else { continue };
        if !native_ok(native) {
            if scope == Scope::Main {
                g.out.push(Unexpressed {
                    rule: NATIVE_RULE,
                    resource: format!("spec.apparmor of {}", p.name),
                    reason: NATIVE_BAD,
                });
            }
            continue;
        }
        let _ = writeln!(text, "  # native rules of {}", p.name);
        for l in native.lines().map(str::trim).filter(|l| !l.is_empty()) {
            // AppArmor keeps explicit deny rules quiet; audited, their denials reach the agent
            // (the alert), with the same decision.
            if l.starts_with("deny ") {
                let _ = writeln!(text, "  audit {l}");
            } else {
                let _ = writeln!(text, "  {l}");
            }
        }
    }
}

/// `Unexpressed::rule` for a policy's native rules (they have no rule id).
pub const NATIVE_RULE: u32 = u32::MAX;
const NATIVE_BAD: &str = "native rules must keep their braces balanced and may not contain a \
     NUL or a line starting a new profile";

/// Native text stays inside the profile: balanced braces (AppArmor alternations such as
/// `/etc/{*,**}` and blocks are fine), no NUL, no `profile`/`hat` that would open another.
fn native_ok(text: &str) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            '\0' => return false,
            _ => {}
        }
    }
    depth == 0
        && !text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("profile ") || l.starts_with("hat ") || l.starts_with('^')
        })
}
