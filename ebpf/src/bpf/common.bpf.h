/* SPDX-License-Identifier: GPL-2.0-only */
/* What both objects (armlet.bpf.c: BPF-LSM, audit.bpf.c: tracepoint audit) share: the
 * counters, the process-monitor ring buffer, and filling the common event header. */
#ifndef ARMLET_COMMON_BPF_H
#define ARMLET_COMMON_BPF_H

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 128 * 1024);
} armlet_proc_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, ARMLET_CNT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} armlet_counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
    __u64 *c = bpf_map_lookup_elem(&armlet_counters, &slot);
    if (c)
        *c += 1;
}

/* Fill the header every event starts with; uid, cgroup and time are the current task's. */
static __always_inline void fill_header(struct armlet_event_header *h, __u32 kind, __u32 workload,
                                        __u32 pid, __u32 ppid, __s32 ret, __u32 rule_id)
{
    h->kind = kind;
    h->workload = workload;
    h->pid = pid;
    h->ppid = ppid;
    h->uid = (__u32)bpf_get_current_uid_gid();
    h->ret = ret;
    h->rule_id = rule_id;
    h->_pad = 0;
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->timestamp_ns = bpf_ktime_get_boot_ns();
}

#endif
