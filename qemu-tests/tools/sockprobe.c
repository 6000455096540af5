/* sockprobe: create one socket and report whether the kernel allowed it.
 *
 *   sockprobe FAMILY TYPE [PROTOCOL]
 *     FAMILY    inet | inet6 | unix | packet
 *     TYPE      stream | dgram | raw | seqpacket
 *     PROTOCOL  a number or tcp | udp | icmp | icmpv6 | sctp | raw (IPPROTO_RAW);
 *               default 0, except TYPE raw: IPPROTO_RAW (an inet raw socket needs a protocol)
 *
 * Exit 0 and "sockprobe: socket(...) = fd N" on success; exit 1 and
 * "sockprobe: socket(...): <strerror>" when the kernel refuses (armlet's BPF-LSM denials,
 * in socket_create and in capable(), are EPERM: "Operation not permitted");
 * exit 2 on a usage error. Nothing is sent or bound: only socket(2) is exercised.
 * Built static by qemu-tests/run for the guest's arch (qemu-tests/tools/). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef AF_PACKET
#define AF_PACKET 17
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

static int usage(void)
{
    fprintf(stderr, "usage: sockprobe inet|inet6|unix|packet stream|dgram|raw|seqpacket "
                    "[tcp|udp|icmp|icmpv6|sctp|raw|NUMBER]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4)
        return usage();
    int family, type, proto = 0;
    if (!strcmp(argv[1], "inet")) family = AF_INET;
    else if (!strcmp(argv[1], "inet6")) family = AF_INET6;
    else if (!strcmp(argv[1], "unix")) family = AF_UNIX;
    else if (!strcmp(argv[1], "packet")) family = AF_PACKET;
    else return usage();
    if (!strcmp(argv[2], "stream")) type = SOCK_STREAM;
    else if (!strcmp(argv[2], "dgram")) type = SOCK_DGRAM;
    else if (!strcmp(argv[2], "raw")) type = SOCK_RAW;
    else if (!strcmp(argv[2], "seqpacket")) type = SOCK_SEQPACKET;
    else return usage();
    if (type == SOCK_RAW && (family == AF_INET || family == AF_INET6))
        proto = IPPROTO_RAW;
    if (argc == 4) {
        const char *p = argv[3];
        if (!strcmp(p, "tcp")) proto = IPPROTO_TCP;
        else if (!strcmp(p, "udp")) proto = IPPROTO_UDP;
        else if (!strcmp(p, "icmp")) proto = IPPROTO_ICMP;
        else if (!strcmp(p, "icmpv6")) proto = IPPROTO_ICMPV6;
        else if (!strcmp(p, "sctp")) proto = IPPROTO_SCTP;
        else if (!strcmp(p, "raw")) proto = IPPROTO_RAW;
        else {
            char *end;
            long v = strtol(p, &end, 10);
            if (*p == '\0' || *end != '\0' || v < 0 || v > 65535)
                return usage();
            proto = (int)v;
        }
    }
    int fd = socket(family, type, proto);
    if (fd < 0) {
        int e = errno;
        printf("sockprobe: socket(%s, %s, %d): %s\n", argv[1], argv[2], proto, strerror(e));
        return 1;
    }
    printf("sockprobe: socket(%s, %s, %d) = fd %d\n", argv[1], argv[2], proto, fd);
    close(fd);
    return 0;
}
