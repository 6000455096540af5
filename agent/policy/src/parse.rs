//! The schema walk: positioned YAML → validated [`Policy`] values, or precise diagnostics.
//!
//! Why hand-written instead of a generic JSON-Schema validator: every message must say *where*
//! (the exact key or value), *what* is wrong and *what would be right*, and the walk must go on
//! after a problem so one run reports all of them. The rules are those of KubeArmor's CRDs
//! (patterns, enums, bounds, required fields; `../shared/conformance/kubearmor-crd`), plus a few
//! that KubeArmor enforces elsewhere or silently ignores, each documented at its check:
//! unknown fields are errors (as `kubectl apply --validate=strict` makes them), a policy must
//! contain at least one rule, and a process `matchPaths` entry needs exactly one of `path` and
//! `execname`.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{
    Action, Category, ExprKey, ExprOp, Expression, Policy, PolicyKind, RuleSpec, Selector, Source,
    Target, Unsupported,
};
use crate::names;
use crate::yaml::{self, Node, Pos, Value};

/// The only apiVersion of KubeArmor's policy CRDs.
pub const API_VERSION: &str = "security.kubearmor.com/v1";

/// Longest path the CRDs accept (`maxLength: 200`).
pub const MAX_PATH_LEN: usize = 200;

/// How serious a diagnostic is: errors make a document invalid, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// One problem, at one position of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub level: Level,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Level::Error => write!(f, "{}: {}", self.pos, self.message),
            Level::Warning => write!(f, "{}: warning: {}", self.pos, self.message),
        }
    }
}

/// A parsed document: the policy (when valid) and the byte span of its text.
#[derive(Debug, Clone)]
pub struct ParsedDocument {
    pub policy: Policy,
    pub span: (usize, usize),
}

/// The outcome of parsing one file: the valid documents and every diagnostic.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    pub documents: Vec<ParsedDocument>,
    pub diagnostics: Vec<Diagnostic>,
}

impl ParsedFile {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.level == Level::Error)
    }
}

/// Parse and validate every document of one policy file's text.
pub fn parse_policies(src: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    let docs = match yaml::parse_documents(src) {
        Ok(d) => d,
        Err(e) => {
            out.diagnostics.push(Diagnostic {
                pos: e.pos,
                level: Level::Error,
                message: e.message,
            });
            return out;
        }
    };
    if docs.is_empty() {
        out.diagnostics.push(Diagnostic {
            pos: Pos { line: 1, col: 1 },
            level: Level::Error,
            message: "the file holds no YAML document; expected a KubeArmor policy".to_string(),
        });
    }
    for doc in docs {
        let mut w = Walker::default();
        let policy = w.document(&doc.root);
        let ok = !w.diags.iter().any(|d| d.level == Level::Error);
        out.diagnostics.append(&mut w.diags);
        if let (true, Some(policy)) = (ok, policy) {
            out.documents.push(ParsedDocument {
                policy,
                span: doc.span,
            });
        }
    }
    out.diagnostics.sort_by_key(|d| d.pos);
    out
}

/// Inheritable attributes: a rule's own, else its section's, else the spec's.
#[derive(Debug, Clone, Default)]
struct Common {
    action: Option<Action>,
    severity: Option<u8>,
    tags: Option<Vec<String>>,
    message: Option<String>,
}

impl Common {
    fn under(&self, parent: &Common) -> Common {
        Common {
            action: self.action.or(parent.action),
            severity: self.severity.or(parent.severity),
            tags: self.tags.clone().or_else(|| parent.tags.clone()),
            message: self.message.clone().or_else(|| parent.message.clone()),
        }
    }
}

/// The fields of one mapping, looked up by name; unknown keys were already reported.
struct Fields<'n> {
    node: &'n Node,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _, _)| *k == key).map(|e| e.2)
    }
    fn key_pos(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(self.node.pos, |e| e.1.pos)
    }
}

const COMMON_KEYS: [&str; 4] = ["severity", "tags", "message", "action"];

#[derive(Default)]
struct Walker {
    diags: Vec<Diagnostic>,
    unsupported: Vec<Unsupported>,
    kind: Option<PolicyKind>,
}

impl Walker {
    fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            pos,
            level: Level::Error,
            message: message.into(),
        });
    }

    fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.level == Level::Error)
            .count()
    }

    fn warning(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            pos,
            level: Level::Warning,
            message: message.into(),
        });
    }

    fn unsupported(&mut self, pos: Pos, field: &str, reason: &str) {
        self.unsupported.push(Unsupported {
            pos,
            field: field.to_string(),
            reason: reason.to_string(),
        });
        self.warning(
            pos,
            format!("`{field}` is accepted but not enforced: {reason}"),
        );
    }

    fn is_host(&self) -> bool {
        self.kind == Some(PolicyKind::KubeArmorHostPolicy)
    }

    /// Read a mapping, reporting keys outside `allowed` (with a suggestion). `extra` keys are
    /// accepted too (Kubernetes metadata we do not use).
    fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
        open: bool,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.pos,
                format!("`{what}` must be a mapping, found {}", node.describe()),
            );
            return None;
        };
        let mut fields = Vec::new();
        for (k, v) in entries {
            let Value::Scalar { text, .. } = &k.value else {
                self.error(k.pos, format!("keys of `{what}` must be plain names"));
                continue;
            };
            if !open && !allowed.contains(&text.as_str()) {
                let hint = match names::suggest(text, allowed) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => String::new(),
                };
                self.error(
                    k.pos,
                    format!(
                        "unknown field `{text}` in `{what}`{hint}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            fields.push((text.as_str(), k, v));
        }
        Some(Fields {
            node,
            entries: fields,
        })
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, quoted } => {
                if !quoted && (node.is_null() || plain_is_non_string(text)) {
                    self.error(
                        node.pos,
                        format!(
                            "`{what}` must be a string, found {}; quote it (\"{text}\") if the \
                             text is meant",
                            plain_kind(node)
                        ),
                    );
                    None
                } else {
                    Some(text.clone())
                }
            }
            _ => {
                self.error(
                    node.pos,
                    format!("`{what}` must be a string, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        if let Value::Scalar {
            text,
            quoted: false,
        } = &node.value
        {
            // YAML 1.2 core booleans, plus the YAML 1.1 forms that kubectl's decoder accepts.
            match text.as_str() {
                "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
                    return Some(true);
                }
                "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
                    return Some(false);
                }
                _ => {}
            }
        }
        self.error(
            node.pos,
            format!("`{what}` must be true or false, found {}", node.describe()),
        );
        None
    }

    fn integer(&mut self, node: &Node, what: &str) -> Option<i64> {
        if let Value::Scalar {
            text,
            quoted: false,
        } = &node.value
            && let Ok(v) = text.parse::<i64>()
        {
            return Some(v);
        }
        self.error(
            node.pos,
            format!("`{what}` must be an integer, found {}", node.describe()),
        );
        None
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.error(
                    node.pos,
                    format!("`{what}` must be a list, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        let items = self.list(node, what)?;
        let mut out = Vec::new();
        for item in items {
            out.push(self.string(item, &format!("{what}[]"))?);
        }
        Some(out)
    }

    fn severity(&mut self, node: &Node, what: &str) -> Option<u8> {
        let v = self.integer(node, what)?;
        match u8::try_from(v) {
            Ok(s @ 1..=10) => Some(s),
            _ => {
                self.error(
                    node.pos,
                    format!("`{what}` must be from 1 (lowest) to 10 (highest), found {v}"),
                );
                None
            }
        }
    }

    fn action(&mut self, node: &Node, what: &str) -> Option<Action> {
        let text = self.string(node, what)?;
        match text.as_str() {
            "Allow" => Some(Action::Allow),
            "Audit" => Some(Action::Audit),
            "Block" => Some(Action::Block),
            other => {
                let hint = match names::suggest(other, &["Allow", "Audit", "Block"]) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => String::new(),
                };
                self.error(
                    node.pos,
                    format!("`{what}` must be Allow, Audit or Block, found `{other}`{hint}"),
                );
                None
            }
        }
    }

    fn common(&mut self, f: &Fields<'_>, what: &str) -> Common {
        let mut c = Common::default();
        if let Some(n) = f.get("severity") {
            c.severity = self.severity(n, &format!("{what}.severity"));
        }
        if let Some(n) = f.get("tags") {
            c.tags = self.string_list(n, &format!("{what}.tags"));
        }
        if let Some(n) = f.get("message") {
            c.message = self.string(n, &format!("{what}.message"));
        }
        if let Some(n) = f.get("action") {
            c.action = self.action(n, &format!("{what}.action"));
        }
        c
    }

    /// A file path: `^\/+.*[^\/]$`, at most 200 characters.
    fn file_path(&mut self, node: &Node, what: &str) -> Option<String> {
        let p = self.string(node, what)?;
        if !p.starts_with('/') || p.ends_with('/') {
            self.error(
                node.pos,
                format!(
                    "`{what}` must be an absolute path to a file (start with `/`, not end with \
                     `/`), found `{p}`{}",
                    if p.ends_with('/') {
                        "; use `matchDirectories` with `dir:` for a directory"
                    } else {
                        ""
                    }
                ),
            );
            return None;
        }
        self.length(node, what, p)
    }

    /// A directory: `^\/$|^\/.*\/$`.
    fn dir_path(&mut self, node: &Node, what: &str) -> Option<String> {
        let p = self.string(node, what)?;
        if !p.starts_with('/') || !p.ends_with('/') {
            let fix = if p.starts_with('/') {
                format!(" (write `{p}/`)")
            } else {
                String::new()
            };
            self.error(
                node.pos,
                format!(
                    "`{what}` must be an absolute directory path that starts and ends with `/`, \
                     found `{p}`{fix}"
                ),
            );
            return None;
        }
        Some(p)
    }

    fn length(&mut self, node: &Node, what: &str, p: String) -> Option<String> {
        let n = p.chars().count();
        if n > MAX_PATH_LEN {
            self.error(
                node.pos,
                format!("`{what}` is {n} characters long; at most {MAX_PATH_LEN} are allowed"),
            );
            return None;
        }
        Some(p)
    }

    /// `fromSource`: a list of `{path}` (syscall rules also allow `{dir, recursive}`).
    fn source_list(&mut self, node: &Node, what: &str, allow_dir: bool) -> Option<Vec<Source>> {
        let items = self.list(node, what)?;
        let keys: &[&str] = if allow_dir {
            &["path", "dir", "recursive"]
        } else {
            &["path"]
        };
        let mut out = Vec::new();
        for item in items {
            let f = self.map(item, &format!("{what}[]"), keys, false)?;
            match (f.get("path"), f.get("dir")) {
                (Some(p), None) => {
                    out.push(Source::Path(self.file_path(p, &format!("{what}[].path"))?))
                }
                (None, Some(d)) => {
                    let dir = self.dir_path(d, &format!("{what}[].dir"))?;
                    let recursive = match f.get("recursive") {
                        Some(r) => self.boolean(r, &format!("{what}[].recursive"))?,
                        None => false,
                    };
                    out.push(Source::Dir { dir, recursive });
                }
                (Some(_), Some(_)) => {
                    self.error(
                        item.pos,
                        format!("a `{what}` entry names either `path` or `dir`, not both"),
                    );
                    return None;
                }
                (None, None) => {
                    self.error(
                        item.pos,
                        format!(
                            "a `{what}` entry needs `path:` (the absolute path of the source \
                             executable)"
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn document(&mut self, root: &Node) -> Option<Policy> {
        let top = self.map(
            root,
            "document",
            &["apiVersion", "kind", "metadata", "spec", "status"],
            false,
        )?;
        let Some(api) = top.get("apiVersion") else {
            self.error(
                root.pos,
                format!("missing `apiVersion`; KubeArmor policies use `apiVersion: {API_VERSION}`"),
            );
            return None;
        };
        let api_text = self.string(api, "apiVersion")?;
        if api_text != API_VERSION {
            self.error(
                api.pos,
                format!("unsupported apiVersion `{api_text}`; expected `{API_VERSION}`"),
            );
            return None;
        }
        let Some(kind_node) = top.get("kind") else {
            self.error(
                root.pos,
                "missing `kind`; expected KubeArmorPolicy, KubeArmorHostPolicy or \
                 KubeArmorClusterPolicy",
            );
            return None;
        };
        let kind_text = self.string(kind_node, "kind")?;
        let kind = match kind_text.as_str() {
            "KubeArmorPolicy" => PolicyKind::KubeArmorPolicy,
            "KubeArmorHostPolicy" => PolicyKind::KubeArmorHostPolicy,
            "KubeArmorClusterPolicy" => PolicyKind::KubeArmorClusterPolicy,
            other => {
                let kinds = [
                    "KubeArmorPolicy",
                    "KubeArmorHostPolicy",
                    "KubeArmorClusterPolicy",
                ];
                let hint = match names::suggest(other, &kinds) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => String::new(),
                };
                self.error(
                    kind_node.pos,
                    format!(
                        "unknown kind `{other}`{hint}; expected KubeArmorPolicy, \
                         KubeArmorHostPolicy or KubeArmorClusterPolicy"
                    ),
                );
                return None;
            }
        };
        self.kind = Some(kind);

        let (name, namespace) = self.metadata(&top, root, kind)?;
        let Some(spec_node) = top.get("spec") else {
            self.error(
                top.key_pos("kind"),
                format!("`{name}` has no `spec`; a policy needs a spec with at least one rule"),
            );
            return None;
        };
        let (selector, rules, apparmor) = self.spec(spec_node, kind)?;
        let unsupported = std::mem::take(&mut self.unsupported);
        Some(Policy {
            kind,
            name,
            namespace,
            selector,
            rules,
            apparmor,
            unsupported,
            pos: root.pos,
        })
    }

    fn metadata(
        &mut self,
        top: &Fields<'_>,
        root: &Node,
        kind: PolicyKind,
    ) -> Option<(String, Option<String>)> {
        let Some(meta) = top.get("metadata") else {
            self.error(
                root.pos,
                "missing `metadata`; a policy needs `metadata.name`",
            );
            return None;
        };
        // ObjectMeta has many fields (labels, annotations, uid, resourceVersion, ...): exported
        // objects carry them, so they are accepted; only name and namespace mean anything here.
        let m = self.map(meta, "metadata", &[], true)?;
        let Some(name_node) = m.get("name") else {
            self.error(
                meta.pos,
                "missing `metadata.name`; every policy needs a name (lower-case letters, digits, \
                 `-` and `.`)",
            );
            return None;
        };
        let name = self.string(name_node, "metadata.name")?;
        if !is_dns_subdomain(&name) {
            self.error(
                name_node.pos,
                format!(
                    "`metadata.name` must be a lower-case RFC 1123 name (letters, digits, `-`, \
                     `.`; start and end alphanumeric; at most 253 characters), found `{name}`"
                ),
            );
            return None;
        }
        let namespace = match (kind, m.get("namespace")) {
            (PolicyKind::KubeArmorPolicy, Some(n)) => {
                let ns = self.string(n, "metadata.namespace")?;
                if !is_dns_label(&ns) {
                    self.error(
                        n.pos,
                        format!(
                            "`metadata.namespace` must be a lower-case RFC 1123 label (letters, \
                             digits, `-`; at most 63 characters), found `{ns}`"
                        ),
                    );
                    return None;
                }
                Some(ns)
            }
            (PolicyKind::KubeArmorPolicy, None) => Some("default".to_string()),
            (_, _) => None,
        };
        Some((name, namespace))
    }

    fn spec(
        &mut self,
        spec_node: &Node,
        kind: PolicyKind,
    ) -> Option<(Selector, Vec<RuleSpec>, Option<String>)> {
        const SECTIONS: [&str; 5] = ["process", "file", "network", "capabilities", "syscalls"];
        let mut allowed: Vec<&str> = SECTIONS.to_vec();
        allowed.extend(COMMON_KEYS);
        allowed.push("apparmor");
        match kind {
            PolicyKind::KubeArmorHostPolicy => allowed.extend(["nodeSelector", "device"]),
            _ => allowed.extend(["selector", "presets"]),
        }
        let f = self.map(spec_node, "spec", &allowed, false)?;
        let common = self.common(&f, "spec");

        let selector = match kind {
            PolicyKind::KubeArmorHostPolicy => match f.get("nodeSelector") {
                Some(n) => self.selector(n, "spec.nodeSelector", &["matchLabels"], &[])?,
                None => {
                    self.error(
                        spec_node.pos,
                        "host policies need `spec.nodeSelector` (e.g. `matchLabels: \
                         {kubernetes.io/hostname: NODE}`)",
                    );
                    return None;
                }
            },
            PolicyKind::KubeArmorPolicy => match f.get("selector") {
                Some(n) => self.selector(
                    n,
                    "spec.selector",
                    &["matchLabels", "matchExpressions"],
                    &["label"],
                )?,
                None => Selector::default(),
            },
            PolicyKind::KubeArmorClusterPolicy => match f.get("selector") {
                // The cluster CRD has no `matchLabels`: label and namespace expressions only.
                Some(n) => self.selector(
                    n,
                    "spec.selector",
                    &["matchExpressions"],
                    &["namespace", "label"],
                )?,
                None => Selector::default(),
            },
        };

        let mut rules = Vec::new();
        let mut any_section = false;
        for section in SECTIONS {
            if let Some(n) = f.get(section) {
                any_section = true;
                let before = rules.len();
                let errors_before = self.error_count();
                match section {
                    "process" => self.process(n, &common, &mut rules),
                    "file" => self.file(n, &common, &mut rules),
                    "network" => self.network(n, &common, &mut rules),
                    "capabilities" => self.capabilities(n, &common, &mut rules),
                    _ => self.syscalls(n, &common, &mut rules),
                };
                if self.error_count() == errors_before && rules.len() == before {
                    self.error(
                        f.key_pos(section),
                        format!(
                            "`spec.{section}` has no rules; add a match list (e.g. `matchPaths`) \
                             or remove the section"
                        ),
                    );
                }
            }
        }
        let apparmor = match f.get("apparmor") {
            Some(n) => Some(self.string(n, "spec.apparmor")?),
            None => None,
        };
        if let Some(n) = f.get("presets") {
            self.unsupported(n.pos, "spec.presets", "armlet has no presets yet");
        }
        if let Some(n) = f.get("device") {
            self.unsupported(n.pos, "spec.device", "device rules have no enforcer yet");
        }
        // Beyond the CRD: a policy with nothing to match is always a mistake (KubeArmor would
        // accept it and silently do nothing).
        if !any_section && apparmor.is_none() && f.get("device").is_none() {
            self.error(
                spec_node.pos,
                "the spec has no rules: add at least one of `process`, `file`, `network`, \
                 `capabilities`, `syscalls` or `apparmor`",
            );
        }
        Some((selector, rules, apparmor))
    }

    fn selector(
        &mut self,
        node: &Node,
        what: &str,
        keys: &[&str],
        expr_keys: &[&str],
    ) -> Option<Selector> {
        let f = self.map(node, what, keys, false)?;
        let mut sel = Selector::default();
        if let Some(ml) = f.get("matchLabels") {
            let lf = self.map(ml, &format!("{what}.matchLabels"), &[], true)?;
            for (k, _, v) in &lf.entries {
                let value = self.string(v, &format!("{what}.matchLabels.{k}"))?;
                sel.match_labels.insert((*k).to_string(), value);
            }
        }
        if let Some(me) = f.get("matchExpressions") {
            let items = self.list(me, &format!("{what}.matchExpressions"))?;
            for item in items {
                let w = format!("{what}.matchExpressions[]");
                let ef = self.map(item, &w, &["key", "operator", "values"], false)?;
                let key = match ef.get("key") {
                    Some(k) => {
                        let text = self.string(k, &format!("{w}.key"))?;
                        match text.as_str() {
                            "label" if expr_keys.contains(&"label") => ExprKey::Label,
                            "namespace" if expr_keys.contains(&"namespace") => ExprKey::Namespace,
                            other => {
                                self.error(
                                    k.pos,
                                    format!(
                                        "`{w}.key` must be {}, found `{other}`",
                                        expr_keys
                                            .iter()
                                            .map(|k| format!("`{k}`"))
                                            .collect::<Vec<_>>()
                                            .join(" or ")
                                    ),
                                );
                                return None;
                            }
                        }
                    }
                    None => {
                        self.error(item.pos, format!("`{w}` needs `key:`"));
                        return None;
                    }
                };
                let op = match ef.get("operator") {
                    Some(o) => {
                        let text = self.string(o, &format!("{w}.operator"))?;
                        match text.as_str() {
                            "In" => ExprOp::In,
                            "NotIn" => ExprOp::NotIn,
                            other => {
                                self.error(
                                    o.pos,
                                    format!("`{w}.operator` must be In or NotIn, found `{other}`"),
                                );
                                return None;
                            }
                        }
                    }
                    None => {
                        self.error(item.pos, format!("`{w}` needs `operator:` (In or NotIn)"));
                        return None;
                    }
                };
                let values = match ef.get("values") {
                    Some(v) => self.string_list(v, &format!("{w}.values"))?,
                    None => Vec::new(),
                };
                sel.expressions.push(Expression { key, op, values });
            }
        }
        Some(sel)
    }

    /// Start a section: check its keys, read its inheritable fields.
    fn section<'n>(
        &mut self,
        node: &'n Node,
        name: &str,
        lists: &[&str],
        parent: &Common,
    ) -> Option<(Fields<'n>, Common)> {
        let mut allowed: Vec<&str> = lists.to_vec();
        allowed.extend(COMMON_KEYS);
        let what = format!("spec.{name}");
        let f = self.map(node, &what, &allowed, false)?;
        let c = self.common(&f, &what).under(parent);
        Some((f, c))
    }

    /// Walk one match list; `item` reads one entry and returns its rule.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call per match list; a parameter struct would only rename these"
    )]
    fn items(
        &mut self,
        f: &Fields<'_>,
        list: &str,
        what: &str,
        keys: &[&str],
        parent: &Common,
        rules: &mut Vec<RuleSpec>,
        mut item: impl FnMut(&mut Self, &Fields<'_>, &str) -> Option<Item>,
    ) {
        let Some(node) = f.get(list) else { return };
        let what = format!("{what}.{list}");
        let Some(entries) = self.list(node, &what) else {
            return;
        };
        if entries.is_empty() {
            self.error(
                node.pos,
                format!("`{what}` is empty; list at least one entry or remove it"),
            );
        }
        let mut allowed: Vec<&str> = keys.to_vec();
        allowed.extend(COMMON_KEYS);
        for entry in entries {
            let iw = format!("{what}[]");
            let Some(ef) = self.map(entry, &iw, &allowed, false) else {
                continue;
            };
            let c = self.common(&ef, &iw).under(parent);
            if let Some(it) = item(self, &ef, &iw) {
                rules.push(RuleSpec {
                    target: it.target,
                    from_source: it.from_source,
                    owner_only: it.owner_only,
                    read_only: it.read_only,
                    action: c.action.unwrap_or(Action::Block),
                    severity: c.severity.unwrap_or(1),
                    tags: c.tags.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                    pos: entry.pos,
                });
            }
        }
    }

    fn flag(&mut self, f: &Fields<'_>, key: &str, what: &str) -> Option<bool> {
        match f.get(key) {
            Some(n) => self.boolean(n, &format!("{what}.{key}")),
            None => Some(false),
        }
    }

    fn sources(&mut self, f: &Fields<'_>, what: &str, allow_dir: bool) -> Option<Vec<Source>> {
        match f.get("fromSource") {
            Some(n) => self.source_list(n, &format!("{what}.fromSource"), allow_dir),
            None => Some(Vec::new()),
        }
    }

    fn note_pts(&mut self, f: &Fields<'_>, what: &str) {
        if let Some(n) = f.get("pts") {
            self.unsupported(
                n.pos,
                &format!("{what}.pts"),
                "terminal (pts) conditions are not implemented",
            );
        }
    }

    fn process(&mut self, node: &Node, parent: &Common, rules: &mut Vec<RuleSpec>) -> Option<()> {
        let (f, c) = self.section(
            node,
            "process",
            &["matchPaths", "matchDirectories", "matchPatterns"],
            parent,
        )?;
        let what = "spec.process";
        self.items(
            &f,
            "matchPaths",
            what,
            &[
                "path",
                "execname",
                "ownerOnly",
                "fromSource",
                "allowedArgs",
                "pts",
            ],
            &c,
            rules,
            |w, ef, iw| {
                // Beyond the CRD (which requires neither): exactly one of path and execname,
                // or the rule would match everything or be ambiguous.
                let target = match (ef.get("path"), ef.get("execname")) {
                    (Some(p), None) => Target::ExecPath(w.file_path(p, &format!("{iw}.path"))?),
                    (None, Some(e)) => {
                        let name = w.string(e, &format!("{iw}.execname"))?;
                        if name.is_empty() || name.contains('/') {
                            w.error(
                                e.pos,
                                format!(
                                    "`{iw}.execname` is a file name without `/` (e.g. `apt`), \
                                     found `{name}`; use `path:` for a full path"
                                ),
                            );
                            return None;
                        }
                        Target::ExecName(name)
                    }
                    (Some(_), Some(_)) => {
                        w.error(
                            ef.node.pos,
                            format!("`{iw}` names both `path` and `execname`; keep one"),
                        );
                        return None;
                    }
                    (None, None) => {
                        w.error(
                            ef.node.pos,
                            format!(
                                "`{iw}` needs `path:` (an absolute binary path) or `execname:` \
                                 (a binary name)"
                            ),
                        );
                        return None;
                    }
                };
                if let Some(a) = ef.get("allowedArgs") {
                    let args = w.string_list(a, &format!("{iw}.allowedArgs"))?;
                    if args.len() > 20 {
                        w.error(
                            a.pos,
                            format!("`{iw}.allowedArgs` has {} entries; at most 20", args.len()),
                        );
                        return None;
                    }
                    w.unsupported(
                        a.pos,
                        &format!("{iw}.allowedArgs"),
                        "argument matching is not implemented",
                    );
                }
                w.note_pts(ef, iw);
                Some(Item {
                    target,
                    from_source: w.sources(ef, iw, false)?,
                    owner_only: w.flag(ef, "ownerOnly", iw)?,
                    read_only: false,
                })
            },
        );
        self.items(
            &f,
            "matchDirectories",
            what,
            &["dir", "recursive", "ownerOnly", "fromSource", "pts"],
            &c,
            rules,
            |w, ef, iw| {
                let dir = w.required(ef, "dir", iw, "an absolute directory ending in `/`")?;
                let dir = w.dir_path(dir, &format!("{iw}.dir"))?;
                w.note_pts(ef, iw);
                Some(Item {
                    target: Target::ExecDir {
                        dir,
                        recursive: w.flag(ef, "recursive", iw)?,
                    },
                    from_source: w.sources(ef, iw, false)?,
                    owner_only: w.flag(ef, "ownerOnly", iw)?,
                    read_only: false,
                })
            },
        );
        self.items(
            &f,
            "matchPatterns",
            what,
            &["pattern", "ownerOnly"],
            &c,
            rules,
            |w, ef, iw| {
                let p = w.required(ef, "pattern", iw, "a path glob such as `/tmp/**`")?;
                let pattern = w.pattern(p, &format!("{iw}.pattern"))?;
                Some(Item {
                    target: Target::ExecPattern(pattern),
                    from_source: Vec::new(),
                    owner_only: w.flag(ef, "ownerOnly", iw)?,
                    read_only: false,
                })
            },
        );
        Some(())
    }

    fn file(&mut self, node: &Node, parent: &Common, rules: &mut Vec<RuleSpec>) -> Option<()> {
        let (f, c) = self.section(
            node,
            "file",
            &["matchPaths", "matchDirectories", "matchPatterns"],
            parent,
        )?;
        let what = "spec.file";
        self.items(
            &f,
            "matchPaths",
            what,
            &["path", "readOnly", "ownerOnly", "fromSource", "pts"],
            &c,
            rules,
            |w, ef, iw| {
                let p = w.required(ef, "path", iw, "an absolute file path")?;
                let path = w.file_path(p, &format!("{iw}.path"))?;
                w.note_pts(ef, iw);
                Some(Item {
                    target: Target::FilePath(path),
                    from_source: w.sources(ef, iw, false)?,
                    owner_only: w.flag(ef, "ownerOnly", iw)?,
                    read_only: w.flag(ef, "readOnly", iw)?,
                })
            },
        );
        self.items(
            &f,
            "matchDirectories",
            what,
            &[
                "dir",
                "recursive",
                "readOnly",
                "ownerOnly",
                "fromSource",
                "pts",
            ],
            &c,
            rules,
            |w, ef, iw| {
                let d = w.required(ef, "dir", iw, "an absolute directory ending in `/`")?;
                let dir = w.dir_path(d, &format!("{iw}.dir"))?;
                w.note_pts(ef, iw);
                Some(Item {
                    target: Target::FileDir {
                        dir,
                        recursive: w.flag(ef, "recursive", iw)?,
                    },
                    from_source: w.sources(ef, iw, false)?,
                    owner_only: w.flag(ef, "ownerOnly", iw)?,
                    read_only: w.flag(ef, "readOnly", iw)?,
                })
            },
        );
        self.items(
            &f,
            "matchPatterns",
            what,
            &["pattern", "readOnly", "ownerOnly"],
            &c,
            rules,
            |w, ef, iw| {
                let p = w.required(ef, "pattern", iw, "a path glob such as `/etc/**/*.conf`")?;
                let pattern = w.pattern(p, &format!("{iw}.pattern"))?;
                Some(Item {
                    target: Target::FilePattern(pattern),
                    from_source: Vec::new(),
                    owner_only: w.flag(ef, "ownerOnly", iw)?,
                    read_only: w.flag(ef, "readOnly", iw)?,
                })
            },
        );
        Some(())
    }

    fn network(&mut self, node: &Node, parent: &Common, rules: &mut Vec<RuleSpec>) -> Option<()> {
        let (f, c) = self.section(
            node,
            "network",
            &["matchProtocols", "matchDNSQueries"],
            parent,
        )?;
        let what = "spec.network";
        let mut keys = vec!["protocol", "fromSource"];
        if !self.is_host() {
            keys.push("pts");
        }
        self.items(&f, "matchProtocols", what, &keys, &c, rules, |w, ef, iw| {
            let p = w.required(ef, "protocol", iw, "tcp, udp, icmp, raw, ...")?;
            let text = w.string(p, &format!("{iw}.protocol"))?;
            let upper: Vec<String> = names::PROTOCOLS
                .iter()
                .map(|p| p.to_ascii_uppercase())
                .collect();
            let lower = text.to_ascii_lowercase();
            // The CRD accepts the lower- and upper-case spellings only, as a suffix.
            let hit = names::match_suffix(&text, names::PROTOCOLS).or_else(|| {
                upper
                    .iter()
                    .find(|u| text.ends_with(u.as_str()))
                    .and_then(|_| names::match_suffix(&lower, names::PROTOCOLS))
            });
            let Some((name, odd_prefix)) = hit else {
                let hint = match names::suggest(&text, names::PROTOCOLS) {
                    Some(s) => format!(" (did you mean `{s}`?)"),
                    None => String::new(),
                };
                w.error(
                    p.pos,
                    format!(
                        "unknown protocol `{text}`{hint}; expected one of {} (or upper case)",
                        names::PROTOCOLS.join(", ")
                    ),
                );
                return None;
            };
            if odd_prefix {
                w.warning(
                    p.pos,
                    format!("protocol `{text}` is read as `{name}` (the CRD matches a suffix)"),
                );
            }
            w.note_pts(ef, iw);
            let from_source = w.sources(ef, iw, false)?;
            w.host_needs_source(ef, iw, "network")?;
            Some(Item {
                target: Target::Protocol(name.to_string()),
                from_source,
                owner_only: false,
                read_only: false,
            })
        });
        self.items(
            &f,
            "matchDNSQueries",
            what,
            &["domain", "fromSource"],
            &c,
            rules,
            |w, ef, iw| {
                let d = w.required(ef, "domain", iw, "a domain name")?;
                let domain = w.string(d, &format!("{iw}.domain"))?;
                w.unsupported(
                    d.pos,
                    &format!("{iw}.domain"),
                    "DNS query rules have no enforcer yet",
                );
                Some(Item {
                    target: Target::DnsQuery(domain),
                    from_source: w.sources(ef, iw, false)?,
                    owner_only: false,
                    read_only: false,
                })
            },
        );
        Some(())
    }

    fn capabilities(
        &mut self,
        node: &Node,
        parent: &Common,
        rules: &mut Vec<RuleSpec>,
    ) -> Option<()> {
        let (f, c) = self.section(node, "capabilities", &["matchCapabilities"], parent)?;
        self.items(
            &f,
            "matchCapabilities",
            "spec.capabilities",
            &["capability", "fromSource"],
            &c,
            rules,
            |w, ef, iw| {
                let n = w.required(ef, "capability", iw, "a capability such as net_raw")?;
                let text = w.string(n, &format!("{iw}.capability"))?;
                let all = names::capability_names();
                let Some((name, odd_prefix)) = names::match_suffix(&text, &all) else {
                    let hint = match names::suggest(
                        text.trim_start_matches("CAP_").trim_start_matches("cap_"),
                        &all,
                    ) {
                        Some(s) => format!(" (did you mean `{s}`?)"),
                        None => String::new(),
                    };
                    w.error(
                        n.pos,
                        format!(
                            "unknown capability `{text}`{hint}; capabilities are lower-case \
                             names without `CAP_`, e.g. net_raw, sys_admin, sys_module"
                        ),
                    );
                    return None;
                };
                if odd_prefix {
                    w.warning(
                        n.pos,
                        format!(
                            "capability `{text}` is read as `{name}` (the CRD matches a suffix)"
                        ),
                    );
                }
                let number = names::capability_number(name)?;
                let from_source = w.sources(ef, iw, false)?;
                w.host_needs_source(ef, iw, "capabilities")?;
                Some(Item {
                    target: Target::Capability {
                        name: name.to_string(),
                        number,
                    },
                    from_source,
                    owner_only: false,
                    read_only: false,
                })
            },
        );
        Some(())
    }

    fn syscalls(&mut self, node: &Node, parent: &Common, rules: &mut Vec<RuleSpec>) -> Option<()> {
        // Syscall rules are audit-only: the section has no `action`.
        let what = "spec.syscalls";
        let f = self.map(
            node,
            what,
            &["matchSyscalls", "matchPaths", "severity", "tags", "message"],
            false,
        )?;
        let mut c = self.common(&f, what).under(parent);
        c.action = Some(Action::Audit);
        let one = |w: &mut Self, ef: &Fields<'_>, iw: &str, with_path: bool| {
            let names_node = w.required(ef, "syscall", iw, "a list of syscall names")?;
            let list = w.string_list(names_node, &format!("{iw}.syscall"))?;
            for (i, s) in list.iter().enumerate() {
                if !names::SYSCALLS.contains(&s.as_str()) {
                    let hint = match names::suggest(s, names::SYSCALLS) {
                        Some(h) => format!(" (did you mean `{h}`?)"),
                        None => String::new(),
                    };
                    let pos = match &names_node.value {
                        Value::Seq(items) => items.get(i).map_or(names_node.pos, |n| n.pos),
                        _ => names_node.pos,
                    };
                    w.error(pos, format!("unknown syscall `{s}`{hint}"));
                    return None;
                }
            }
            let (path, recursive) = if with_path {
                let p = w.required(ef, "path", iw, "a file path or a directory ending in `/`")?;
                let text = w.string(p, &format!("{iw}.path"))?;
                if !text.starts_with('/') {
                    w.error(
                        p.pos,
                        format!("`{iw}.path` must be an absolute path, found `{text}`"),
                    );
                    return None;
                }
                (
                    Some(text),
                    match ef.get("recursive") {
                        Some(r) => w.boolean(r, &format!("{iw}.recursive"))?,
                        None => false,
                    },
                )
            } else {
                (None, false)
            };
            Some(Item {
                target: Target::Syscall {
                    names: list,
                    path,
                    recursive,
                },
                from_source: w.sources(ef, iw, true)?,
                owner_only: false,
                read_only: false,
            })
        };
        let keys_plain = ["syscall", "fromSource"];
        let keys_path = ["syscall", "fromSource", "path", "recursive"];
        for (list, keys, with_path) in [
            ("matchSyscalls", &keys_plain[..], false),
            ("matchPaths", &keys_path[..], true),
        ] {
            let Some(n) = f.get(list) else { continue };
            let lw = format!("{what}.{list}");
            let Some(entries) = self.list(n, &lw) else {
                continue;
            };
            for entry in entries {
                let iw = format!("{lw}[]");
                let Some(ef) = self.map(entry, &iw, keys, false) else {
                    continue;
                };
                if let Some(it) = one(self, &ef, &iw, with_path) {
                    rules.push(RuleSpec {
                        target: it.target,
                        from_source: it.from_source,
                        owner_only: false,
                        read_only: false,
                        action: Action::Audit,
                        severity: c.severity.unwrap_or(1),
                        tags: c.tags.clone().unwrap_or_default(),
                        message: c.message.clone().unwrap_or_default(),
                        pos: entry.pos,
                    });
                }
            }
        }
        Some(())
    }

    fn required<'n>(
        &mut self,
        f: &Fields<'n>,
        key: &str,
        what: &str,
        expected: &str,
    ) -> Option<&'n Node> {
        let n = f.get(key);
        if n.is_none() {
            self.error(f.node.pos, format!("`{what}` needs `{key}:` ({expected})"));
        }
        n
    }

    fn pattern(&mut self, node: &Node, what: &str) -> Option<String> {
        let p = self.string(node, what)?;
        if !p.starts_with('/') {
            self.error(
                node.pos,
                format!("`{what}` must be an absolute path glob (start with `/`), found `{p}`"),
            );
            return None;
        }
        Some(p)
    }

    /// KubeArmorHostPolicy's CRD requires `fromSource` on network and capability rules.
    fn host_needs_source(&mut self, ef: &Fields<'_>, what: &str, section: &str) -> Option<()> {
        if self.is_host() && ef.get("fromSource").is_none() {
            self.error(
                ef.node.pos,
                format!(
                    "`{what}` needs `fromSource`: host policies apply {section} rules to named \
                     binaries only (KubeArmorHostPolicy requires it)"
                ),
            );
            return None;
        }
        Some(())
    }
}

/// What one list entry contributes before inheritance.
struct Item {
    target: Target,
    from_source: Vec<Source>,
    owner_only: bool,
    read_only: bool,
}

/// Does this plain scalar resolve to something other than a string (bool, number, null)?
fn plain_is_non_string(text: &str) -> bool {
    matches!(
        text,
        "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    ) || text.parse::<f64>().is_ok()
}

fn plain_kind(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } if node.is_null() => format!("null (`{text}`)"),
        Value::Scalar { text, .. } if text.parse::<f64>().is_ok() => format!("the number {text}"),
        Value::Scalar { text, .. } => format!("the boolean {text}"),
        _ => node.describe(),
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Categories that have rules in `policy`, for reports.
pub fn categories(policy: &Policy) -> BTreeMap<Category, usize> {
    let mut m = BTreeMap::new();
    for r in &policy.rules {
        *m.entry(r.target.category()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<String> {
        parse_policies(src)
            .diagnostics
            .iter()
            .filter(|d| d.level == Level::Error)
            .map(ToString::to_string)
            .collect()
    }

    const HEAD: &str = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata:\n  name: p\n  namespace: ns\nspec:\n";

    #[test]
    fn a_full_container_policy_parses_with_inheritance() {
        let src = format!(
            "{HEAD}  severity: 5\n  tags: [a]\n  action: Audit\n  selector:\n    matchLabels:\n      app: x\n  process:\n    action: Block\n    matchPaths:\n    - path: /bin/sh\n      fromSource:\n      - path: /usr/bin/env\n    - execname: apt\n      severity: 9\n  file:\n    matchDirectories:\n    - dir: /etc/\n      recursive: true\n      readOnly: true\n"
        );
        let parsed = parse_policies(&src);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let p = &parsed.documents[0].policy;
        assert_eq!(p.namespace.as_deref(), Some("ns"));
        assert_eq!(p.selector.match_labels["app"], "x");
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].action, Action::Block);
        assert_eq!(p.rules[0].severity, 5);
        assert_eq!(
            p.rules[0].from_source,
            vec![Source::Path("/usr/bin/env".into())]
        );
        assert_eq!(p.rules[1].target, Target::ExecName("apt".into()));
        assert_eq!(p.rules[1].severity, 9);
        assert_eq!(p.rules[2].action, Action::Audit);
        assert!(p.rules[2].read_only);
        assert_eq!(p.rules[0].pos, Pos { line: 16, col: 7 });
    }

    #[test]
    fn errors_name_the_exact_position() {
        let src = format!("{HEAD}  file:\n    matchPaths:\n    - path: etc/passwd\n");
        assert_eq!(
            errors(&src),
            vec![
                "9:13: `spec.file.matchPaths[].path` must be an absolute path to a file (start \
                 with `/`, not end with `/`), found `etc/passwd`"
            ]
        );
    }

    #[test]
    fn unknown_fields_get_suggestions() {
        let src = format!("{HEAD}  file:\n    matchPath:\n    - path: /etc/passwd\n");
        let e = errors(&src);
        assert!(
            e[0].starts_with(
                "8:5: unknown field `matchPath` in `spec.file` (did you mean `matchPaths`?)"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn several_problems_are_all_reported() {
        let src = format!(
            "{HEAD}  severity: 0\n  file:\n    matchDirectories:\n    - dir: /etc\n  network:\n    matchProtocols:\n    - protocol: tcpx\n"
        );
        let e = errors(&src);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("from 1 (lowest) to 10"));
        assert!(e[1].contains("(write `/etc/`)"));
        assert!(e[2].contains("unknown protocol `tcpx`"));
    }

    #[test]
    fn host_network_rules_need_from_source() {
        let src = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorHostPolicy\nmetadata:\n  name: h\nspec:\n  nodeSelector:\n    matchLabels:\n      kubernetes.io/hostname: n\n  network:\n    matchProtocols:\n    - protocol: raw\n  action: Block\n";
        let e = errors(src);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("11:7: "), "{e:?}");
        assert!(e[0].contains("needs `fromSource`"));
    }

    #[test]
    fn booleans_and_strings_follow_kubernetes_typing() {
        let src = format!(
            "{HEAD}  file:\n    matchDirectories:\n    - dir: /etc/\n      recursive: \"true\"\n"
        );
        assert!(errors(&src)[0].contains("must be true or false, found the string \"true\""));
        let src = format!(
            "{HEAD}  selector:\n    matchLabels:\n      app: 12\n  file:\n    matchPaths:\n    - path: /a\n"
        );
        assert!(errors(&src)[0].contains("must be a string, found the number 12"));
    }

    #[test]
    fn capability_and_protocol_spellings() {
        let src = format!(
            "{HEAD}  capabilities:\n    matchCapabilities:\n    - capability: cap_net_raw\n    - capability: sys_admin\n  network:\n    matchProtocols:\n    - protocol: TCP\n"
        );
        let parsed = parse_policies(&src);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        let r = &parsed.documents[0].policy.rules;
        assert_eq!(r[0].target, Target::Protocol("tcp".into()));
        assert_eq!(
            r[1].target,
            Target::Capability {
                name: "net_raw".into(),
                number: 13
            }
        );
        let src = format!(
            "{HEAD}  capabilities:\n    matchCapabilities:\n    - capability: CAP_NET_RAW\n"
        );
        assert!(
            errors(&src)[0].contains("unknown capability `CAP_NET_RAW` (did you mean `net_raw`?)")
        );
    }

    #[test]
    fn syscalls_are_audit_only() {
        let src = format!(
            "{HEAD}  syscalls:\n    matchSyscalls:\n    - syscall: [unlink, rmdir]\n      fromSource:\n      - dir: /bin/\n        recursive: true\n"
        );
        let parsed = parse_policies(&src);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        assert_eq!(parsed.documents[0].policy.rules[0].action, Action::Audit);
        let src = format!("{HEAD}  syscalls:\n    matchSyscalls:\n    - syscall: [unlinkk]\n");
        assert!(errors(&src)[0].contains("unknown syscall `unlinkk` (did you mean `unlink`?)"));
    }

    #[test]
    fn empty_policies_are_rejected() {
        let src = format!("{HEAD}  action: Block\n");
        assert!(errors(&src)[0].contains("the spec has no rules"));
        assert!(errors("")[0].contains("no YAML document"));
    }
}
