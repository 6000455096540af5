/* SPDX-License-Identifier: GPL-2.0-only */
/* Included by armlet.bpf.c (BPF-LSM) and audit.bpf.c (tracepoint audit): both objects carry
 * the process monitor. Needs common.bpf.h. */
#ifndef ARMLET_PROCMON_BPF_H
#define ARMLET_PROCMON_BPF_H

/* ---------------------------------------------------------------- process monitor
 * exec/fork/exit of whole processes (not threads), for alert context (parent names, processes
 * that exited before their alert was read). Observation only: these programs never decide. A
 * full ring buffer drops the record and counts it. */

static __always_inline struct armlet_proc_event *proc_event(__u32 kind, struct task_struct *p)
{
    struct armlet_proc_event *e = bpf_ringbuf_reserve(&armlet_proc_events, sizeof(*e), 0);
    if (!e) {
        count(ARMLET_CNT_PROC_DROPS);
        return 0;
    }
    fill_header(&e->h, kind, ARMLET_NO_WORKLOAD, BPF_CORE_READ(p, tgid),
                BPF_CORE_READ(p, real_parent, tgid), 0, ARMLET_NO_RULE);
    BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
    e->filename[0] = 0;
    return e;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(armlet_proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct armlet_proc_event *e = proc_event(ARMLET_EV_EXEC, p);
    if (!e)
        return 0;
    const char *name = BPF_CORE_READ(bprm, filename);
    if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), name) < 0)
        e->filename[0] = 0;
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(armlet_proc_fork, struct task_struct *parent, struct task_struct *child)
{
    if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
        return 0; /* a new thread, not a new process */
    struct armlet_proc_event *e = proc_event(ARMLET_EV_FORK, child);
    if (!e)
        return 0;
    e->h.ppid = BPF_CORE_READ(parent, tgid);
    bpf_ringbuf_submit(e, 0);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(armlet_proc_exit, struct task_struct *p)
{
    if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
        return 0;
    struct armlet_proc_event *e = proc_event(ARMLET_EV_EXIT, p);
    if (e)
        bpf_ringbuf_submit(e, 0);
    return 0;
}

#endif
