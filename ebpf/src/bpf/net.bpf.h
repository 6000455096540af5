/* SPDX-License-Identifier: GPL-2.0-only */
/* The socket → KubeArmor protocol-name mapping, shared by the BPF-LSM object (armlet.bpf.c)
 * and the cgroup socket object of the fanotify enforcer (sock.bpf.c), so both count a
 * socket() call as the same names (mirrored in Rust by enforce::audit_tp::socket_protocols). */
#ifndef ARMLET_NET_BPF_H
#define ARMLET_NET_BPF_H

/* Map a socket() call to the KubeArmor protocol names it counts as. */
static __always_inline void socket_ids(int family, int type, int protocol, __u16 ids[3])
{
    ids[0] = ids[1] = ids[2] = 0;
    type &= 0xf;
    if (family == AF_PACKET) {
        ids[0] = ARMLET_PROTO_PACKET;
        if (type == SOCK_RAW)
            ids[1] = ARMLET_PROTO_RAW;
        return;
    }
    if (family != AF_INET && family != AF_INET6)
        return;
    if (protocol == IPPROTO_ICMP)
        ids[2] = ARMLET_PROTO_ICMP;
    else if (protocol == IPPROTO_ICMPV6)
        ids[2] = ARMLET_PROTO_ICMPV6;
    switch (type) {
    case SOCK_STREAM:
        ids[0] = ARMLET_PROTO_STREAM;
        if (protocol == 0 || protocol == IPPROTO_TCP)
            ids[1] = ARMLET_PROTO_TCP;
        else if (protocol == IPPROTO_SCTP)
            ids[1] = ARMLET_PROTO_SCTP;
        break;
    case SOCK_DGRAM:
        ids[0] = ARMLET_PROTO_DGRAM;
        if (protocol == 0 || protocol == IPPROTO_UDP)
            ids[1] = ARMLET_PROTO_UDP;
        break;
    case SOCK_RAW:
        ids[0] = ARMLET_PROTO_RAW;
        break;
    case SOCK_SEQPACKET:
        ids[0] = ARMLET_PROTO_SEQPACKET;
        if (protocol == IPPROTO_SCTP)
            ids[1] = ARMLET_PROTO_SCTP;
        break;
    case SOCK_RDM:
        ids[0] = ARMLET_PROTO_RDM;
        break;
    case SOCK_DCCP:
        ids[0] = ARMLET_PROTO_DCCP;
        break;
    }
}

#endif
