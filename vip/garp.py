"""ARP on the wire: pure frame builders and parsers, an AF_PACKET sender and prober.

Gratuitous ARP, both forms, announce "VIP is at MAC": sender IP == target IP == the VIP.
Linux clients update an existing neighbour entry at once on either. An ARP probe
(RFC 5227: sender IP 0.0.0.0) asks "does anyone hold this address?" before claiming it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Callable
from typing import Literal

BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return bytes(int(p, 16) for p in parts)


def garp_frame(
    mac: bytes, address: ipaddress.IPv4Address, kind: Literal["request", "reply"] = "request"
) -> bytes:
    """An Ethernet broadcast frame carrying a gratuitous ARP request or reply."""
    if len(mac) != 6:
        raise ValueError("a MAC address is 6 bytes")
    ip = address.packed
    operation = 1 if kind == "request" else 2
    target_mac = b"\x00" * 6 if kind == "request" else BROADCAST
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, operation) + mac + ip + target_mac + ip
    return BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp


def probe_frame(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """An ARP probe for ``address``: a request with sender IP 0.0.0.0 (RFC 5227), so no
    host learns anything from it; a holder of the address answers it."""
    if len(mac) != 6:
        raise ValueError("a MAC address is 6 bytes")
    arp = (struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + b"\x00" * 4 + b"\x00" * 6
           + address.packed)  # fmt: skip
    return BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp


def request_frame(
    mac: bytes, sender: ipaddress.IPv4Address, target: ipaddress.IPv4Address
) -> bytes:
    """An ordinary "who has target? tell sender" request (a client resolving the VIP)."""
    arp = (struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + sender.packed + b"\x00" * 6
           + target.packed)  # fmt: skip
    return BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp


def claimant(frame: bytes, address: ipaddress.IPv4Address, own_mac: bytes) -> bytes | None:
    """The MAC of another host that claims ``address`` in this ARP frame (a reply or a
    gratuitous announcement with sender IP == address), else None."""
    parsed = parse_arp(frame)
    if parsed is None:
        return None
    _, sender_mac, sender_ip, _ = parsed
    return sender_mac if sender_ip == address and sender_mac != own_mac else None


def parse_arp(
    frame: bytes,
) -> tuple[int, bytes, ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
    """(operation, sender MAC, sender IP, target IP) of an ARP frame, else None."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    operation = struct.unpack_from("!H", frame, 20)[0]
    sender_mac = frame[22:28]
    sender_ip = ipaddress.IPv4Address(frame[28:32])
    target_ip = ipaddress.IPv4Address(frame[38:42])
    return operation, sender_mac, sender_ip, target_ip


def send_frames(
    interface: str, frames: list[bytes], still: Callable[[], bool] = lambda: True
) -> None:
    """Send raw frames on ``interface`` (needs CAP_NET_RAW), each only while ``still()``
    holds right before it (an announcement stops the moment leadership ends)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((interface, 0))
        for frame in frames:
            if not still():
                return
            sock.send(frame)


def probe(interface: str, mac: bytes, address: ipaddress.IPv4Address, wait: float) -> bytes | None:
    """Send an ARP probe for ``address`` and listen ``wait`` seconds: the MAC of a host
    that answers (a live holder), or None. Blocking; run it in a thread."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((interface, 0))
        sock.send(probe_frame(mac, address))
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                frame = sock.recv(2048)
            except TimeoutError:
                break
            holder = claimant(frame, address, mac)
            if holder is not None:
                return holder
    return None
