/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * armlet's cgroup socket program, for the fanotify enforcer (kernels without BPF-LSM): a
 * cgroup/sock_create hook attached to the workloads' cgroup decides every socket() call of
 * the tasks below it in the kernel, from a table user space fills per *socket class* (the
 * up-to-three KubeArmor protocol names of the socket, packed into one key): deny (EPERM),
 * report, or nothing. Rules with fromSource cannot be decided here (a cgroup hook has no
 * reliable view of the caller's executable), so their classes are only reported and user
 * space audits them (support table: audit only).
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "../../include/armlet_abi.h"
#include "net.bpf.h"

/* The uapi context of cgroup socket programs (fixed layout; the verifier rewrites accesses). */
struct bpf_sock {
    __u32 bound_dev_if;
    __u32 family;
    __u32 type;
    __u32 protocol;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, ARMLET_SOCK_CLASSES);
    __type(key, struct armlet_sock_key);
    __type(value, __u32);
} armlet_sock_policy SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, ARMLET_SOCK_SOURCES);
    __type(key, struct armlet_source_key);
    __type(value, __u32);
} armlet_sock_sources SEC(".maps");

/* The source id of the calling task's executable for this generation (0: not a source). */
static __always_inline __u16 caller_source(__u8 gen)
{
    struct task_struct *task = bpf_get_current_task_btf();
    struct mm_struct *mm = task->mm;
    if (!mm)
        return 0;
    struct file *exe = mm->exe_file;
    if (!exe)
        return 0;
    struct armlet_source_key k = {};
    k.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
    k.ino = BPF_CORE_READ(exe, f_inode, i_ino);
    k.generation = gen;
    __u32 *id = bpf_map_lookup_elem(&armlet_sock_sources, &k);
    return id ? (__u16)*id : 0;
}

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct armlet_sock_settings);
} armlet_sock_settings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} armlet_sock_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} armlet_sock_counters SEC(".maps");

static __always_inline void sock_count(__u32 slot)
{
    __u64 *c = bpf_map_lookup_elem(&armlet_sock_counters, &slot);
    if (c)
        __sync_fetch_and_add(c, 1);
}

SEC("cgroup/sock_create")
int armlet_sock_create(struct bpf_sock *sk)
{
    int family = sk->family, type = sk->type, protocol = sk->protocol;
    __u16 ids[3];
    socket_ids(family, type, protocol, ids);
    if (!ids[0])
        return 1;
    __u32 zero = 0;
    struct armlet_sock_settings *st = bpf_map_lookup_elem(&armlet_sock_settings, &zero);
    if (!st)
        return 1;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;
    if (tgid == st->agent_tgid)
        return 1;
    struct armlet_sock_key key = {};
    key.class = ARMLET_SOCK_CLASS(ids[0], ids[1], ids[2]);
    key.generation = (__u8)st->generation;
    __u32 *v = 0;
    __u16 source = caller_source(key.generation);
    key.source = source;
    if (key.source)
        v = bpf_map_lookup_elem(&armlet_sock_policy, &key);
    if (!v) {
        key.source = 0;
        v = bpf_map_lookup_elem(&armlet_sock_policy, &key);
    }
    if (!v || !*v)
        return 1;
    int deny = (*v & ARMLET_SOCK_DENY) && st->enforce;
    struct armlet_sock_event *e = bpf_ringbuf_reserve(&armlet_sock_events, sizeof(*e), 0);
    if (e) {
        e->tid = (__u32)pid_tgid;
        e->tgid = tgid;
        e->uid = (__u32)bpf_get_current_uid_gid();
        e->family = family;
        e->type = type;
        e->protocol = protocol;
        e->denied = deny;
        e->source = source;
        bpf_get_current_comm(e->comm, sizeof(e->comm));
        bpf_ringbuf_submit(e, 0);
    } else {
        sock_count(ARMLET_SOCK_CNT_DROPS);
    }
    if (deny) {
        sock_count(ARMLET_SOCK_CNT_DENIALS);
        return 0;
    }
    return 1;
}

char LICENSE[] SEC("license") = "GPL";
