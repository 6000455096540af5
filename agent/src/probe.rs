//! Host probe and enforcer selection.
//!
//! Why split: reading `/sys` is I/O and lives in [`HostFacts::read`]; choosing an enforcer is a
//! pure function ([`select`]) over those facts, table-tested. This is the static half of
//! DESIGN §5's selection; the functional probe (attach a trivial program and see it fire)
//! arrives with the enforcement engine and can only move the choice *down* the list.

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
