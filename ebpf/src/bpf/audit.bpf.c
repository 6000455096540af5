// SPDX-License-Identifier: GPL-2.0-only
/*
 * armlet's tracepoint audit enforcer: for kernels without BPF-LSM (or where the LSM programs
 * are refused). Observation only — nothing here can deny. A BTF raw tracepoint on every
 * syscall entry reports open/openat/openat2 and socket calls with their arguments as the
 * caller passed them; the process monitor reports exec/fork/exit. User space resolves paths
 * and decides with the same function the enforcers are tested against (eval::decide), and
 * reports `Audit (<action>)`.
 *
 * Built once per target architecture (syscall numbers and pt_regs differ): ARMLET_ARCH_X86 or
 * ARMLET_ARCH_ARM64.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "../../include/armlet_abi.h"
#include "common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
#if defined(ARMLET_ARCH_X86)
struct pt_regs {
    unsigned long di;
    unsigned long si;
    unsigned long dx;
    unsigned long r10;
};
#define ARG0(r) BPF_CORE_READ(r, di)
#define ARG1(r) BPF_CORE_READ(r, si)
#define ARG2(r) BPF_CORE_READ(r, dx)
#define NR_OPEN 2
#define NR_OPENAT 257
#define NR_SOCKET 41
#elif defined(ARMLET_ARCH_ARM64)
struct pt_regs {
    __u64 regs[31];
};
#define ARG0(r) BPF_CORE_READ(r, regs[0])
#define ARG1(r) BPF_CORE_READ(r, regs[1])
#define ARG2(r) BPF_CORE_READ(r, regs[2])
#define NR_OPEN -1 /* arm64 has no open(2) */
#define NR_OPENAT 56
#define NR_SOCKET 198
#else
#error "build with -DARMLET_ARCH_X86 or -DARMLET_ARCH_ARM64"
#endif
#define NR_OPENAT2 437
#pragma clang attribute pop

#define AT_FDCWD -100

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct armlet_audit_settings);
} armlet_audit_settings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1024 * 1024);
} armlet_audit_events SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(armlet_sys_enter, struct pt_regs *regs, long id)
{
    if (id != NR_OPENAT && id != NR_OPENAT2 && id != NR_OPEN && id != NR_SOCKET)
        return 0;
    __u32 zero = 0;
    struct armlet_audit_settings *st = bpf_map_lookup_elem(&armlet_audit_settings, &zero);
    if (!st || !st->active)
        return 0;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((__u32)(pid_tgid >> 32) == st->agent_tgid)
        return 0;
    struct armlet_syscall_event *e = bpf_ringbuf_reserve(&armlet_audit_events, sizeof(*e), 0);
    if (!e) {
        count(ARMLET_CNT_RINGBUF_DROPS);
        return 0;
    }
    struct task_struct *task = bpf_get_current_task_btf();
    fill_header(&e->h, ARMLET_EV_OPEN, ARMLET_NO_WORKLOAD, pid_tgid >> 32,
                BPF_CORE_READ(task, real_parent, tgid), 0, ARMLET_NO_RULE);
    e->dfd = 0;
    e->flags = 0;
    e->family = e->type = e->protocol = 0;
    e->_pad = 0;
    e->path[0] = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    const char *name = 0;
    if (id == NR_SOCKET) {
        e->h.kind = ARMLET_EV_SOCKET;
        e->family = ARG0(regs);
        e->type = ARG1(regs);
        e->protocol = ARG2(regs);
    } else {
        e->h.kind = ARMLET_EV_OPEN;
        if (id == NR_OPEN) {
            e->dfd = AT_FDCWD;
            name = (const char *)ARG0(regs);
            e->flags = ARG1(regs);
        } else {
            e->dfd = ARG0(regs);
            name = (const char *)ARG1(regs);
            if (id == NR_OPENAT2) {
                /* struct open_how { u64 flags; ... } in user memory */
                __u64 how_flags = 0;
                bpf_probe_read_user(&how_flags, sizeof(how_flags), (void *)ARG2(regs));
                e->flags = (__u32)how_flags;
            } else {
                e->flags = ARG2(regs);
            }
        }
        /* Not yet faulted-in user memory cannot be read here (no sleeping): counted. */
        if (bpf_probe_read_user_str(e->path, sizeof(e->path), name) < 0) {
            count(ARMLET_CNT_LONG_PATHS);
            e->path[0] = 0;
        }
    }
    bpf_ringbuf_submit(e, 0);
    return 0;
}

#include "procmon.bpf.h"
