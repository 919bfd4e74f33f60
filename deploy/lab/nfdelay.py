"""A network delay for the lab without the kernel's netem (this kernel has neither
sch_netem nor sch_fq): packets matched by an iptables ``NFQUEUE`` rule wait here for
``--delay-ms`` (plus or minus ``--jitter-ms``) before the kernel is told to let them
through, in the order they came; ``--loss`` percent of them are dropped instead.

It speaks nfnetlink_queue directly over a netlink socket (no C library to build):
bind a queue, ask for packet metadata only, answer each packet id with a verdict.
Run inside a namespace: ``python -m deploy.lab.nfdelay --queue 7 --delay-ms 100``.
It prints ``bound`` once the queue is bound; SIGTERM lets every held packet through
and exits (the rules use ``--queue-bypass``: without a reader, packets pass).
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid


class NetlinkError(RuntimeError):
    pass


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(kind: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    """One nfnetlink message: nlmsghdr, nfgenmsg (AF_UNSPEC, version 0, the queue number
    big-endian), then the attributes."""
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs
    kind = (NFNL_SUBSYS_QUEUE << 8) | kind
    return _HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body


def verdict(queue: int, packet_id: int, accept: bool) -> bytes:
    hdr = struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id)
    return message(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, hdr))


def packet_ids(data: bytes) -> list[int]:
    """The packet ids in one datagram of queued-packet messages (errors raise)."""
    ids, offset = [], 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + _HEADER.size)
            if code:
                raise NetlinkError(f"netlink error {os.strerror(-code)}")
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at, end = offset + _HEADER.size + 4, offset + length  # past nfgenmsg
            while at + 4 <= end:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr & 0x3FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, at + 4)[0])
                at += size + (-size % 4)
        offset += length + (-length % 4)
    return ids


def bind(queue: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.bind((0, 0))
    config = [
        _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)),
        _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 8192)),
    ]
    for seq, attrs in enumerate(config, 1):
        sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        packet_ids(sock.recv(65536))  # the ack; an error raises
    return sock


def serve(queue: int, delay: float, jitter: float, loss: float, rng: random.Random) -> None:
    sock = bind(queue)
    print("bound", flush=True)
    held: list[tuple[float, int, bool]] = []  # (release time, packet id, accept)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    last = 0.0
    while not stopping:
        now = time.monotonic()
        out = []
        while held and held[0][0] <= now:
            _, packet_id, accept = heapq.heappop(held)
            out.append(verdict(queue, packet_id, accept))
        if out:
            sock.send(b"".join(out))
        wait = max(0.0, held[0][0] - now) if held else 0.2
        try:
            ready, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if not ready:
            continue
        data = sock.recv(1 << 20)
        now = time.monotonic()
        for packet_id in packet_ids(data):
            # in order, as netem without reordering: never before the one queued earlier
            last = max(last, now + max(0.0, delay + rng.uniform(-jitter, jitter)))
            heapq.heappush(held, (last, packet_id, rng.random() * 100 >= loss))
    if held:
        sock.send(b"".join(verdict(queue, packet_id, True) for _, packet_id, _ in held))
    sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.lab.nfdelay")
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0, help="percent dropped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        serve(args.queue, args.delay_ms / 1000, args.jitter_ms / 1000, args.loss,
              random.Random(args.seed))  # fmt: skip
    except (OSError, NetlinkError) as exc:
        print(f"nfdelay: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
