#!/usr/bin/env python3
"""A tiny DNS responder for the host-mode test network (python3 stdlib only).

    dns.py ADDRESS NAME=IP [NAME=IP ...]

Answers A queries for the given names (and their subdomains' exact names only) with the
given addresses, AAAA and other types with an empty answer, unknown names with NXDOMAIN.
It runs inside the test-host network namespace of qemu-tests/host-run, so the containers'
`curl google.com` really resolves (over UDP, as KubeArmor's scenarios expect) without any
packet leaving the machine.
"""
import socket
import struct
import sys


def parse_name(msg: bytes, off: int) -> tuple[str, int]:
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels).lower(), off


def main() -> int:
    addr = sys.argv[1]
    table = {}
    for kv in sys.argv[2:]:
        name, _, ip = kv.partition("=")
        table[name.lower().rstrip(".")] = socket.inet_aton(ip)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        msg, peer = s.recvfrom(512)
        if len(msg) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", msg[:6])
        if qd != 1:
            continue
        try:
            name, off = parse_name(msg, 12)
            qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
        except (IndexError, struct.error):
            continue
        question = msg[12:off + 4]
        ip = table.get(name)
        rcode = 0 if ip is not None else 3
        answers = b""
        if ip is not None and qtype == 1 and qclass == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + ip
        ancount = 1 if answers else 0
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, ancount, 0, 0)
        s.sendto(head + question + answers, peer)


if __name__ == "__main__":
    sys.exit(main())
