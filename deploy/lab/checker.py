"""The lab's event-driven safety checker: it sees events, not samples.

- one thread per node namespace (``setns`` on that thread only) listens on a netlink
  socket subscribed to IPv4 address events and records every add and delete of the VIP;
- one thread in the switch namespace captures every ARP and IPv4 frame entering the
  bridge from a host's port: the client's questions for the VIP, every ARP frame
  claiming the VIP (replies and gratuitous ARPs) and every IPv4 frame sent from it, with
  the sender's MAC.

A socket error in any recorder, a frame the tap dropped (PACKET_STATISTICS) or a gap of
more than a second between the client's questions voids the verdict (``blind``).

All timestamps are ``time.monotonic()`` of this one process. ``stop()`` returns the
verdict (deploy/lab/verdict.py). The client namespace runs the asker
(``SwitchedLab.start_arp_watch``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import socket
import struct
import threading
import time

from deploy.lab.netlab import HOSTS, VIP, SwitchedLab
from deploy.lab.verdict import AddressEvent, ArpEvent, Verdict, judge
from vip.garp import ETH_P_ARP, parse_arp

CLONE_NEWNET = 0x40000000
RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWADDR, RTM_DELADDR = 20, 21
IFA_ADDRESS, IFA_LOCAL = 1, 2
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_STATISTICS = 263, 6
IPV4_ETHERTYPE = b"\x08\x00"
ETH_P_ALL = 0x0003
ARP_ETHERTYPE = ETH_P_ARP.to_bytes(2, "big")


def _enter(namespace: str) -> None:
    """Move the calling thread (only) into a network namespace."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
    finally:
        os.close(fd)


def parse_address_messages(data: bytes, vip: ipaddress.IPv4Address) -> list[bool]:
    """Netlink RTM_NEWADDR / RTM_DELADDR messages about ``vip``: True for add."""
    found: list[bool] = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if kind in (RTM_NEWADDR, RTM_DELADDR) and length >= 24:
            family = data[offset + 16]
            attr = offset + 24
            while family == socket.AF_INET and attr + 4 <= offset + length:
                size, name = struct.unpack_from("=HH", data, attr)
                if size < 4:
                    break
                if name in (IFA_ADDRESS, IFA_LOCAL) and data[attr + 4 : attr + size] == vip.packed:
                    found.append(kind == RTM_NEWADDR)
                    break
                attr += (size + 3) & ~3
        offset += (length + 3) & ~3
    return found


class EventChecker:
    def __init__(self, lab: SwitchedLab) -> None:
        self.lab = lab
        self.nodes = lab.nodes
        self.vip = ipaddress.IPv4Address(VIP)
        self.addresses: list[AddressEvent] = []
        self.arp: list[ArpEvent] = []
        self.initial: dict[str, bool] = {}
        self.macs: dict[str, str] = {}  # each node's MAC on the switch, to tell handovers
        self.started = 0.0
        self.errors: list[str] = []
        self.dropped = 0
        self._stop = threading.Event()
        self._ready = threading.Barrier(len(self.nodes) + 2)
        self._threads = [threading.Thread(target=self._addresses, args=(n,), daemon=True)
                         for n in self.nodes]  # fmt: skip
        self._threads.append(threading.Thread(target=self._capture, daemon=True))
        self._ports = self._node_ports()

    def _node_ports(self) -> dict[str, str]:
        """The switch port (veth in the switch namespace) of each host: p<index>."""
        return {f"p{index}": host for index, host in enumerate(HOSTS)}

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._ready.wait(10)  # every socket is open: from here on nothing is missed
        holders = self.lab.holders()
        self.initial = {node: node in holders for node in self.nodes}
        self.macs = {self.lab.mac(node): node for node in self.nodes}
        self.started = time.monotonic()

    def _addresses(self, node: str) -> None:
        _enter(self.lab.ns[node])
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.bind((0, RTMGRP_IPV4_IFADDR))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.settimeout(0.1)
            self._ready.wait(10)
            while not self._stop.is_set():
                try:
                    data = sock.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError as exc:  # ENOBUFS: events were lost
                    self.errors.append(f"netlink in {node}: {exc}")
                    continue
                now = time.monotonic()
                for present in parse_address_messages(data, self.vip):
                    self.addresses.append(AddressEvent(now, node, present))

    def _capture(self) -> None:
        _enter(self.lab.ns["sw"])
        # ETH_P_ALL: a tap sees a frame before the bridge takes it; a socket for ARP alone
        # would be handed only frames addressed to the switch namespace itself.
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            sock.settimeout(0.1)
            self._ready.wait(10)
            client = ipaddress.IPv4Address(HOSTS["client"])
            while not self._stop.is_set():
                try:
                    frame, address = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                except OSError as exc:
                    self.errors.append(f"capture: {exc}")
                    continue
                now = time.monotonic()
                if address[2] == PACKET_OUTGOING or address[0] not in self._ports:
                    continue  # each frame once: as it enters the bridge from a host
                if frame[12:14] == IPV4_ETHERTYPE and frame[26:30] == self.vip.packed:
                    self.arp.append(ArpEvent(now, frame[6:12].hex(":"), question=False))
                    continue
                if frame[12:14] != ARP_ETHERTYPE:
                    continue
                parsed = parse_arp(frame)
                if parsed is None:
                    continue
                operation, mac, sender, target = parsed
                if operation == 1 and sender == client and target == self.vip:
                    self.arp.append(ArpEvent(now, mac.hex(":"), question=True))
                elif sender == self.vip:
                    self.arp.append(ArpEvent(now, mac.hex(":"), question=False))
            stats = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
            self.dropped = struct.unpack("=II", stats)[1]

    def stop(self, fenced_backstop: bool = False) -> Verdict:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        verdict = judge(self.addresses, self.initial, self.arp, time.monotonic(),
                        fenced_backstop, self.macs)  # fmt: skip
        verdict.blind += self.errors
        if self.dropped:
            verdict.blind.append(f"the tap dropped {self.dropped} frames")
        if any(thread.is_alive() for thread in self._threads):
            verdict.blind.append("a recorder did not stop")
        if verdict.longest_question_gap > 1.0:
            verdict.blind.append(f"no ARP question for {verdict.longest_question_gap:.1f}s")
        if verdict.questions == 0:
            verdict.blind.append("no ARP question seen (is the asker running?)")
        return verdict

    def claims_by(self, mac: str, after: float = 0.0) -> list[float]:
        return [e.at for e in self.arp if not e.question and e.mac == mac and e.at >= after]
