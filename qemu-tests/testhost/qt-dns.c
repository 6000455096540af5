/* qt-dns: a tiny DNS responder for the VM test network (qemu-tests/guest/containers.sh; the
 * VM has no python, so this replaces qemu-tests/host/dns.py there; same behaviour).
 *
 *   qt-dns ADDRESS NAME=IP [NAME=IP ...]
 *
 * Answers A queries for exactly the given names with the given addresses, other types of a
 * known name with an empty answer, unknown names with NXDOMAIN. It runs in the test host's
 * network namespace, so a container's `curl google.com` resolves over UDP, as KubeArmor's
 * scenarios expect, and no packet leaves the VM (which has no network device anyway). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_NAMES 32

static char names[MAX_NAMES][256];
static struct in_addr addrs[MAX_NAMES];
static int nnames;

/* The question's name at msg[12..], lower case and dot-separated; returns the offset after
 * it, or -1 when malformed (compression is not used in questions). */
static int qname(const unsigned char *msg, int len, char *out, int outlen)
{
    int off = 12, o = 0;
    while (off < len) {
        int n = msg[off++];
        if (n == 0) {
            out[o] = 0;
            return off;
        }
        if (n > 63 || off + n > len || o + n + 2 > outlen)
            return -1;
        if (o)
            out[o++] = '.';
        for (int i = 0; i < n; i++)
            out[o++] = (char)tolower(msg[off + i]);
        off += n;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: qt-dns ADDRESS NAME=IP...\n");
        return 2;
    }
    for (int i = 2; i < argc && nnames < MAX_NAMES; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq || (size_t)(eq - argv[i]) >= sizeof names[0] || !inet_aton(eq + 1, &addrs[nnames])) {
            fprintf(stderr, "qt-dns: bad entry %s (NAME=IP)\n", argv[i]);
            return 2;
        }
        memcpy(names[nnames], argv[i], (size_t)(eq - argv[i]));
        for (char *p = names[nnames]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        nnames++;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    if (s < 0 || !inet_aton(argv[1], &sa.sin_addr) || bind(s, (struct sockaddr *)&sa, sizeof sa)) {
        perror("qt-dns: socket/bind");
        return 1;
    }
    for (;;) {
        unsigned char msg[512], out[600];
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        ssize_t n = recvfrom(s, msg, sizeof msg, 0, (struct sockaddr *)&peer, &pl);
        if (n < 12 || msg[4] != 0 || msg[5] != 1)
            continue;
        char name[256];
        int off = qname(msg, (int)n, name, sizeof name);
        if (off < 0 || off + 4 > n)
            continue;
        int qtype = msg[off] << 8 | msg[off + 1], qclass = msg[off + 2] << 8 | msg[off + 3];
        off += 4;
        int hit = -1;
        for (int i = 0; i < nnames; i++)
            if (!strcmp(names[i], name))
                hit = i;
        memcpy(out, msg, (size_t)off); /* id, then the question */
        out[2] = 0x81;                  /* response, recursion desired */
        out[3] = hit < 0 ? 0x83 : 0x80; /* recursion available; NXDOMAIN when unknown */
        out[6] = out[7] = out[8] = out[9] = out[10] = out[11] = 0;
        int len = off;
        if (hit >= 0 && qtype == 1 && qclass == 1) {
            out[7] = 1; /* one answer: a pointer to the question's name, A IN, TTL 60 */
            const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
            memcpy(out + len, rr, sizeof rr);
            len += (int)sizeof rr;
            memcpy(out + len, &addrs[hit].s_addr, 4);
            len += 4;
        }
        sendto(s, out, (size_t)len, 0, (struct sockaddr *)&peer, pl);
    }
}
