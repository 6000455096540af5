//! `armlet policy check|compile`: the policy front end for people and CI.
//!
//! `check` prints one `FILE:LINE:COL: message` line per problem (stdout, so editors and CI
//! annotators can read it) and a summary on stderr; exit 1 when anything is invalid.
//! `compile` prints the rule IR and the chosen enforcer's downgrade report; `--json` gives one
//! stable document (ordered maps, no timestamps) for golden tests.

use std::process::ExitCode;

use armlet_policy::ir::{CompiledPolicy, Posture};
use armlet_policy::model::Source;
use armlet_policy::support::{self, Enforcer, SupportReport};

use crate::cli::{
    EnforcerArg, PolicyAppArmorArgs, PolicyCheckArgs, PolicyCommand, PolicyCompileArgs,
};
use crate::policy_files;

pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check(a) => check(&a),
        PolicyCommand::Compile(a) => compile(&a),
        PolicyCommand::Apparmor(a) => apparmor(&a),
    }
}

/// Compile every profile text the node will generate into `--out`, one binary each.
fn apparmor(a: &PolicyAppArmorArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let ir = match load_ir(&a.paths, &a.default_posture)? {
        Ok(ir) => ir,
        Err(code) => return Ok(code),
    };
    let host = crate::cmd::run::host_workload(&a.node, &a.labels)?;
    let map = match &a.workloads {
        Some(p) => Some(crate::workloads::WorkloadMap::load(p)?),
        None => None,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let profiles = crate::enforce::apparmor::engine::node_profiles(&ir, &host, map.as_ref());
    for (name, text) in &profiles {
        let file = a
            .out
            .join(crate::enforce::apparmor::kernel::binary_name(text));
        crate::enforce::apparmor::kernel::compile_binary(
            name,
            text,
            &file,
            a.features_file.as_deref(),
        )?;
        println!("{}  {name}", file.display());
    }
    eprintln!(
        "{} profiles compiled into {} (load with `armlet run --apparmor-precompiled {}`)",
        profiles.len(),
        a.out.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn enforcer(e: EnforcerArg) -> Enforcer {
    match e {
        EnforcerArg::BpfLsm => Enforcer::BpfLsm,
        EnforcerArg::AppArmor => Enforcer::AppArmor,
        EnforcerArg::Fanotify => Enforcer::Fanotify,
        EnforcerArg::Audit => Enforcer::Audit,
    }
}

fn check(a: &PolicyCheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = policy_files::load(&a.paths)?;
    for d in &loaded.diagnostics {
        println!("{d}");
    }
    for e in &loaded.compile_errors {
        println!("{e}");
    }
    for n in &loaded.replaced {
        println!("{n}");
    }
    let errors = loaded.error_count();
    eprintln!(
        "checked {} policies in {} files: {} error(s), {} warning(s)",
        loaded.policies.len(),
        loaded.files,
        errors,
        loaded.diagnostics.len() + loaded.compile_errors.len() + loaded.replaced.len() - errors
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Load and compile policy files; Err(exit 1) after printing the problems.
fn load_ir(
    paths: &[std::path::PathBuf],
    posture: &str,
) -> anyhow::Result<Result<CompiledPolicy, ExitCode>> {
    let posture = Posture::parse(posture)?;
    let loaded = policy_files::load(paths)?;
    if loaded.error_count() > 0 {
        for d in &loaded.diagnostics {
            println!("{d}");
        }
        for e in &loaded.compile_errors {
            println!("{e}");
        }
        return Ok(Err(ExitCode::from(1)));
    }
    Ok(Ok(armlet_policy::ir::compile(&loaded.policies, posture)?))
}

fn compile(a: &PolicyCompileArgs) -> anyhow::Result<ExitCode> {
    let ir = match load_ir(&a.paths, &a.default_posture)? {
        Ok(ir) => ir,
        Err(code) => return Ok(code),
    };
    let report = support::plan(enforcer(a.enforcer), &ir);
    if a.json {
        let doc = serde_json::json!({ "ir": ir, "support": report });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render(&ir, &report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human form of a compiled policy and its support report.
pub fn render(ir: &CompiledPolicy, report: &SupportReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let p = ir.posture;
    let _ = writeln!(
        out,
        "{} policies, {} rules in {} workload groups; default posture: process={} file={} \
         network={} capabilities={}",
        ir.policies.len(),
        ir.rule_count(),
        ir.workloads.len(),
        p.process.as_str().to_lowercase(),
        p.file.as_str().to_lowercase(),
        p.network.as_str().to_lowercase(),
        p.capabilities.as_str().to_lowercase(),
    );
    for w in &ir.workloads {
        let _ = writeln!(out, "\n{}", w.selector);
        for s in &w.allow_lists {
            let who = match &s.source {
                None => "every process".to_string(),
                Some(src) => source_text(src),
            };
            let _ = writeln!(
                out,
                "  allow-list: {} for {who} (the rest: posture {})",
                s.category.as_str(),
                ir.posture.for_category(s.category).as_str().to_lowercase()
            );
        }
        for r in &w.rules {
            let mut flags = Vec::new();
            if r.owner_only {
                flags.push("ownerOnly".to_string());
            }
            if r.read_only {
                flags.push("readOnly".to_string());
            }
            if !r.from_source.is_empty() {
                let s: Vec<String> = r.from_source.iter().map(source_text).collect();
                flags.push(format!("fromSource {}", s.join(",")));
            }
            let policy = ir.policy_of(r).map_or("?", |p| p.name.as_str());
            let _ = writeln!(
                out,
                "  #{:<4} {:<6} {:<12} {}{}  [{policy}, severity {}]",
                r.id,
                r.action.as_str(),
                r.category().as_str(),
                r.target.resource(),
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", flags.join("; "))
                },
                r.severity
            );
        }
    }
    let _ = writeln!(out);
    if report.is_complete() {
        let _ = writeln!(
            out,
            "enforcer {}: every rule is enforced as written",
            report.enforcer.as_str()
        );
    } else {
        let _ = writeln!(
            out,
            "enforcer {}: {} downgrade(s):",
            report.enforcer.as_str(),
            report.downgrades.len()
        );
        for d in &report.downgrades {
            let (what, reason) = match d.support {
                support::Support::AuditOnly(r) => ("audit only", r),
                support::Support::Ignored(r) => ("ignored", r),
                support::Support::Partial(r) => ("partly enforced", r),
                support::Support::Enforced => ("enforced", ""),
            };
            let rule = d.rule.map_or_else(|| "-".to_string(), |r| format!("#{r}"));
            let _ = writeln!(
                out,
                "  {rule:<5} {} {} {} [{}]: {what}: {reason}",
                d.action.as_str(),
                d.category.as_str(),
                d.resource,
                d.policy
            );
        }
    }
    out
}

fn source_text(s: &Source) -> String {
    match s {
        Source::Path(p) => p.clone(),
        Source::Dir { dir, recursive } => {
            format!("{dir}{}", if *recursive { " (recursive)" } else { "" })
        }
    }
}
