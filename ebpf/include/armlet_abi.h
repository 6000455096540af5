/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * armlet kernel <-> user ABI. Mirrored in Rust by ebpf/src/abi.rs; the layout tests there
 * fail if the two drift. Rules of this header:
 *   - integers only (no bool, no enum-typed fields), explicit padding, sizes multiple of 8;
 *   - every map key is fully initialised (padding zeroed) by both sides, because hash maps
 *     compare raw bytes;
 *   - values written by the kernel are read by user space as plain integers.
 */
#ifndef ARMLET_ABI_H
#define ARMLET_ABI_H

#ifndef __ARMLET_TYPES_DEFINED
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
#endif

/* Longest path matched in the kernel (bytes, including the terminating NUL). Longer paths are
 * handled fail-closed for Block rules: see file_open in armlet.bpf.c. */
#define ARMLET_PATH_MAX 256
/* Rules that can share one key (same workload, source, category, kind and path). */
#define ARMLET_RULES_PER_KEY 4
#define ARMLET_NO_RULE 0xffffffffu
/* Rule id reported for a default-posture decision. */
#define ARMLET_POSTURE_RULE 0xfffffffeu

/* Categories (armlet_path_key.category, armlet_id_key.category, events). */
#define ARMLET_CAT_PROCESS 1
#define ARMLET_CAT_FILE 2
#define ARMLET_CAT_NETWORK 3
#define ARMLET_CAT_CAPABILITY 4

/* Path match kinds (armlet_path_key.kind). */
#define ARMLET_KIND_EXACT 1         /* the whole path */
#define ARMLET_KIND_DIR_DIRECT 2    /* key path is the parent directory, with trailing '/' */
#define ARMLET_KIND_DIR_RECURSIVE 3 /* key path is any ancestor directory, with trailing '/' */
#define ARMLET_KIND_NAME 4          /* key path is the last component (execname) */

/* Actions (rule slots, posture, events). 0 = empty. */
#define ARMLET_ACT_ALLOW 1
#define ARMLET_ACT_AUDIT 2
#define ARMLET_ACT_BLOCK 3

/* Rule slot flags. */
#define ARMLET_FLAG_READ_ONLY 1
#define ARMLET_FLAG_OWNER_ONLY 2

/* Network protocol ids (armlet_id_key.id for ARMLET_CAT_NETWORK), KubeArmor's names. */
#define ARMLET_PROTO_ALL 0xff
#define ARMLET_PROTO_TCP 1
#define ARMLET_PROTO_UDP 2
#define ARMLET_PROTO_ICMP 3
#define ARMLET_PROTO_ICMPV6 4
#define ARMLET_PROTO_RAW 5
#define ARMLET_PROTO_SCTP 6
#define ARMLET_PROTO_STREAM 7
#define ARMLET_PROTO_DGRAM 8
#define ARMLET_PROTO_RDM 9
#define ARMLET_PROTO_SEQPACKET 10
#define ARMLET_PROTO_DCCP 11
#define ARMLET_PROTO_PACKET 12

/* Event kinds (first field of every event). Stable: retired ids stay unused. */
#define ARMLET_EV_DECISION 1
#define ARMLET_EV_EXEC 2
#define ARMLET_EV_FORK 3
#define ARMLET_EV_EXIT 4
#define ARMLET_EV_OPEN 5
#define ARMLET_EV_SOCKET 6

/* Counter slots (PERCPU_ARRAY "armlet_counters"). */
#define ARMLET_CNT_RINGBUF_DROPS 0
#define ARMLET_CNT_DENIALS 1
#define ARMLET_CNT_LONG_PATHS 2
#define ARMLET_CNT_SCRATCH_BUSY 3
#define ARMLET_CNT_PROBE_HITS 4
#define ARMLET_CNT_THROTTLED 5
#define ARMLET_CNT_PROC_DROPS 6
#define ARMLET_CNT_MAX 8

/* Alert priorities for in-kernel throttling: a rule match is never starved by posture noise
 * (each has its own budget per workload). */
#define ARMLET_PRIO_RULE 0
#define ARMLET_PRIO_POSTURE 1

/* Network operations (armlet_event.op for ARMLET_CAT_NETWORK). */
#define ARMLET_NET_CREATE 1
#define ARMLET_NET_CONNECT 2
#define ARMLET_NET_BIND 3
#define ARMLET_NET_LISTEN 4
#define ARMLET_NET_ACCEPT 5

/* "armlet_settings": ARRAY, one entry. */
struct armlet_settings {
    __u8 generation;   /* which generation of rule keys is active (0 or 1) */
    __u8 enforce;      /* 1: Block denies; 0: decisions are reported, nothing is denied */
    __u8 active;       /* 0: no policy loaded yet, every hook passes */
    __u8 has_sources;  /* 1: some rule has fromSource, so hooks resolve the caller's executable */
    __u32 host_workload;  /* workload index for tasks whose cgroup is not in "armlet_workloads" */
    __u32 agent_tgid;     /* protected from signals and ptrace by confined tasks */
    __u32 supervisor_tgid; /* the agent's parent (init, systemd, a test runner) may still stop it */
    __u8 host_confined;   /* 1: the host workload has rules, so self-protection applies to it */
    __u8 probe;           /* 1: count every hook invocation in ARMLET_CNT_PROBE_HITS */
    __u8 _pad[2];
    /* Alerts per second per workload and priority (0 = unlimited). Throttling only drops the
     * alert (counted in ARMLET_CNT_THROTTLED); the decision is never changed. */
    __u32 alerts_per_sec;
};

/* "armlet_throttle": LRU hash (workload << 8 | priority) -> one-second window. */
struct armlet_throttle {
    __u64 window_start_ns;
    __u32 count;
    __u32 _pad;
};

/* "armlet_workloads": HASH cgroup id (u64) -> struct armlet_workload. */
struct armlet_workload {
    __u32 index;
    __u8 confined; /* 1: the workload has rules; its tasks may not signal or trace the agent */
    __u8 _pad[3];
};

/* "armlet_sources": HASH; the executable file of a fromSource entry, by device and inode
 * (user space stats the policy's paths when it applies a policy) -> source id (u32, > 0).
 * Why not the path: resolving a path needs bpf_d_path, which the kernel allows only in
 * sleepable LSM hooks (not in capable, task_kill, ...); the inode is readable everywhere,
 * cheaper, and also covers hard links to the same binary. dev is the kernel's encoding
 * (major << 20 | minor). */
struct armlet_source_key {
    __u64 dev;
    __u64 ino;
    __u8 generation;
    __u8 _pad[7];
};

/* "armlet_path_rules": HASH -> struct armlet_rule_set. */
struct armlet_path_key {
    __u32 workload;
    __u32 source; /* 0: any process */
    __u8 generation;
    __u8 category;
    __u8 kind;
    __u8 _pad0;
    __u32 _pad1;
    char path[ARMLET_PATH_MAX]; /* zero-padded */
};

/* "armlet_id_rules": HASH (network protocols, capabilities) -> struct armlet_rule_set. */
struct armlet_id_key {
    __u32 workload;
    __u32 source;
    __u8 generation;
    __u8 category;
    __u16 id; /* protocol id or capability number */
    __u32 _pad;
};

struct armlet_rule_slot {
    __u32 rule_id; /* ARMLET_NO_RULE: empty slot */
    __u8 action;
    __u8 flags;
    __u16 _pad;
};

struct armlet_rule_set {
    struct armlet_rule_slot slots[ARMLET_RULES_PER_KEY];
};

/* "armlet_allow_lists": HASH; present = the category is in allow-list mode for this workload
 * (source 0) or for this source executable; the value is the default posture action. */
struct armlet_posture_key {
    __u32 workload;
    __u32 source;
    __u8 generation;
    __u8 category;
    __u16 _pad0;
    __u32 _pad1;
};

struct armlet_posture {
    __u8 action;
    __u8 _pad[7];
};

/* The common header first in every event, so a reader can dispatch (and account) before it
 * knows the payload. Fields that do not apply hold 0 (ret), ARMLET_NO_RULE (rule_id) or
 * ARMLET_NO_WORKLOAD (workload). */
#define ARMLET_NO_WORKLOAD 0xffffffffu
struct armlet_event_header {
    __u32 kind;         /* ARMLET_EV_* */
    __u32 workload;
    __u32 pid;          /* tgid */
    __u32 ppid;         /* tgid of the real parent */
    __u32 uid;
    __s32 ret;          /* what the hook returned: 0 or -EPERM */
    __u32 rule_id;      /* ARMLET_POSTURE_RULE for the default posture */
    __u32 _pad;
    __u64 cgroup_id;
    __u64 timestamp_ns; /* bpf_ktime_get_boot_ns */
};

/* Ring buffer "armlet_events": one record per alerting decision (ARMLET_EV_DECISION). */
struct armlet_event {
    struct armlet_event_header h;
    __u32 tid;
    __u8 category;
    __u8 action;        /* the rule's (or posture's) action */
    __u8 write;         /* file opened for writing */
    __u8 op;            /* network operation (ARMLET_NET_*), 0 otherwise */
    __u32 id;           /* protocol id, capability number, or 0 */
    __u32 sock;         /* network: family << 16 | (type & 0xff) << 8 | (protocol & 0xff) */
    char comm[16];
    char source[ARMLET_PATH_MAX]; /* executable of the acting task */
    char target[ARMLET_PATH_MAX]; /* path (process/file) */
};

/* Ring buffer "armlet_proc_events" (its own, so process churn never crowds out decisions):
 * the process monitor's exec/fork/exit records. */
struct armlet_proc_event {
    struct armlet_event_header h; /* ARMLET_EV_EXEC, _FORK (pid: the child) or _EXIT */
    char comm[16];
    char filename[ARMLET_PATH_MAX]; /* exec: the path as the caller passed it (logs only) */
};

/* The tracepoint audit enforcer (audit.bpf.c, for kernels without BPF-LSM). */

/* "armlet_audit_settings": ARRAY, one entry. */
struct armlet_audit_settings {
    __u32 agent_tgid; /* the agent's own syscalls are not reported (no feedback loop) */
    __u32 active;
};

/* Ring buffer "armlet_audit_events": an open or socket call as the caller made it. Paths are
 * what the caller passed (possibly relative to dfd or the cwd); user space resolves them. */
struct armlet_syscall_event {
    struct armlet_event_header h; /* ARMLET_EV_OPEN or ARMLET_EV_SOCKET */
    __s32 dfd;   /* open: the directory fd (-100 = AT_FDCWD) */
    __u32 flags; /* open: O_* flags */
    __u32 family; /* socket */
    __u32 type;
    __u32 protocol;
    __u32 _pad;
    char comm[16];
    char path[ARMLET_PATH_MAX];
};

/* The fanotify enforcer's cgroup socket program (sock.bpf.c). A socket class is the socket's
 * up-to-three protocol names (ids[0..2], each < 256) packed into one u32. "armlet_sock_policy"
 * maps (class, source id, generation) -> ARMLET_SOCK_* bits; source 0 is "any executable",
 * source ids > 0 come from "armlet_sock_sources" (struct armlet_source_key, as for BPF-LSM).
 * User space writes the next generation's entries, flips the generation in the settings, then
 * deletes the old generation's: one update is never half-applied. */
#define ARMLET_SOCK_CLASSES 4096
#define ARMLET_SOCK_SOURCES 256
#define ARMLET_SOCK_CLASS(a, b, c) ((__u32)(a) | ((__u32)(b) << 8) | ((__u32)(c) << 16))
#define ARMLET_SOCK_DENY 1   /* deny (EPERM) when enforcing, and report */
#define ARMLET_SOCK_REPORT 2 /* report to user space (which decides and alerts) */
#define ARMLET_SOCK_CNT_DENIALS 0
#define ARMLET_SOCK_CNT_DROPS 1

struct armlet_sock_settings {
    __u32 enforce;
    __u32 agent_tgid;
    __u32 generation;
    __u32 _pad;
};

struct armlet_sock_key {
    __u32 class;
    __u16 source;
    __u8 generation;
    __u8 _pad;
};

struct armlet_sock_event {
    __u32 tid;
    __u32 tgid;
    __u32 uid;
    __u32 family;
    __u32 type;
    __u32 protocol;
    __u32 denied;
    __u32 source; /* the caller's fromSource id (0: none) */
    char comm[16];
};

#endif /* ARMLET_ABI_H */
