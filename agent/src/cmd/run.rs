//! `armlet run`: the agent's main job.
//!
//! Take the policy source — a signed bundle verified against the trust root with every
//! node-side check, or a local directory of unsigned policies behind `--insecure-dev` — compile
//! it, probe the host, choose the best enforcer, and print the plan with every downgrade. With
//! `bpf-lsm` it then enforces until SIGTERM, writing alerts as JSON lines to stdout (and
//! `--alerts-file`); SIGHUP reloads the source and swaps the policy atomically (a rejected or
//! invalid one leaves the current policy in force). `--enforcer audit` runs the BPF-LSM
//! programs report-only where they work, else observes with tracepoints and decides in user
//! space. With `apparmor` it loads the `armlet-host` profile (enforce/apparmor) and reports
//! AppArmor's kernel-log records. With `fanotify` (chosen on kernels without BPF-LSM and
//! AppArmor) file opens and executions are held by fanotify permission events and decided in
//! user space, sockets by a cgroup program; `--scope-cgroup` confines only one cgroup subtree
//! (tests on shared machines).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use armlet_policy::ir::{CompiledPolicy, HOSTNAME_LABEL, Posture, Workload};
use armlet_policy::support::{self, Enforcer};

use crate::cli::RunArgs;
use crate::cmd::policy::{enforcer, render};
use crate::daemon;
use crate::policy_files;
use crate::probe::{self, HostFacts};

/// Where the policy comes from; loaded at start and again on SIGHUP.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// A signed bundle, verified with every node-side check (and recorded in the state dir).
    Bundle {
        bundle: std::path::PathBuf,
        trust: std::path::PathBuf,
        state: std::path::PathBuf,
        node: String,
        labels: String,
    },
    /// Unsigned local policies (`--insecure-dev`).
    Local {
        path: std::path::PathBuf,
        posture: Posture,
    },
}

impl PolicySource {
    /// Load, verify and compile. A rejected bundle is an error naming its reason code; the
    /// caller keeps the policy in force.
    pub fn load(&self) -> anyhow::Result<(CompiledPolicy, String)> {
        match self {
            PolicySource::Bundle {
                bundle,
                trust,
                state,
                node,
                labels,
            } => {
                let (ir, serial) = verify_for_node(bundle, trust, state, node, labels)?;
                Ok((
                    ir,
                    format!("signed bundle {} (serial {serial})", bundle.display()),
                ))
            }
            PolicySource::Local { path, posture } => {
                let (ir, loaded) =
                    policy_files::compile_paths(std::slice::from_ref(path), *posture)?;
                for n in &loaded.replaced {
                    eprintln!("{n}");
                }
                Ok((ir, format!("unsigned policies in {}", path.display())))
            }
        }
    }
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    // Before the probe: its AppArmor check loads a test profile the same way.
    if let Some(dir) = &a.apparmor_precompiled {
        crate::enforce::apparmor::kernel::set_precompiled(dir.clone());
    }
    let facts = HostFacts::read();
    let (best, why) = probe::select(&facts);
    let chosen = a.enforcer.map(enforcer).unwrap_or(best);
    let node = match &a.node {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .context("cannot read the host name; pass --node")?,
    };

    let source = match (&a.bundle, &a.policies) {
        (Some(bundle), None) => PolicySource::Bundle {
            bundle: bundle.clone(),
            trust: a
                .trust
                .clone()
                .context("--bundle needs --trust (the node's trust root)")?,
            state: a.state.clone(),
            node: node.clone(),
            labels: a.labels.clone(),
        },
        (None, Some(dir)) => {
            if !a.insecure_dev {
                anyhow::bail!(
                    "refusing unsigned policies from {}: armlet enforces signed bundles \
                     (--bundle FILE --trust trust.bin); for development pass --insecure-dev",
                    dir.display()
                );
            }
            eprintln!(
                "armlet: WARNING: --insecure-dev: using UNSIGNED local policies from {}; never \
                 do this in production",
                dir.display()
            );
            PolicySource::Local {
                path: dir.clone(),
                posture: Posture::parse(&a.default_posture)?,
            }
        }
        _ => anyhow::bail!(
            "nothing to enforce: pass --bundle FILE --trust trust.bin, or --policies DIR \
             --insecure-dev"
        ),
    };
    // After the first start the --bundle file's serial is the recorded one (or older, once a
    // newer bundle was pushed or reloaded), so the verifier refuses it as a rollback; the node
    // then enforces its active bundle, the last one it accepted, re-verified at exactly the
    // recorded serial. Only when neither verifies does it refuse to start.
    let (ir, origin) = match source.load() {
        Ok(loaded) => loaded,
        Err(e) => match crate::cmd::fleet::active_bundle(&source)? {
            Some((ir, origin)) => (
                ir,
                format!("{origin}; the --bundle file was not applied: {e:#}"),
            ),
            None => return Err(e),
        },
    };

    let report = support::plan(chosen, &ir);
    let host = host_workload(&node, &a.labels)?;
    let summary = format!(
        "armlet {} on node {node} ({} {})\npolicy source: {origin}\nenforcer: {}{} — best available: {} ({why})\nhost workload: {} of {} rules apply to this node\n\n{}",
        env!("CARGO_PKG_VERSION"),
        facts.arch,
        facts.kernel,
        chosen.as_str(),
        if a.enforcer.is_some() {
            " (forced)"
        } else {
            ""
        },
        best.as_str(),
        ir.effective(&host).rules.len(),
        ir.rule_count(),
        render(&ir, &report)
    );
    let bpf_lsm_works = best == Enforcer::BpfLsm;
    let scope = match &a.scope_cgroup {
        Some(s) => Some(crate::enforce::fanotify::scope_path(
            s,
            probe::cgroup2_mount().as_deref(),
        )?),
        None => None,
    };
    let engine = chosen;
    // Forced AppArmor on a kernel without it: nothing could be loaded; say so and stop.
    if engine == Enforcer::AppArmor && !probe::apparmor_present() {
        print!("{summary}");
        println!(
            "\narmlet: NOT ENFORCING: AppArmor is not active in this kernel ({} is absent). \
             Nothing was blocked.",
            crate::enforce::apparmor::kernel::SECURITYFS
        );
        return Ok(ExitCode::SUCCESS);
    }
    if scope.is_some() && engine != Enforcer::Fanotify {
        anyhow::bail!(
            "--scope-cgroup confines one cgroup subtree, which only the fanotify enforcer \
             implements (chosen: {})",
            engine.as_str()
        );
    }
    // Alerts own stdout while the daemon runs; the plan goes to stderr.
    eprint!("{summary}");
    let out = daemon::Outputs {
        alerts_file: a.alerts_file.clone(),
        rotation: crate::alert::Rotation::new(a.alerts_max_bytes, a.alerts_keep)?,
        ready_file: a.ready_file.clone(),
        node: node.clone(),
        alerts_per_sec: a.alerts_per_sec,
        workload_map: match &a.workloads {
            Some(p) => Some(crate::workloads::WorkloadMap::load(p)?),
            None => None,
        },
        workloads_file: a.workloads_file.clone(),
        mqtt: crate::cmd::fleet::run_config(&a.mqtt.without_empty(), &node, &a.state)?,
    };
    if engine == Enforcer::Fanotify {
        daemon::run_fanotify(ir, &host, &source, engine, scope, &out)?;
    } else if engine == Enforcer::AppArmor {
        daemon::run_apparmor(ir, &host, &source, &out)?;
    } else if engine == Enforcer::BpfLsm || bpf_lsm_works {
        // Audit on a BPF-LSM kernel: the same programs, report-only.
        daemon::run_bpf_lsm(ir, &host, &source, engine, &out)?;
    } else {
        daemon::run_tracepoint_audit(ir, &host, &source, &out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The node as a workload: its labels plus the host-name labels KubeArmor sets.
pub fn host_workload(node: &str, labels: &str) -> anyhow::Result<Workload> {
    let mut map: BTreeMap<String, String> = parse_labels(labels)?;
    map.entry(HOSTNAME_LABEL.to_string())
        .or_insert_with(|| node.to_string());
    map.entry("kubernetes.io/hostname".to_string())
        .or_insert_with(|| node.to_string());
    Ok(Workload::Host { labels: map })
}

/// `k=v,k2=v2` → map (the same syntax as bundle scopes and `bundle verify --labels`).
pub fn parse_labels(s: &str) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(armlet_bundle::envelope::parse_labels(s)?)
}

/// Verify a bundle exactly as `armlet bundle verify` does (same checks, same state directory),
/// then decode its payload. A rejection is an error that names the reason code.
fn verify_for_node(
    bundle: &std::path::Path,
    trust: &std::path::Path,
    state: &std::path::Path,
    node: &str,
    labels: &str,
) -> anyhow::Result<(CompiledPolicy, u64)> {
    use crate::cmd::bundle::{agent_version, now_unix};
    let bytes = std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let identity = armlet_bundle::NodeIdentity {
        name: node.to_string(),
        labels: parse_labels(labels)?,
    };
    let accepted = crate::state::verify_and_record(
        &bytes,
        trust,
        state,
        now_unix()?,
        &identity,
        agent_version()?,
    )?
    .map_err(|r| anyhow::anyhow!("bundle rejected: {}: {}", r.code, r.detail))?;
    let ir = CompiledPolicy::from_bytes(&accepted.payload)
        .context("the verified bundle's payload is not a policy this agent can apply")?;
    // Kept beside the serial just recorded: the next start finds the file's serial no longer
    // above the recorded one (rollback) and enforces this copy, re-verified at exactly that
    // serial, instead of starting with nothing.
    crate::transport::control::Verifier {
        trust: trust.to_owned(),
        state: state.to_owned(),
        node: node.to_owned(),
        labels: labels.to_owned(),
    }
    .persist_active(&bytes)
    .with_context(|| format!("keeping the accepted bundle in {}", state.display()))?;
    Ok((ir, accepted.manifest.serial))
}
