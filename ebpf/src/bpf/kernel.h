/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The few kernel types armlet's programs read, declared with preserve_access_index so that
 * clang emits CO-RE relocations: libbpf-style loaders (aya) fix every field offset against the
 * running kernel's BTF at load time. Only the fields we use are declared; their order and the
 * missing fields do not matter. Why not a generated vmlinux.h: it is arch-specific and large,
 * and this keeps the build independent of the build host's kernel.
 */
#ifndef ARMLET_KERNEL_H
#define ARMLET_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u16 umode_t;
typedef __u32 fmode_t;
typedef int pid_t;
typedef _Bool bool;
#define __ARMLET_TYPES_DEFINED 1

enum bpf_map_type {
    BPF_MAP_TYPE_HASH = 1,
    BPF_MAP_TYPE_ARRAY = 2,
    BPF_MAP_TYPE_PERCPU_ARRAY = 6,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_RINGBUF = 27,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
    __u32 val;
} kuid_t;

struct vfsmount;
struct dentry;

struct path {
    struct vfsmount *mnt;
    struct dentry *dentry;
};

struct super_block {
    __u32 s_dev;
};

struct inode {
    umode_t i_mode;
    kuid_t i_uid;
    unsigned long i_ino;
    struct super_block *i_sb;
};

struct file {
    struct path f_path;
    struct inode *f_inode;
    unsigned int f_flags;
    fmode_t f_mode;
};

struct mm_struct {
    struct file *exe_file;
};

struct task_struct {
    struct mm_struct *mm;
    pid_t pid;
    pid_t tgid;
    struct task_struct *real_parent;
    char comm[16];
};

struct linux_binprm {
    struct file *file;
    const char *filename;
};

struct sock_common {
    unsigned short skc_family;
};

struct sock {
    struct sock_common __sk_common;
    __u16 sk_protocol;
    __u16 sk_type;
};

struct socket {
    short type;
    struct sock *sk;
};

struct sockaddr;
struct cred;
struct user_namespace;
struct kernel_siginfo;

#pragma clang attribute pop

#define BPF_ANY 0
#define FMODE_WRITE 0x2
#define O_TRUNC 01000
#define EPERM 1
#define ENAMETOOLONG 36

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define SOCK_RDM 4
#define SOCK_SEQPACKET 5
#define SOCK_DCCP 6
#define SOCK_PACKET 10
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_DCCP 33
#define IPPROTO_ICMPV6 58
#define IPPROTO_SCTP 132

#endif
