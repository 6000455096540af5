//! Host probe and enforcer selection.
//!
//! Why split: reading `/sys` is I/O and lives in [`HostFacts::read`]; choosing an enforcer is a
//! pure function ([`select`]) over those facts, table-tested. The functional probe
//! ([`functional_bpf_lsm`]) then loads and attaches the real programs with an empty policy,
//! triggers a file open and checks the hooks fired — it can only move the choice *down* the
//! list (a kernel that lists `bpf` but refuses the programs, as this CI machine's does).

use std::fs;

use armlet_policy::support::Enforcer;

/// What the kernel offers, as read from securityfs, sysfs and procfs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Active LSMs in order (`/sys/kernel/security/lsm`); None when securityfs is not readable.
    pub lsms: Option<Vec<String>>,
    /// Kernel BTF present (`/sys/kernel/btf/vmlinux`): CO-RE programs can load.
    pub btf: bool,
    /// fanotify is compiled in (`/proc/sys/fs/fanotify`).
    pub fanotify: bool,
    pub kernel: String,
    pub arch: &'static str,
}

impl HostFacts {
    pub fn read() -> Self {
        let lsms = fs::read_to_string("/sys/kernel/security/lsm")
            .ok()
            .map(|s| {
                s.trim()
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            });
        HostFacts {
            lsms,
            btf: fs::metadata("/sys/kernel/btf/vmlinux").is_ok(),
            fanotify: fs::metadata("/proc/sys/fs/fanotify").is_ok(),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            arch: std::env::consts::ARCH,
        }
    }
}

/// The best enforcer these facts allow, and why (DESIGN §5's order).
pub fn select(f: &HostFacts) -> (Enforcer, String) {
    let lsms = f.lsms.as_deref().unwrap_or(&[]);
    let has = |name: &str| lsms.iter().any(|l| l == name);
    let list = match &f.lsms {
        Some(l) => format!("active LSMs: {}", l.join(",")),
        None => "securityfs has no LSM list (/sys/kernel/security/lsm)".to_string(),
    };
    if has("bpf") && f.btf {
        (
            Enforcer::BpfLsm,
            format!("{list}; `bpf` is active and kernel BTF is present"),
        )
    } else if has("apparmor") {
        let why = if has("bpf") {
            "`bpf` is active but kernel BTF is missing"
        } else {
            "`bpf` is not an active LSM"
        };
        (
            Enforcer::AppArmor,
            format!("{list}; {why}; `apparmor` is active"),
        )
    } else if f.fanotify {
        (
            Enforcer::Fanotify,
            format!("{list}; neither `bpf` nor `apparmor` is active; fanotify is available"),
        )
    } else {
        (
            Enforcer::Audit,
            format!("{list}; no blocking mechanism is available: observe only"),
        )
    }
}

/// Load and attach the BPF-LSM programs with an empty, report-only policy, open a file, and
/// check that the hooks ran. Everything detaches when this returns.
pub fn functional_bpf_lsm() -> Result<String, String> {
    use crate::enforce::bpf_lsm::{BpfLsm, Capacity, Controls};
    use crate::enforce::kernel_rules::KernelRules;
    let rules = KernelRules::default();
    let mut enforcer = BpfLsm::load(Capacity::for_rules(&rules)).map_err(|e| format!("{e}"))?;
    let controls = Controls {
        enforce: false,
        host_workload: 0,
        host_confined: false,
        agent_tgid: 0,
        supervisor_tgid: 0,
        probe: true,
        alerts_per_sec: 0,
    };
    enforcer
        .apply(&rules, &std::collections::BTreeMap::new(), controls)
        .map_err(|e| format!("{e}"))?;
    for _ in 0..3 {
        let _ = fs::read_to_string("/proc/self/status");
    }
    let hits = enforcer.counters()[armlet_ebpf::CNT_PROBE_HITS as usize];
    if hits == 0 {
        return Err("the programs attached but no hook ran when a file was opened".to_string());
    }
    Ok(format!(
        "{} LSM programs attached; {hits} hook invocations seen for 3 file opens",
        armlet_ebpf::LSM_PROGRAMS.len()
    ))
}

/// The facts with fanotify struck out (after a failed functional probe).
pub fn without_fanotify(f: &HostFacts) -> HostFacts {
    HostFacts {
        fanotify: false,
        ..f.clone()
    }
}

/// The facts with BPF-LSM struck out (after a failed functional probe).
pub fn without_bpf(f: &HostFacts) -> HostFacts {
    HostFacts {
        lsms: f
            .lsms
            .as_ref()
            .map(|l| l.iter().filter(|x| *x != "bpf").cloned().collect()),
        ..f.clone()
    }
}

/// Is AppArmor usable (securityfs interface present)?
pub fn apparmor_present() -> bool {
    fs::metadata("/sys/kernel/security/apparmor").is_ok()
}

/// Where cgroup v2 is mounted, if anywhere.
pub fn cgroup2_mount() -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(lsms: Option<&str>, btf: bool, fanotify: bool) -> HostFacts {
        HostFacts {
            lsms: lsms.map(|l| l.split(',').map(str::to_string).collect()),
            btf,
            fanotify,
            kernel: String::new(),
            arch: "x86_64",
        }
    }

    #[test]
    fn selection_table() {
        let rows = [
            (
                Some("lockdown,capability,apparmor,bpf"),
                true,
                true,
                Enforcer::BpfLsm,
            ),
            (
                Some("lockdown,capability,apparmor,bpf"),
                false,
                true,
                Enforcer::AppArmor,
            ),
            (Some("capability,apparmor"), true, true, Enforcer::AppArmor),
            (Some("capability,selinux"), true, true, Enforcer::Fanotify),
            (None, true, true, Enforcer::Fanotify),
            (Some("capability,bpf"), false, false, Enforcer::Audit),
            (None, false, false, Enforcer::Audit),
        ];
        for (lsms, btf, fan, want) in rows {
            let (got, why) = select(&facts(lsms, btf, fan));
            assert_eq!(got, want, "{lsms:?} btf={btf} fanotify={fan}: {why}");
        }
    }
}
