//! What the agent needs from its host, per enforcer: Linux capabilities, host mounts and the
//! host PID namespace. `armlet probe --requirements` prints it as JSON.
//!
//! Why a table in the binary: the DaemonSet (`k3s/`), the systemd unit (`yocto/`) and the
//! docs must grant exactly what the agent uses — no `privileged: true`, nothing forgotten. A
//! test (`k3s/tests/check_requirements.py`) compares this table with the DaemonSet, so a new
//! enforcer that needs a new capability cannot ship without the manifest following.
//!
//! Sources: the kernel's `bpf(2)` permission checks (`kernel/bpf/syscall.c`: LSM and tracing
//! program types need `CAP_BPF` + `CAP_PERFMON`, cgroup socket programs `CAP_NET_ADMIN`;
//! since 5.11 BPF memory is charged to the memory cgroup, not `RLIMIT_MEMLOCK`, and armlet's
//! programs need 5.17+ for `bpf_loop`, so `CAP_SYS_RESOURCE` is not needed),
//! `fanotify_init(2)` (`FAN_CLASS_CONTENT` needs `CAP_SYS_ADMIN`) and AppArmor's policy
//! interface (loading profiles through securityfs needs `CAP_MAC_ADMIN`).

use armlet_policy::support::Enforcer;
use serde::Serialize;

/// One capability and why the agent needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capability {
    /// Kernel name without the `CAP_` prefix (as Kubernetes spells it).
    pub name: &'static str,
    pub why: &'static str,
}

/// One host path the agent must see at the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub path: &'static str,
    pub read_only: bool,
    pub why: &'static str,
}

/// Everything one enforcer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirements {
    pub enforcer: &'static str,
    /// Whether this build implements the enforcer (planned ones are listed so packaging can
    /// grant them once; see the README's support table).
    pub implemented: bool,
    pub host_pid: bool,
    pub capabilities: Vec<Capability>,
    pub mounts: Vec<Mount>,
}

const BPF: Capability = Capability {
    name: "BPF",
    why: "create maps, load BTF and programs (bpf(2))",
};
const PERFMON: Capability = Capability {
    name: "PERFMON",
    why: "LSM and tracing program types; bpf_probe_read_kernel in the programs",
};
const SYS_PTRACE: Capability = Capability {
    name: "SYS_PTRACE",
    why: "read /proc/<pid>/exe, cwd and fd of other users' processes (alert context, paths)",
};
const DAC_READ_SEARCH: Capability = Capability {
    name: "DAC_READ_SEARCH",
    why: "stat policy paths (fromSource inodes) and read /proc entries regardless of modes",
};
const SYS_ADMIN: Capability = Capability {
    name: "SYS_ADMIN",
    why: "fanotify_init with FAN_CLASS_CONTENT (permission events), mount/filesystem marks",
};
const NET_ADMIN: Capability = Capability {
    name: "NET_ADMIN",
    why: "cgroup socket programs (sock_create, connect4/6, bind4/6)",
};
const AUDIT_READ: Capability = Capability {
    name: "AUDIT_READ",
    why: "AppArmor's records from the audit netlink multicast group (kmsg is rate-limited)",
};
const MAC_ADMIN: Capability = Capability {
    name: "MAC_ADMIN",
    why: "load and replace AppArmor profiles through securityfs",
};

const SECURITYFS_RO: Mount = Mount {
    path: "/sys/kernel/security",
    read_only: true,
    why: "the active LSM list (enforcer choice)",
};
const SECURITYFS_RW: Mount = Mount {
    path: "/sys/kernel/security",
    read_only: false,
    why: "the active LSM list; AppArmor profiles are written to apparmor/.replace",
};
const CGROUP: Mount = Mount {
    path: "/sys/fs/cgroup",
    read_only: true,
    why: "the host cgroup hierarchy: workload cgroup ids, cgroup-BPF attach points",
};
const RUNTIME_STATE: Mount = Mount {
    path: "/run/containerd",
    read_only: true,
    why: "containerd's runc state (K3s, MicroK8s: runc/k8s.io/<id>/state.json): which cgroup is which container",
};
const K3S_RUNTIME_STATE: Mount = Mount {
    path: "/run/k3s/containerd",
    read_only: true,
    why: "K3s's embedded containerd keeps its runc state here",
};
const STATE: Mount = Mount {
    path: "/var/lib/armlet",
    read_only: false,
    why: "highest accepted serial, time floor and rotated roots must survive restarts",
};

/// The requirements of one enforcer.
pub fn for_enforcer(e: Enforcer) -> Requirements {
    let (implemented, capabilities, mounts) = match e {
        Enforcer::BpfLsm => (
            true,
            vec![BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH],
            vec![SECURITYFS_RO, CGROUP, STATE],
        ),
        // Report-only: the BPF-LSM programs, or tracepoints where BPF-LSM is refused.
        Enforcer::Audit => (
            true,
            vec![BPF, PERFMON, SYS_PTRACE, DAC_READ_SEARCH],
            vec![SECURITYFS_RO, CGROUP, STATE],
        ),
        // Permission events for files and executions; a cgroup sock_create program (which
        // reads the caller's task: CAP_PERFMON) for sockets; the runtime's state for
        // containers.
        Enforcer::Fanotify => (
            true,
            vec![
                SYS_ADMIN,
                BPF,
                PERFMON,
                NET_ADMIN,
                SYS_PTRACE,
                DAC_READ_SEARCH,
            ],
            vec![
                SECURITYFS_RO,
                CGROUP,
                STATE,
                RUNTIME_STATE,
                K3S_RUNTIME_STATE,
            ],
        ),
        Enforcer::AppArmor => (
            true,
            vec![MAC_ADMIN, AUDIT_READ, SYS_PTRACE, DAC_READ_SEARCH],
            vec![SECURITYFS_RW, CGROUP, STATE],
        ),
    };
    Requirements {
        enforcer: e.as_str(),
        implemented,
        host_pid: true,
        capabilities,
        mounts,
    }
}

/// The union over every enforcer: what a package that lets the agent choose at run time
/// (a DaemonSet on mixed nodes, an image for several kernels) must grant. A path needed
/// read-write by any enforcer is read-write.
pub fn union() -> Requirements {
    let mut all = Requirements {
        enforcer: "any",
        implemented: true,
        host_pid: false,
        capabilities: Vec::new(),
        mounts: Vec::new(),
    };
    for e in Enforcer::ALL {
        let r = for_enforcer(e);
        all.host_pid |= r.host_pid;
        for c in r.capabilities {
            if !all.capabilities.iter().any(|x| x.name == c.name) {
                all.capabilities.push(c);
            }
        }
        for m in r.mounts {
            match all.mounts.iter_mut().find(|x| x.path == m.path) {
                Some(x) if x.read_only && !m.read_only => *x = m,
                Some(_) => {}
                None => all.mounts.push(m),
            }
        }
    }
    all.capabilities.sort_by_key(|c| c.name);
    all.mounts.sort_by_key(|m| m.path);
    all
}

/// The JSON document `armlet probe --requirements` prints.
pub fn document() -> serde_json::Value {
    serde_json::json!({
        "format": "armlet-requirements-v1",
        "enforcers": Enforcer::ALL.iter().map(|e| for_enforcer(*e)).collect::<Vec<_>>(),
        "union": union(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_covers_every_enforcer_and_prefers_read_write() {
        let u = union();
        for e in Enforcer::ALL {
            let r = for_enforcer(e);
            for c in &r.capabilities {
                assert!(u.capabilities.iter().any(|x| x.name == c.name), "{c:?}");
            }
            for m in &r.mounts {
                let x = u.mounts.iter().find(|x| x.path == m.path);
                assert!(x.is_some_and(|x| !x.read_only || m.read_only), "{m:?}");
            }
        }
        let sec = u.mounts.iter().find(|m| m.path == "/sys/kernel/security");
        assert_eq!(sec.map(|m| m.read_only), Some(false));
        let names: Vec<_> = u.capabilities.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "AUDIT_READ",
                "BPF",
                "DAC_READ_SEARCH",
                "MAC_ADMIN",
                "NET_ADMIN",
                "PERFMON",
                "SYS_ADMIN",
                "SYS_PTRACE"
            ]
        );
        assert!(u.host_pid);
    }

    #[test]
    fn bpf_lsm_needs_no_sys_admin() {
        let r = for_enforcer(Enforcer::BpfLsm);
        assert!(r.capabilities.iter().all(|c| c.name != "SYS_ADMIN"));
        assert!(r.capabilities.iter().any(|c| c.name == "BPF"));
        assert!(r.capabilities.iter().any(|c| c.name == "PERFMON"));
    }
}
