//! `armlet probe`: what this host supports and which enforcer armlet chooses, and why (like
//! `karmor probe`). The static facts come from securityfs/sysfs/procfs; for BPF-LSM the
//! functional probe loads and attaches the real programs and sees them fire, because a kernel
//! can list `bpf` among its LSMs and still refuse the programs.

use std::process::ExitCode;

use armlet_policy::support::Enforcer;

use crate::cli::ProbeArgs;
use crate::probe::{self, HostFacts};

/// Which enforcers this build implements, and for which kernels.
fn implemented(e: Enforcer, bpf_lsm_ok: bool) -> (bool, &'static str) {
    match e {
        Enforcer::BpfLsm => (true, "implemented"),
        Enforcer::Audit if bpf_lsm_ok => (true, "implemented as the BPF-LSM programs, report-only"),
        Enforcer::Audit => (
            true,
            "implemented with tracepoints (observes and alerts, never blocks)",
        ),
        Enforcer::Fanotify => (
            true,
            "implemented: file opens and executions blocked through fanotify permission \
             events, sockets by a cgroup program; capability rules cannot be enforced \
             (support table)",
        ),
        Enforcer::AppArmor => (true, "implemented (needs apparmor_parser on the node)"),
    }
}

pub fn run(a: &ProbeArgs) -> anyhow::Result<ExitCode> {
    if a.requirements {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::requirements::document())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let facts = HostFacts::read();
    let (static_choice, static_why) = probe::select(&facts);
    let functional = if a.no_load || !matches!(static_choice, Enforcer::BpfLsm) {
        None
    } else {
        Some(probe::functional_bpf_lsm())
    };
    let (choice, why) = match &functional {
        Some(Err(e)) => {
            let (c, w) = probe::select(&probe::without_bpf(&facts));
            (c, format!("the BPF-LSM functional probe failed ({e}); {w}"))
        }
        Some(Ok(detail)) => (
            static_choice,
            format!("{static_why}; functional probe: {detail}"),
        ),
        None if a.no_load && static_choice == Enforcer::BpfLsm => (
            static_choice,
            format!("{static_why} (functional probe skipped)"),
        ),
        None => (static_choice, static_why),
    };
    // AppArmor chosen: check that a profile really loads (parser present, policy accepted).
    let apparmor = (choice == Enforcer::AppArmor && !a.no_load)
        .then(crate::enforce::apparmor::engine::functional_probe);
    let (mut choice, mut why) = match &apparmor {
        Some(Ok(d)) => (choice, format!("{why}; functional probe: {d}")),
        Some(Err(e)) => {
            let mut f = probe::without_bpf(&facts);
            f.lsms = f
                .lsms
                .map(|l| l.into_iter().filter(|x| x != "apparmor").collect());
            let (c, w) = probe::select(&f);
            (
                c,
                format!("the AppArmor functional probe failed ({e}); {w}"),
            )
        }
        None => (choice, why),
    };
    let fanotify = (choice == Enforcer::Fanotify && !a.no_load)
        .then(crate::enforce::fanotify::functional_probe);
    match &fanotify {
        Some(Ok(detail)) => why = format!("{why}; functional probe: {detail}"),
        Some(Err(e)) => {
            let (c, w) = probe::select(&probe::without_fanotify(&probe::without_bpf(&facts)));
            why = format!("the fanotify functional probe failed ({e}); {w}");
            choice = c;
        }
        None => {}
    }
    let bpf_ok = matches!(functional, Some(Ok(_)));
    let (works, note) = implemented(choice, bpf_ok);
    let lsms = facts.lsms.as_ref().map(|l| l.join(","));
    if a.json {
        let doc = serde_json::json!({
            "kernel": facts.kernel,
            "arch": facts.arch,
            "lsms": facts.lsms,
            "btf": facts.btf,
            "apparmor": probe::apparmor_present(),
            "fanotify": facts.fanotify,
            "cgroup2": probe::cgroup2_mount(),
            "bpf_lsm_functional": functional.as_ref().map(|r| r.is_ok()),
            "fanotify_functional": fanotify.as_ref().map(|r| r.is_ok()),
            "apparmor_functional": apparmor.as_ref().map(|r| r.is_ok()),
            "enforcer": choice.as_str(),
            "reason": why,
            "enforces_in_this_build": works,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Host:");
    println!("  kernel:        {} ({})", facts.kernel, facts.arch);
    println!(
        "  active LSMs:   {}",
        lsms.as_deref()
            .unwrap_or("unknown (securityfs has no lsm file)")
    );
    println!("  kernel BTF:    {}", yes(facts.btf));
    println!("  AppArmor:      {}", yes(probe::apparmor_present()));
    println!("  fanotify:      {}", yes(facts.fanotify));
    println!(
        "  cgroup v2:     {}",
        probe::cgroup2_mount().unwrap_or_else(|| "not mounted".into())
    );
    match &functional {
        Some(Ok(d)) => println!("  BPF-LSM:       works ({d})"),
        Some(Err(e)) => println!("  BPF-LSM:       refused ({e})"),
        None => println!("  BPF-LSM:       not tried"),
    }
    match &fanotify {
        Some(Ok(d)) => println!("  fanotify perm: works ({d})"),
        Some(Err(e)) => println!("  fanotify perm: refused ({e})"),
        None => println!("  fanotify perm: not tried"),
    }
    match &apparmor {
        Some(Ok(d)) => println!("  AppArmor load: works ({d})"),
        Some(Err(e)) => println!("  AppArmor load: refused ({e})"),
        None => println!("  AppArmor load: not tried"),
    }
    println!("Enforcers in this build:");
    for e in Enforcer::ALL {
        println!("  {:<9} {}", e.as_str(), implemented(e, bpf_ok).1);
    }
    println!("Selected: {} — {why}", choice.as_str());
    if !works {
        println!(
            "  note: {} — {note}; `armlet run` will report NOT ENFORCING",
            choice.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
