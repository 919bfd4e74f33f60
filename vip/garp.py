"""Gratuitous ARP: a pure frame builder and an AF_PACKET sender.

Both forms announce "VIP is at MAC": sender IP == target IP == the VIP. Linux clients
update an existing neighbour entry at once on either.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
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


def send_frames(interface: str, frames: list[bytes]) -> None:
    """Send raw frames on ``interface`` (needs CAP_NET_RAW)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((interface, 0))
        for frame in frames:
            sock.send(frame)
