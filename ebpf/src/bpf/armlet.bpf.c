// SPDX-License-Identifier: GPL-2.0-only
/*
 * armlet's BPF-LSM enforcer: the kernel half of the decision in agent/policy/src/eval.rs.
 *
 * Every hook:
 *   1. passes on a previous LSM's (or BPF program's) denial unchanged;
 *   2. finds the acting task's workload (cgroup id -> index; the host otherwise);
 *   3. looks up the rules for the resource (exact path, each ancestor directory, the parent
 *      directory, the executable name; or a protocol / capability id), for "any process" and
 *      for the acting executable (fromSource);
 *   4. decides with KubeArmor's precedence: Block > Audit > Allow > default posture (only in
 *      allow-list mode) > pass;
 *   5. reports alerting decisions through the ring buffer. Reporting never changes the
 *      decision: a full ring buffer drops the event and counts it, the denial still happens.
 *
 * Rules are keyed by a generation bit: user space writes the next generation, flips
 * settings.generation in one map update, then deletes the old generation. A hook reads the
 * generation once, so it sees either the old or the new policy, never a mix or nothing.
 *
 * Scratch buffers are per CPU (paths do not fit the 512-byte stack). BPF programs run with
 * migration disabled; on kernels with full preemption another task could enter a hook on the
 * same CPU while one is using the buffer, so a busy flag detects that and the hook then passes
 * (fail-open, counted in ARMLET_CNT_SCRATCH_BUSY). Debian's kernels use voluntary preemption,
 * where this does not happen.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "../../include/armlet_abi.h"
#include "common.bpf.h"
#include "net.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Map sizes are placeholders: the agent sets max_entries at load time from the bundle. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct armlet_settings);
} armlet_settings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u64);
    __type(value, struct armlet_workload);
} armlet_workloads SEC(".maps");

/* A raw or packet socket being created, by thread (pid_tgid): the capability check for
 * CAP_NET_RAW that follows inside the same socket() call names the socket in its event, so a
 * capability rule that denies it is also reported as the Network operation it stopped (as
 * KubeArmor reports it). Bounded (LRU); an entry older than PENDING_SOCK_NS is ignored. */
struct pending_sock {
    __u64 ns;
    __u32 sock;
    __u32 _pad;
};
#define PENDING_SOCK_NS 50000000ULL
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1024);
    __type(key, __u64);
    __type(value, struct pending_sock);
} armlet_pending_sock SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, struct armlet_source_key);
    __type(value, __u32);
} armlet_sources SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct armlet_path_key);
    __type(value, struct armlet_rule_set);
} armlet_path_rules SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct armlet_id_key);
    __type(value, struct armlet_rule_set);
} armlet_id_rules SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct armlet_posture_key);
    __type(value, struct armlet_posture);
} armlet_allow_lists SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} armlet_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 2048);
    __type(key, __u64);
    __type(value, struct armlet_throttle);
} armlet_throttle SEC(".maps");

struct scratch {
    __u64 busy;
    struct armlet_path_key key;  /* the resource path (exact lookups) */
    struct armlet_path_key dkey; /* ancestor directories and the executable name */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} armlet_scratch SEC(".maps");

/* What the rules said, accumulated over every matching rule set. */
struct verdict {
    __u32 block_rule;
    __u32 audit_rule;
    __u32 allow_rule;
    __u8 block_action; /* rule or posture action that produced block_rule/audit_rule */
};

struct hook {
    struct armlet_settings *settings;
    struct scratch *s;
    __u32 workload;
    __u32 source; /* source id of the acting executable; 0 if none */
    __u8 gen;
    __u8 category;
    __u8 write;
    __u8 not_owner;
    __u8 can_d_path; /* the hook is sleepable, so bpf_d_path may name the executable */
    __u8 op;         /* network operation */
    __u32 sock;      /* network: the socket's family, type and protocol (armlet_event.sock) */
};

static __always_inline struct armlet_settings *settings(void)
{
    __u32 zero = 0;
    struct armlet_settings *st = bpf_map_lookup_elem(&armlet_settings, &zero);
    if (!st || !st->active)
        return 0;
    if (st->probe)
        count(ARMLET_CNT_PROBE_HITS);
    return st;
}

static __always_inline struct scratch *scratch_get(void)
{
    __u32 zero = 0;
    struct scratch *s = bpf_map_lookup_elem(&armlet_scratch, &zero);
    if (!s)
        return 0;
    if (s->busy) {
        count(ARMLET_CNT_SCRATCH_BUSY);
        return 0;
    }
    s->busy = 1;
    return s;
}

static __always_inline void scratch_put(struct scratch *s)
{
    s->busy = 0;
}

static __always_inline __u32 workload_of(struct armlet_settings *st, __u8 *confined)
{
    __u64 cg = bpf_get_current_cgroup_id();
    struct armlet_workload *w = bpf_map_lookup_elem(&armlet_workloads, &cg);
    if (w) {
        *confined = w->confined;
        return w->index;
    }
    *confined = st->host_confined;
    return st->host_workload;
}

/* The acting task's executable file, or 0. */
static __always_inline struct file *current_exe(void)
{
    struct task_struct *task = bpf_get_current_task_btf();
    struct mm_struct *mm = task->mm;
    if (!mm)
        return 0;
    return mm->exe_file;
}

/* The source id of the acting task's executable (by device and inode); 0 when it is not a
 * fromSource executable of the policy. */
static __always_inline __u32 resolve_source(struct hook *c)
{
    struct file *exe = current_exe();
    if (!exe)
        return 0;
    struct armlet_source_key k = {};
    k.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
    k.ino = BPF_CORE_READ(exe, f_inode, i_ino);
    k.generation = c->gen;
    __u32 *id = bpf_map_lookup_elem(&armlet_sources, &k);
    return id ? *id : 0;
}

static __always_inline void eval_set(struct hook *c, struct armlet_rule_set *set, struct verdict *v)
{
    if (!set)
        return;
#pragma unroll
    for (int i = 0; i < ARMLET_RULES_PER_KEY; i++) {
        struct armlet_rule_slot *r = &set->slots[i];
        if (r->rule_id == ARMLET_NO_RULE || r->action == 0)
            continue;
        int ro = r->flags & ARMLET_FLAG_READ_ONLY;
        int oo = r->flags & ARMLET_FLAG_OWNER_ONLY;
        if (r->action == ARMLET_ACT_ALLOW) {
            if ((!ro || !c->write) && (!oo || !c->not_owner)) {
                if (v->allow_rule == ARMLET_NO_RULE)
                    v->allow_rule = r->rule_id;
            }
        } else if ((!ro && !oo) || (ro && c->write) || (oo && c->not_owner)) {
            /* conditions name what stays permitted; anything outside fires (eval.rs) */
            if (r->action == ARMLET_ACT_BLOCK) {
                if (v->block_rule == ARMLET_NO_RULE)
                    v->block_rule = r->rule_id;
            } else if (v->audit_rule == ARMLET_NO_RULE) {
                v->audit_rule = r->rule_id;
            }
        }
    }
}

/* Look up one path key for "any process" and for the acting executable. */
static __always_inline void lookup_path(struct hook *c, struct armlet_path_key *k, __u8 kind,
                                        struct verdict *v)
{
    k->kind = kind;
    k->source = 0;
    eval_set(c, bpf_map_lookup_elem(&armlet_path_rules, k), v);

    if (c->source) {
        k->source = c->source;
        eval_set(c, bpf_map_lookup_elem(&armlet_path_rules, k), v);
    }
}

static __always_inline void lookup_id(struct hook *c, __u16 id, struct verdict *v)
{
    struct armlet_id_key k = {};
    k.workload = c->workload;
    k.generation = c->gen;
    k.category = c->category;
    k.id = id;
    eval_set(c, bpf_map_lookup_elem(&armlet_id_rules, &k), v);
    if (c->source) {
        k.source = c->source;
        eval_set(c, bpf_map_lookup_elem(&armlet_id_rules, &k), v);
    }
}

/* The default posture, when the category is in allow-list mode for everyone or for the
 * acting executable; 0 when it is not. */
static __always_inline __u8 posture(struct hook *c)
{
    struct armlet_posture_key k = {};
    k.workload = c->workload;
    k.generation = c->gen;
    k.category = c->category;
    struct armlet_posture *p = bpf_map_lookup_elem(&armlet_allow_lists, &k);
    if (p)
        return p->action;
    if (c->source) {
        k.source = c->source;
        p = bpf_map_lookup_elem(&armlet_allow_lists, &k);
        if (p)
            return p->action;
    }
    return 0;
}

/* State shared with the bpf_loop callbacks below (a pointer to the caller's stack). Using
 * bpf_loop keeps verification cost independent of ARMLET_PATH_MAX: each callback is verified
 * once instead of once per unrolled iteration. */
struct walk {
    struct hook *c;
    struct verdict *v;
    int last;  /* index of the last '/' */
    int done;
};

struct tail {
    struct scratch *s;
    __u32 from;
};

static long clear_tail(__u64 i, void *data)
{
    struct tail *t = data;
    __u32 at = t->from + (__u32)i;
    if (at >= ARMLET_PATH_MAX)
        return 1;
    t->s->key.path[at & (ARMLET_PATH_MAX - 1)] = 0;
    return 0;
}

static long find_last_slash(__u64 i, void *data)
{
    struct walk *w = data;
    char ch = w->c->s->key.path[i & (ARMLET_PATH_MAX - 1)];
    if (ch == 0)
        return 1;
    if (ch == '/')
        w->last = i;
    return 0;
}

/* Copy the path one byte at a time into dkey; at every '/', dkey holds exactly that ancestor
 * directory (zero-padded) and is looked up as a recursive directory rule, and at the last '/'
 * also as a direct-child rule. */
static long walk_dirs(__u64 i, void *data)
{
    struct walk *w = data;
    struct scratch *s = w->c->s;
    __u32 at = i & (ARMLET_PATH_MAX - 1);
    char ch = s->key.path[at];
    if (ch == 0)
        return 1;
    s->dkey.path[at] = ch;
    if (ch == '/') {
        lookup_path(w->c, &s->dkey, ARMLET_KIND_DIR_RECURSIVE, w->v);
        if ((int)i == w->last)
            lookup_path(w->c, &s->dkey, ARMLET_KIND_DIR_DIRECT, w->v);
    }
    return 0;
}

/* Copy the last path component into dkey (the executable name, for execname rules). */
static long copy_name(__u64 i, void *data)
{
    struct walk *w = data;
    struct scratch *s = w->c->s;
    __u32 from = (w->last + 1 + i) & (ARMLET_PATH_MAX - 1);
    if (w->last + 1 + i >= ARMLET_PATH_MAX - 1)
        return 1;
    char ch = s->key.path[from];
    if (ch == 0)
        return 1;
    s->dkey.path[i & (ARMLET_PATH_MAX - 1)] = ch;
    return 0;
}

/* Match a resolved path held in s->key.path: exact, every ancestor directory (recursive
 * rules), the parent directory (direct rules), and for processes the executable name. */
static __always_inline void match_path(struct hook *c, struct verdict *v)
{
    struct scratch *s = c->s;
    struct armlet_path_key *k = &s->key;
    struct armlet_path_key *d = &s->dkey;

    k->workload = c->workload;
    k->generation = c->gen;
    k->category = c->category;
    lookup_path(c, k, ARMLET_KIND_EXACT, v);

    struct walk w = {c, v, 0, 0};
    bpf_loop(ARMLET_PATH_MAX, find_last_slash, &w, 0);

    __builtin_memset(d, 0, sizeof(*d));
    d->workload = c->workload;
    d->generation = c->gen;
    d->category = c->category;
    bpf_loop(ARMLET_PATH_MAX - 1, walk_dirs, &w, 0);

    if (c->category == ARMLET_CAT_PROCESS) {
        __builtin_memset(d->path, 0, ARMLET_PATH_MAX);
        bpf_loop(ARMLET_PATH_MAX - 1, copy_name, &w, 0);
        lookup_path(c, d, ARMLET_KIND_NAME, v);
    }
}

/* May this workload raise another alert of this priority in the current one-second window?
 * Approximate under concurrency (no lock), bounded by the LRU map; never affects decisions. */
static __always_inline int alert_budget(struct hook *c, __u32 prio)
{
    __u32 limit = c->settings->alerts_per_sec;
    if (!limit)
        return 1;
    __u64 key = ((__u64)c->workload << 8) | prio;
    __u64 now = bpf_ktime_get_boot_ns();
    struct armlet_throttle *t = bpf_map_lookup_elem(&armlet_throttle, &key);
    if (!t || now - t->window_start_ns >= 1000000000ULL) {
        struct armlet_throttle fresh = {now, 1, 0};
        bpf_map_update_elem(&armlet_throttle, &key, &fresh, BPF_ANY);
        return 1;
    }
    if (t->count >= limit)
        return 0;
    __sync_fetch_and_add(&t->count, 1);
    return 1;
}

/* Turn the accumulated verdict into the hook's return value and, when it alerts, an event. */
static __always_inline int conclude(struct hook *c, struct verdict *v, int have_path, __u32 id)
{
    __u32 rule = ARMLET_NO_RULE;
    __u8 action = 0;
    if (v->block_rule != ARMLET_NO_RULE) {
        rule = v->block_rule;
        action = ARMLET_ACT_BLOCK;
    } else if (v->audit_rule != ARMLET_NO_RULE) {
        rule = v->audit_rule;
        action = ARMLET_ACT_AUDIT;
    } else if (v->allow_rule != ARMLET_NO_RULE) {
        return 0;
    } else {
        __u8 p = posture(c);
        if (p == 0 || p == ARMLET_ACT_ALLOW)
            return 0;
        rule = ARMLET_POSTURE_RULE;
        action = p;
    }
    int ret = 0;
    if (action == ARMLET_ACT_BLOCK && c->settings->enforce) {
        ret = -EPERM;
        count(ARMLET_CNT_DENIALS);
    }

    if (!alert_budget(c, rule == ARMLET_POSTURE_RULE ? ARMLET_PRIO_POSTURE : ARMLET_PRIO_RULE)) {
        count(ARMLET_CNT_THROTTLED);
        return ret;
    }
    struct armlet_event *e = bpf_ringbuf_reserve(&armlet_events, sizeof(*e), 0);
    if (!e) {
        count(ARMLET_CNT_RINGBUF_DROPS);
        return ret;
    }
    struct task_struct *task = bpf_get_current_task_btf();
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    fill_header(&e->h, ARMLET_EV_DECISION, c->workload, pid_tgid >> 32,
                BPF_CORE_READ(task, real_parent, tgid), ret, rule);
    e->tid = (__u32)pid_tgid;
    e->category = c->category;
    e->action = action;
    e->write = c->write;
    e->op = c->op;
    e->id = id;
    e->sock = c->sock;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    /* The acting executable's path where the hook allows bpf_d_path; otherwise user space
     * names it from /proc/<pid>/exe. */
    e->source[0] = 0;
    if (c->can_d_path) {
        struct file *exe = current_exe();
        if (!exe || bpf_d_path(&exe->f_path, e->source, ARMLET_PATH_MAX) < 0)
            e->source[0] = 0;
    }
    if (have_path)
        __builtin_memcpy(e->target, c->s->key.path, ARMLET_PATH_MAX);
    else
        __builtin_memset(e->target, 0, ARMLET_PATH_MAX);
    bpf_ringbuf_submit(e, 0);
    return ret;
}

/* Common entry: settings, scratch, workload, source. Returns 0 when the hook should pass. */
static __always_inline int begin(struct hook *c, __u8 category)
{
    c->settings = settings();
    if (!c->settings)
        return 0;
    c->s = scratch_get();
    if (!c->s)
        return 0;
    __u8 confined = 0;
    c->gen = c->settings->generation;
    c->category = category;
    c->workload = workload_of(c->settings, &confined);
    c->source = 0;
    c->can_d_path = 0;
    c->write = 0;
    c->not_owner = 0;
    if (c->settings->has_sources)
        c->source = resolve_source(c);
    return 1;
}

/* A resolved path that does not fit: Block rules cannot name it (policy paths are at most 200
 * bytes) so it passes, unless the category is in allow-list mode, where the posture decides
 * (fail closed). Counted either way. */
static __always_inline int long_path(struct hook *c)
{
    count(ARMLET_CNT_LONG_PATHS);
    __builtin_memset(c->s->key.path, 0, ARMLET_PATH_MAX);
    struct verdict v = {ARMLET_NO_RULE, ARMLET_NO_RULE, ARMLET_NO_RULE, 0};
    return conclude(c, &v, 0, 0);
}

static __always_inline int check_path(struct hook *c, const struct path *path)
{
    struct armlet_path_key *k = &c->s->key;
    __builtin_memset(k, 0, sizeof(*k));
    long n = bpf_d_path((struct path *)path, k->path, ARMLET_PATH_MAX);
    if (n < 0)
        return long_path(c);
    /* bpf_d_path builds the name in the last n bytes of the buffer (zeroed above) and moves
     * it to the front, so a stale copy remains in [PATH_MAX - n, PATH_MAX). Keys are compared
     * as raw bytes: clear that copy, minus whatever overlaps the real name (n counts the NUL).
     * That is at most PATH_MAX / 2 iterations, usually about n. */
    __u32 from = (__u32)n > ARMLET_PATH_MAX - (__u32)n ? (__u32)n : ARMLET_PATH_MAX - (__u32)n;
    struct tail t = {c->s, from};
    bpf_loop(ARMLET_PATH_MAX - from, clear_tail, &t, 0);
    struct verdict v = {ARMLET_NO_RULE, ARMLET_NO_RULE, ARMLET_NO_RULE, 0};
    match_path(c, &v);
    return conclude(c, &v, 1, 0);
}

SEC("lsm/file_open")
int BPF_PROG(armlet_file_open, struct file *file, int ret)
{
    if (ret)
        return ret;
    struct hook c = {};
    if (!begin(&c, ARMLET_CAT_FILE))
        return 0;
    c.can_d_path = 1;
    c.write = (file->f_mode & FMODE_WRITE) || (file->f_flags & O_TRUNC) ? 1 : 0;
    __u32 owner = file->f_inode->i_uid.val;
    c.not_owner = owner != (__u32)bpf_get_current_uid_gid();
    int r = check_path(&c, &file->f_path);
    scratch_put(c.s);
    return r;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(armlet_bprm_check, struct linux_binprm *bprm, int ret)
{
    if (ret)
        return ret;
    struct hook c = {};
    if (!begin(&c, ARMLET_CAT_PROCESS))
        return 0;
    c.can_d_path = 1;
    struct file *f = bprm->file;
    __u32 owner = f->f_inode->i_uid.val;
    c.not_owner = owner != (__u32)bpf_get_current_uid_gid();
    int r = check_path(&c, &f->f_path);
    scratch_put(c.s);
    return r;
}

/* Network rules for one socket operation: the socket's KubeArmor protocol names, for "any
 * process" and the acting executable. */
static __always_inline int net_check(int family, int type, int protocol, __u8 op)
{
    __u16 ids[3];
    socket_ids(family, type, protocol, ids);
    if (!ids[0])
        return 0; /* unix and other local families are not governed by network rules */
    struct hook c = {};
    if (!begin(&c, ARMLET_CAT_NETWORK))
        return 0;
    c.op = op;
    c.sock = ((__u32)family & 0xffff) << 16 | ((__u32)type & 0xff) << 8 | ((__u32)protocol & 0xff);
    struct verdict v = {ARMLET_NO_RULE, ARMLET_NO_RULE, ARMLET_NO_RULE, 0};
    lookup_id(&c, ARMLET_PROTO_ALL, &v);
#pragma unroll
    for (int i = 0; i < 3; i++) {
        if (ids[i])
            lookup_id(&c, ids[i], &v);
    }
    /* The reported protocol: the most specific name the socket has. */
    __u16 shown = ids[2] ? ids[2] : (ids[1] ? ids[1] : ids[0]);
    int r = conclude(&c, &v, 0, shown);
    scratch_put(c.s);
    return r;
}

SEC("lsm/socket_create")
int BPF_PROG(armlet_socket_create, int family, int type, int protocol, int kern, int ret)
{
    if (ret)
        return ret;
    if (kern)
        return 0;
    if ((type & 0xf) == 3 /* SOCK_RAW */ || family == 17 /* AF_PACKET */) {
        __u64 id = bpf_get_current_pid_tgid();
        struct pending_sock p = {
            .ns = bpf_ktime_get_ns(),
            .sock = ((__u32)family & 0xffff) << 16 | ((__u32)type & 0xff) << 8 |
                    ((__u32)protocol & 0xff),
        };
        bpf_map_update_elem(&armlet_pending_sock, &id, &p, BPF_ANY);
    }
    return net_check(family, type, protocol, ARMLET_NET_CREATE);
}

/* The later operations matter for sockets created before the policy, or created by another
 * executable and passed on (fromSource is the executable acting now). */
static __always_inline int sock_check(struct socket *sock, __u8 op)
{
    struct sock *sk = sock->sk;
    if (!sk)
        return 0;
    int family = BPF_CORE_READ(sk, __sk_common.skc_family);
    int type = sock->type;
    int protocol = BPF_CORE_READ(sk, sk_protocol);
    return net_check(family, type, protocol, op);
}

SEC("lsm/socket_connect")
int BPF_PROG(armlet_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen,
             int ret)
{
    if (ret)
        return ret;
    return sock_check(sock, ARMLET_NET_CONNECT);
}

SEC("lsm/socket_bind")
int BPF_PROG(armlet_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen,
             int ret)
{
    if (ret)
        return ret;
    return sock_check(sock, ARMLET_NET_BIND);
}

SEC("lsm/socket_listen")
int BPF_PROG(armlet_socket_listen, struct socket *sock, int backlog, int ret)
{
    if (ret)
        return ret;
    return sock_check(sock, ARMLET_NET_LISTEN);
}

SEC("lsm/socket_accept")
int BPF_PROG(armlet_socket_accept, struct socket *sock, struct socket *newsock, int ret)
{
    if (ret)
        return ret;
    return sock_check(sock, ARMLET_NET_ACCEPT);
}

SEC("lsm/capable")
int BPF_PROG(armlet_capable, const struct cred *cred, struct user_namespace *ns, int cap,
             unsigned int opts, int ret)
{
    if (ret)
        return ret;
    struct hook c = {};
    if (cap == 13 /* CAP_NET_RAW */) {
        __u64 id = bpf_get_current_pid_tgid();
        struct pending_sock *p = bpf_map_lookup_elem(&armlet_pending_sock, &id);
        if (p) {
            if (bpf_ktime_get_ns() - p->ns < PENDING_SOCK_NS)
                c.sock = p->sock;
            bpf_map_delete_elem(&armlet_pending_sock, &id);
        }
    }
    if (!begin(&c, ARMLET_CAT_CAPABILITY))
        return 0;
    struct verdict v = {ARMLET_NO_RULE, ARMLET_NO_RULE, ARMLET_NO_RULE, 0};
    lookup_id(&c, (__u16)cap, &v);
    int r = conclude(&c, &v, 0, (__u32)cap);
    scratch_put(c.s);
    return r;
}

/* Self-protection. Fail-open by construction when no policy is loaded (settings inactive): an
 * agent that is not enforcing has nothing to protect. Otherwise a task in a confined workload
 * may neither signal (except signal 0, an existence check) nor trace the agent; the agent
 * itself and its supervisor (the parent that started it: init, systemd, a test runner) may. */
static __always_inline int protect(int target_tgid, int sig_or_mode)
{
    struct armlet_settings *st = settings();
    if (!st || !st->agent_tgid || (__u32)target_tgid != st->agent_tgid)
        return 0;
    __u32 me = bpf_get_current_pid_tgid() >> 32;
    if (me == st->agent_tgid || me == st->supervisor_tgid)
        return 0;
    __u8 confined = 0;
    workload_of(st, &confined);
    if (!confined || sig_or_mode == 0)
        return 0;
    count(ARMLET_CNT_DENIALS);
    return -EPERM;
}

SEC("lsm/task_kill")
int BPF_PROG(armlet_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
             const struct cred *cred, int ret)
{
    if (ret)
        return ret;
    return protect(p->tgid, sig);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(armlet_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
    if (ret)
        return ret;
    return protect(child->tgid, 1);
}

#include "procmon.bpf.h"
