//! The AppArmor engine for the daemon loop: generate the host profile and one profile per
//! container, replace them atomically on every policy change, and turn AppArmor's kernel-log
//! records into decisions for the right workload.
//!
//! Containers: AppArmor cannot move a running task into a profile from outside; the runtime
//! puts a container's processes into the profile its OCI spec names
//! (`process.apparmorProfile`, or the pod's AppArmor annotation) when they start. So the agent
//! loads `armlet-<namespace>-<container>` ahead of time for every container the mapping file
//! names, and takes over that profile for every running container found in it (read from
//! `/proc/<pid>/attr/apparmor/current`); a container under any other profile is reported as
//! not enforced, with the profile name it should use.

use std::collections::BTreeMap;
use std::time::Duration;

use armlet_policy::ir::{CompiledPolicy, Workload};

use super::kernel::{self, AuditFeed, LoadError};
use super::log::{self, SourceOf};
use super::profile::{self, HOST_ATTACH, HOST_PROFILE, Profile};
use crate::alert::{DecisionEvent, WorkloadInfo};
use crate::enforce::fanotify::ContainerState;
use crate::procmon::ProcTable;
use crate::workloads::{Container, Match, WorkloadMap};

/// Profile names of the loaded set → source executables of their children.
#[derive(Debug, Clone, Default)]
struct Loaded {
    /// Source profile name (`armlet-host.src_N`, `parent//src_N`) → source executable.
    children: BTreeMap<String, String>,
    parents: Vec<String>,
}

impl Loaded {
    fn from(p: &Profile) -> Self {
        Loaded {
            // Children carry their full names: `parent//src_N` (containers, nested) or
            // `armlet-host.src_N` (the host's top-level siblings), as records name them.
            children: p
                .children
                .iter()
                .map(|(src, child)| (child.clone(), src.clone()))
                .collect(),
            parents: vec![p.name.clone()],
        }
    }
}

impl SourceOf for Loaded {
    fn source_of(&self, profile: &str) -> Option<&str> {
        self.children.get(profile).map(String::as_str)
    }
    fn is_ours(&self, profile: &str) -> bool {
        self.parents
            .iter()
            .any(|p| profile == p || profile.starts_with(&format!("{p}//")))
            || self.children.contains_key(profile)
    }
}

/// One container profile (`armlet-<namespace>-<name>`, attached by the runtime through the
/// OCI spec's `process.apparmorProfile`).
#[derive(Debug, Clone)]
struct Managed {
    workload: Workload,
    info: WorkloadInfo,
    loaded: Loaded,
    /// A container runs under it now (else it is preloaded from the mapping file, so the
    /// runtime finds it when the container starts).
    running: bool,
    /// Named by the mapping file: kept loaded while no container runs.
    expected: bool,
}

/// Enforcing with AppArmor profiles: `armlet-host` for the node, one profile per container.
#[derive(Debug)]
pub struct AppArmorEngine {
    feed: AuditFeed,
    ir: CompiledPolicy,
    host: Workload,
    loaded: Loaded,
    containers: BTreeMap<String, Managed>,
    /// Raw and packet sockets just created, by pid (at most [`RECENT_SOCKETS`]): a net_raw
    /// capability denial that follows names the socket it stopped.
    recent_sockets: std::collections::VecDeque<(u32, (u32, u32, u32), std::time::Instant)>,
    records: u64,
    alerts: u64,
}

const RECENT_SOCKETS: usize = 64;

/// A container's profile as the kernel reports it (`/proc/<pid>/attr/current`, mode
/// stripped), None when unconfined or unreadable.
fn current_profile(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/attr/apparmor/current"))
        .or_else(|_| std::fs::read_to_string(format!("/proc/{pid}/attr/current")))
        .ok()?;
    profile_of_attr(&text)
}

/// The profile name in an `attr/current` text: `NAME (MODE)` or `unconfined`.
fn profile_of_attr(text: &str) -> Option<String> {
    let t = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    let name = t.rsplit_once(" (").map_or(t, |(n, _)| n);
    (!name.is_empty() && name != "unconfined").then(|| name.to_string())
}

impl AppArmorEngine {
    /// Open the record feed (before the first profile loads, so no record is missed).
    /// `map`: the mapping file's named containers get their profiles loaded ahead of time.
    pub fn new(
        ir: CompiledPolicy,
        host: Workload,
        map: Option<&WorkloadMap>,
    ) -> Result<Self, LoadError> {
        let mut containers = BTreeMap::new();
        for e in map.map_or(&[][..], |m| &m.entries[..]) {
            if let Match::ContainerName(n) = &e.matches {
                containers.insert(
                    profile::container_profile_name(&e.namespace, n),
                    Managed {
                        workload: e.workload(),
                        info: WorkloadInfo {
                            host: false,
                            namespace: e.namespace.clone(),
                            pod: e.pod.clone().unwrap_or_default(),
                            container_id: String::new(),
                            container_name: n.clone(),
                        },
                        loaded: Loaded::default(),
                        running: false,
                        expected: true,
                    },
                );
            }
        }
        Ok(AppArmorEngine {
            feed: AuditFeed::open()?,
            ir,
            host,
            loaded: Loaded::default(),
            containers,
            recent_sockets: std::collections::VecDeque::new(),
            records: 0,
            alerts: 0,
        })
    }

    /// Generate and load the host profile and every container profile, in one parser run;
    /// on error the previous profiles stay in force.
    pub fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> Result<String, LoadError> {
        let eff = ir.effective(host);
        let p = profile::generate(HOST_PROFILE, Some(HOST_ATTACH), &eff);
        let mut text = p.text.clone();
        let mut next_containers = Vec::new();
        for (name, m) in &self.containers {
            let cp = profile::generate(name, None, &ir.effective(&m.workload));
            text.push_str(&cp.text);
            next_containers.push((name.clone(), cp));
        }
        if kernel::precompiled() {
            // One binary per profile text (what `armlet policy apparmor` compiled); every
            // binary is looked up before the first is loaded, so a missing one changes nothing.
            kernel::replace_each(
                std::iter::once((p.name.as_str(), p.text.as_str())).chain(
                    next_containers
                        .iter()
                        .map(|(n, cp)| (n.as_str(), cp.text.as_str())),
                ),
            )?;
        } else {
            kernel::replace(&p.name, &text)?;
        }
        let next_containers: Vec<(String, Loaded)> = next_containers
            .into_iter()
            .map(|(n, cp)| (n, Loaded::from(&cp)))
            .collect();
        for (name, l) in next_containers {
            if let Some(m) = self.containers.get_mut(&name) {
                m.loaded = l;
            }
        }
        let summary = format!(
            "{} rules for this node in profile {} ({} fromSource child profiles); {} rules not \
             expressible in AppArmor{}{}{}",
            eff.rules.len(),
            p.name,
            p.children.len(),
            p.unexpressed.len(),
            p.unexpressed
                .iter()
                .map(|u| format!("; rule {} {}: {}", u.rule, u.resource, u.reason))
                .collect::<String>(),
            if self.containers.is_empty() {
                String::new()
            } else {
                format!("; {} container profiles", self.containers.len())
            },
            if kernel::precompiled() {
                "; loaded from precompiled binary policy"
            } else {
                ""
            }
        );
        let next = Loaded::from(&p);
        // Source profiles of the previous policy that this one no longer has: remove them, or
        // their attachment would keep confining their executable. (Nested children go with
        // their parent's replacement.)
        for stale in self
            .loaded
            .children
            .keys()
            .filter(|c| !c.contains("//") && !next.children.contains_key(*c))
        {
            if let Err(e) = kernel::remove(stale) {
                eprintln!("armlet: {e}");
            }
        }
        self.loaded = next;
        self.ir = ir.clone();
        self.host = host.clone();
        Ok(summary)
    }

    /// Follow the running containers: each gets the profile it runs under (when it is one of
    /// ours by name) generated from its own effective rules.
    pub fn set_containers(&mut self, found: &[Container]) -> Vec<ContainerState> {
        let mut states = Vec::new();
        let mut running = std::collections::BTreeSet::new();
        for c in found {
            let want = profile::container_profile_name(&c.namespace, &c.name);
            let cur = current_profile(c.init_pid);
            let rules = self.ir.effective(&c.workload()).rules.len();
            let base = cur.as_deref().map(|p| p.split("//").next().unwrap_or(p));
            if base != Some(want.as_str()) {
                states.push(ContainerState {
                    id: c.id.clone(),
                    rules,
                    enforced: false,
                    problems: vec![format!(
                        "it runs under AppArmor profile {}, not {want} (set the OCI spec's \
                         process.apparmorProfile, or the pod's AppArmor annotation, to {want})",
                        cur.as_deref().unwrap_or("unconfined")
                    )],
                });
                continue;
            }
            running.insert(want.clone());
            let m = self
                .containers
                .entry(want.clone())
                .or_insert_with(|| Managed {
                    workload: c.workload(),
                    info: c.info(),
                    loaded: Loaded::default(),
                    running: true,
                    expected: false,
                });
            m.workload = c.workload();
            m.info = c.info();
            m.running = true;
            let mut problems = Vec::new();
            // Preloaded profiles are already current (apply); one found in use but not loaded
            // by this agent (left by an earlier one) is taken over.
            if m.loaded.parents.is_empty() {
                let cp = profile::generate(&want, None, &self.ir.effective(&m.workload));
                match kernel::replace(&want, &cp.text) {
                    Ok(()) => m.loaded = Loaded::from(&cp),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            states.push(ContainerState {
                id: c.id.clone(),
                rules,
                enforced: problems.is_empty(),
                problems,
            });
        }
        // Containers that are gone: their profile stays while the mapping file names it (a
        // restart finds it), otherwise it is removed.
        let gone: Vec<String> = self
            .containers
            .iter()
            .filter(|(n, m)| m.running && !running.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            let expected = self.containers.get(&n).is_some_and(|m| m.expected);
            if expected {
                if let Some(m) = self.containers.get_mut(&n) {
                    m.running = false;
                }
            } else {
                if let Err(e) = kernel::remove(&n) {
                    eprintln!("armlet: {e}");
                }
                self.containers.remove(&n);
            }
        }
        states
    }

    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<DecisionEvent>, LoadError> {
        let lines = self.feed.poll(timeout)?;
        let mut out = Vec::new();
        for line in lines {
            let Some(rec) = log::parse(&line) else {
                continue;
            };
            self.records += 1;
            let Some(prof) = rec.get("profile") else {
                continue;
            };
            if rec.get("operation") == Some("create")
                && let Some(sock) = log::socket_of(&rec)
                && (sock.1 == 3 || sock.0 == 17)
            {
                if self.recent_sockets.len() >= RECENT_SOCKETS {
                    self.recent_sockets.pop_front();
                }
                let pid = rec.num("pid").unwrap_or(0);
                self.recent_sockets
                    .push_back((pid, sock, std::time::Instant::now()));
            }
            let d = if self.loaded.is_ours(prof) {
                let eff = self.ir.effective(&self.host);
                log::decision(&rec, &eff, &self.loaded)
            } else if let Some(m) = self.containers.values().find(|m| m.loaded.is_ours(prof)) {
                let eff = self.ir.effective(&m.workload);
                log::decision(&rec, &eff, &m.loaded).map(|mut d| {
                    d.workload = m.info.clone();
                    d
                })
            } else {
                None
            };
            let Some(d) = d else {
                continue;
            };
            self.alerts += 1;
            let extra = self.stopped_socket(&d);
            out.push(d);
            out.extend(extra);
        }
        Ok(out)
    }

    /// A net_raw capability decision right after the same process created a raw or packet
    /// socket: the Network operation it stopped, as KubeArmor reports it.
    fn stopped_socket(&mut self, d: &DecisionEvent) -> Option<DecisionEvent> {
        if d.category != armlet_policy::model::Category::Capabilities || d.resource != "net_raw" {
            return None;
        }
        let at = self
            .recent_sockets
            .iter()
            .rposition(|(pid, _, t)| *pid == d.pid && t.elapsed() < Duration::from_secs(2))?;
        let (_, (family, ty, proto), _) = self.recent_sockets.remove(at)?;
        let mut n = d.clone();
        n.category = armlet_policy::model::Category::Network;
        n.resource = crate::enforce::fanotify::net::socket_resource(family, ty, proto, "");
        Some(n)
    }

    pub fn counters_line(&self) -> String {
        format!(
            "{} AppArmor records read from {}, {} decisions alerted, {} records lost before \
             they were read",
            self.records,
            self.feed.describe(),
            self.alerts,
            self.feed.overruns
        )
    }
}

impl Drop for AppArmorEngine {
    /// Stopping the agent removes its host profiles, as stopping BPF-LSM detaches its
    /// programs. A container profile cannot simply go: the runtime names it for every `exec`
    /// into the container and every restart, so it is replaced by a profile that allows
    /// everything (no rules), and removed only when no container uses it.
    fn drop(&mut self) {
        let names = self.loaded.children.keys().filter(|c| !c.contains("//"));
        for p in self.loaded.parents.iter().chain(names) {
            if let Err(e) = kernel::remove(p) {
                eprintln!("armlet: {e}");
            }
        }
        for (name, m) in &self.containers {
            let r = if m.running || m.expected {
                let open =
                    profile::generate(name, None, &armlet_policy::ir::EffectiveRules::default());
                kernel::replace(name, &open.text)
            } else {
                kernel::remove(name)
            };
            if let Err(e) = r {
                eprintln!("armlet: {e}");
            }
        }
    }
}

impl crate::daemon::Engine for AppArmorEngine {
    fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> anyhow::Result<String> {
        Ok(AppArmorEngine::apply(self, ir, host)?)
    }

    fn poll(
        &mut self,
        timeout: Duration,
        _table: &mut ProcTable,
    ) -> anyhow::Result<Vec<DecisionEvent>> {
        Ok(AppArmorEngine::poll(self, timeout)?)
    }

    fn counters_line(&self) -> String {
        AppArmorEngine::counters_line(self)
    }

    fn set_containers(
        &mut self,
        containers: Vec<Container>,
    ) -> Option<anyhow::Result<Vec<ContainerState>>> {
        Some(Ok(AppArmorEngine::set_containers(self, &containers)))
    }
}

/// Every profile text a node with this policy and mapping file generates: the host profile, each
/// named container's profile and its allow-everything form (left when the agent stops), and
/// the probe's test profile. `armlet policy apparmor` compiles each of them.
pub fn node_profiles(
    ir: &CompiledPolicy,
    host: &Workload,
    map: Option<&WorkloadMap>,
) -> Vec<(String, String)> {
    let mut out = vec![(
        HOST_PROFILE.to_string(),
        profile::generate(HOST_PROFILE, Some(HOST_ATTACH), &ir.effective(host)).text,
    )];
    let open = armlet_policy::ir::EffectiveRules::default();
    for e in map.map_or(&[][..], |m| &m.entries[..]) {
        if let Match::ContainerName(n) = &e.matches {
            let name = profile::container_profile_name(&e.namespace, n);
            let text = profile::generate(&name, None, &ir.effective(&e.workload())).text;
            out.push((name.clone(), text));
            out.push((name.clone(), profile::generate(&name, None, &open).text));
        }
    }
    out.push((
        PROBE_PROFILE.to_string(),
        profile::generate(PROBE_PROFILE, None, &open).text,
    ));
    out
}

const PROBE_PROFILE: &str = "armlet-probe";

/// Load the host profile and check it is listed, then remove it: `armlet probe`'s functional
/// AppArmor check (an empty policy: the profile allows everything).
pub fn functional_probe() -> Result<String, String> {
    let name = PROBE_PROFILE;
    let p = profile::generate(name, None, &armlet_policy::ir::EffectiveRules::default());
    kernel::replace(name, &p.text).map_err(|e| e.to_string())?;
    let listed = kernel::is_loaded(name);
    kernel::remove(name).map_err(|e| e.to_string())?;
    if listed {
        Ok(format!(
            "loaded and removed a test profile with {}",
            if kernel::precompiled() {
                "precompiled binary policy".to_string()
            } else {
                kernel::parser().map_or_else(String::new, |p| p.display().to_string())
            }
        ))
    } else {
        Err("apparmor_parser succeeded but the profile is not listed in securityfs".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KubeArmorPolicy compiled, and the container `ubuntu-1` of namespace `github`.
    fn ubuntu1(src: &str) -> (CompiledPolicy, Workload) {
        let ir =
            armlet_policy::compile_text(src, "t", armlet_policy::ir::Posture::default()).unwrap();
        let w = Workload::Container {
            namespace: "github".to_string(),
            labels: [("container".to_string(), "ubuntu-1".to_string())].into(),
        };
        (ir, w)
    }

    #[test]
    fn records_of_a_container_child_profile_decide_with_its_source() {
        let src = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: p, namespace: github}\nspec:\n  selector: {matchLabels: {container: ubuntu-1}}\n  file:\n    matchPaths:\n    - path: /secret.txt\n      fromSource: [{path: /bin/cat}]\n  action: Block\n";
        let (ir, w) = ubuntu1(src);
        let eff = ir.effective(&w);
        let cp = profile::generate("armlet-github-ubuntu-1", None, &eff);
        let l = Loaded::from(&cp);
        let rec = log::parse("audit(1796352663.280:5): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"armlet-github-ubuntu-1//src_0\" name=\"/secret.txt\" pid=260 comm=\"cat\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0").unwrap();
        let d = log::decision(&rec, &eff, &l);
        assert!(d.is_some(), "{rec:?}");
    }

    #[test]
    fn native_rules_go_into_the_profile_and_their_denials_name_the_policy() {
        let src = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: nsp-etc, namespace: github}\nspec:\n  selector: {matchLabels: {container: ubuntu-1}}\n  apparmor: |\n    deny /etc/{*,**} rw,\n";
        let (ir, w) = ubuntu1(src);
        let other = Workload::Container {
            namespace: "github".to_string(),
            labels: [("container".to_string(), "ubuntu-2".to_string())].into(),
        };
        let eff = ir.effective(&w);
        let cp = profile::generate("armlet-github-ubuntu-1", None, &eff);
        assert!(
            cp.text
                .contains("  # native rules of nsp-etc\n  audit deny /etc/{*,**} rw,\n"),
            "{}",
            cp.text
        );
        assert!(cp.unexpressed.is_empty());
        let cp2 = profile::generate("armlet-github-ubuntu-2", None, &ir.effective(&other));
        assert!(!cp2.text.contains("native rules"));
        let l = Loaded::from(&cp);
        let rec = log::parse("apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"armlet-github-ubuntu-1\" name=\"/etc/shells\" pid=4000000 comm=\"cat\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0").unwrap();
        let d = log::decision(&rec, &eff, &l).unwrap();
        assert_eq!(
            (d.category, d.action, d.rule_id, d.resource.as_str()),
            (
                armlet_policy::model::Category::File,
                armlet_policy::model::Action::Block,
                Some(armlet_policy::ir::NATIVE_RULE_BASE),
                "/etc/shells"
            )
        );
        let b = crate::alert::AlertBuilder::new(
            &ir,
            armlet_policy::support::Enforcer::AppArmor,
            "n".to_string(),
        );
        let a = b.build(&d, &crate::procinfo::ProcInfo::default());
        assert_eq!(a.policy_name, "nsp-etc");
        // A text that would close the profile early is not inserted, and is reported.
        let bad = src.replace("deny /etc/{*,**} rw,", "} profile x {");
        let ir =
            armlet_policy::compile_text(&bad, "t", armlet_policy::ir::Posture::default()).unwrap();
        let cp = profile::generate("armlet-github-ubuntu-1", None, &ir.effective(&w));
        assert!(!cp.text.contains("profile x"));
        assert_eq!(cp.unexpressed[0].rule, profile::NATIVE_RULE);
    }

    #[test]
    fn a_socket_allowed_by_one_of_its_names_is_not_a_posture_alert() {
        // KubeArmor's multiubuntu scenario 12: tcp allowed for curl, the container's network
        // in allow-list mode; curl's socket is `tcp` and `stream`.
        let src = "apiVersion: security.kubearmor.com/v1\nkind: KubeArmorPolicy\nmetadata: {name: p, namespace: github}\nspec:\n  selector: {matchLabels: {container: ubuntu-1}}\n  network:\n    matchProtocols:\n    - protocol: tcp\n      fromSource: [{path: /usr/bin/curl}]\n  action: Allow\n";
        let (ir, w) = ubuntu1(src);
        let eff = ir.effective(&w);
        let l = Loaded::from(&profile::generate("armlet-github-ubuntu-1", None, &eff));
        let rec = |profile: &str, proto: u32| {
            log::parse(&format!("apparmor=\"AUDIT\" operation=\"connect\" class=\"net\" profile=\"{profile}\" pid=563 comm=\"x\" family=\"inet\" sock_type=\"stream\" protocol={proto} requested_mask=\"connect\"")).unwrap()
        };
        assert!(log::decision(&rec("armlet-github-ubuntu-1//src_0", 6), &eff, &l).is_none());
        assert!(log::decision(&rec("armlet-github-ubuntu-1//src_0", 0), &eff, &l).is_none());
        // Anyone else's tcp falls to the posture.
        let d = log::decision(&rec("armlet-github-ubuntu-1", 6), &eff, &l).unwrap();
        assert_eq!(
            (d.rule_id, d.action),
            (None, armlet_policy::model::Action::Audit)
        );
    }

    #[test]
    fn attr_current_names_the_profile() {
        assert_eq!(
            profile_of_attr("armlet-multiubuntu-ubuntu-1 (enforce)\n").as_deref(),
            Some("armlet-multiubuntu-ubuntu-1")
        );
        assert_eq!(
            profile_of_attr("armlet-ns-c//src_1 (enforce)\n").as_deref(),
            Some("armlet-ns-c//src_1")
        );
        assert_eq!(profile_of_attr("unconfined\n"), None);
        assert_eq!(profile_of_attr(""), None);
    }
}
