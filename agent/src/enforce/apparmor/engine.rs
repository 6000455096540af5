//! The AppArmor engine for the daemon loop: generate the host profile, replace it atomically on
//! every policy change, and turn AppArmor's kernel-log records into decisions.

use std::collections::BTreeMap;
use std::time::Duration;

use armlet_policy::ir::{CompiledPolicy, Workload};

use super::kernel::{self, AuditFeed, LoadError};
use super::log::{self, SourceOf};
use super::profile::{self, HOST_ATTACH, HOST_PROFILE, Profile};
use crate::alert::DecisionEvent;
use crate::procmon::ProcTable;

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

/// Enforcing with AppArmor profiles.
#[derive(Debug)]
pub struct AppArmorEngine {
    feed: AuditFeed,
    ir: CompiledPolicy,
    host: Workload,
    loaded: Loaded,
    records: u64,
    alerts: u64,
}

impl AppArmorEngine {
    /// Open the record feed (before the first profile loads, so no record is missed).
    pub fn new(ir: CompiledPolicy, host: Workload) -> Result<Self, LoadError> {
        Ok(AppArmorEngine {
            feed: AuditFeed::open()?,
            ir,
            host,
            loaded: Loaded::default(),
            records: 0,
            alerts: 0,
        })
    }

    /// Generate and load the host profile; on error the previous profile stays in force.
    pub fn apply(&mut self, ir: &CompiledPolicy, host: &Workload) -> Result<String, LoadError> {
        let eff = ir.effective(host);
        let p = profile::generate(HOST_PROFILE, Some(HOST_ATTACH), &eff);
        kernel::replace(&p.name, &p.text)?;
        let summary = format!(
            "{} rules for this node in profile {} ({} fromSource child profiles); {} rules not \
             expressible in AppArmor{}",
            eff.rules.len(),
            p.name,
            p.children.len(),
            p.unexpressed.len(),
            p.unexpressed
                .iter()
                .map(|u| format!("; rule {} {}: {}", u.rule, u.resource, u.reason))
                .collect::<String>()
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

    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<DecisionEvent>, LoadError> {
        let lines = self.feed.poll(timeout)?;
        let eff = self.ir.effective(&self.host);
        let mut out = Vec::new();
        for line in lines {
            let Some(rec) = log::parse(&line) else {
                continue;
            };
            self.records += 1;
            if let Some(d) = log::decision(&rec, &eff, &self.loaded) {
                self.alerts += 1;
                out.push(d);
            }
        }
        Ok(out)
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
    /// Stopping the agent removes its profiles, as stopping BPF-LSM detaches its programs.
    fn drop(&mut self) {
        let names = self.loaded.children.keys().filter(|c| !c.contains("//"));
        for p in self.loaded.parents.iter().chain(names) {
            if let Err(e) = kernel::remove(p) {
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
}

/// Load the host profile and check it is listed, then remove it: `armlet probe`'s functional
/// AppArmor check (an empty policy: the profile allows everything).
pub fn functional_probe() -> Result<String, String> {
    let name = "armlet-probe";
    let p = profile::generate(name, None, &armlet_policy::ir::EffectiveRules::default());
    kernel::replace(name, &p.text).map_err(|e| e.to_string())?;
    let listed = kernel::is_loaded(name);
    kernel::remove(name).map_err(|e| e.to_string())?;
    if listed {
        Ok(format!(
            "loaded and removed a test profile with {}",
            kernel::parser().map_or_else(String::new, |p| p.display().to_string())
        ))
    } else {
        Err("apparmor_parser succeeded but the profile is not listed in securityfs".to_string())
    }
}
