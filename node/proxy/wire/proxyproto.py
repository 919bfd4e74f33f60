"""PROXY protocol v1 (text) and v2 (binary) headers: pure encode and decode.

Sent to servers (``send_proxy``) so they learn the client's address; accepted from
trusted load balancers in front of floatgate (``accept_proxy``).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107


class ProxyHeaderError(ValueError):
    """Not a valid PROXY protocol header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """The addresses a header carries; None for LOCAL (v2) or UNKNOWN (v1)."""

    src: tuple[str, int] | None
    dst: tuple[str, int] | None


def encode_v1(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    family = "TCP6" if ":" in src[0] else "TCP4"
    return f"PROXY {family} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode("ascii")


def encode_v2(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    source, destination = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if source.version != destination.version:
        destination = (
            ipaddress.ip_address("::") if source.version == 6 else ipaddress.ip_address("0.0.0.0")
        )
    family = 0x11 if source.version == 4 else 0x21  # TCP over IPv4 / IPv6
    body = source.packed + destination.packed + struct.pack("!HH", src[1], dst[1])
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def encode(version: str, src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    return encode_v2(src, dst) if version == "v2" else encode_v1(src, dst)


def local_header(version: str) -> bytes:
    """A header that names no client (health checks): v1 UNKNOWN, v2 LOCAL."""
    if version == "v2":
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    return b"PROXY UNKNOWN\r\n"


def needed(prefix: bytes) -> int:
    """How many bytes the whole header takes, from what arrived so far: 0 = unknown
    yet (read more), or raises ProxyHeaderError if this cannot be a header."""
    if prefix.startswith(b"PROXY "[: len(prefix)]) and len(prefix) < 6:
        return 0
    if prefix.startswith(b"PROXY "):
        end = prefix.find(b"\r\n")
        if end == -1:
            if len(prefix) >= V1_MAX:
                raise ProxyHeaderError("PROXY v1 line too long")
            return 0
        return end + 2
    if V2_SIGNATURE.startswith(prefix[:12]) and len(prefix) < 16:
        return 0
    if prefix.startswith(V2_SIGNATURE):
        length = int.from_bytes(prefix[14:16], "big")
        if length > 2048:
            raise ProxyHeaderError("PROXY v2 header too long")
        return 16 + length
    raise ProxyHeaderError("no PROXY protocol header")


def decode(header: bytes) -> ProxyHeader:
    """Decode one complete header (exactly ``needed()`` bytes)."""
    if header.startswith(b"PROXY "):
        return _decode_v1(header)
    if header.startswith(V2_SIGNATURE):
        return _decode_v2(header)
    raise ProxyHeaderError("no PROXY protocol header")


def _decode_v1(header: bytes) -> ProxyHeader:
    if not header.endswith(b"\r\n"):
        raise ProxyHeaderError("PROXY v1 line not terminated")
    parts = header[:-2].decode("ascii", "replace").split(" ")
    if (len(parts) == 2 and parts[1] == "UNKNOWN") or (len(parts) > 2 and parts[1] == "UNKNOWN"):
        return ProxyHeader(None, None)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 line")
    try:
        src, dst = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
        sport, dport = int(parts[4]), int(parts[5])
    except ValueError as exc:
        raise ProxyHeaderError("malformed PROXY v1 addresses") from exc
    if src.version != (4 if parts[1] == "TCP4" else 6) or not (
        0 <= sport < 65536 and 0 <= dport < 65536
    ):
        raise ProxyHeaderError("PROXY v1 address family or port out of range")
    return ProxyHeader((str(src), sport), (str(dst), dport))


def _decode_v2(header: bytes) -> ProxyHeader:
    if len(header) < 16:
        raise ProxyHeaderError("PROXY v2 header truncated")
    version_command, family = header[12], header[13]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("PROXY v2: unknown version")
    command = version_command & 0x0F
    body = header[16:]
    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    if command == 0:  # LOCAL: a health check from the balancer itself
        return ProxyHeader(None, None)
    if command != 1:
        raise ProxyHeaderError("PROXY v2: unknown command")
    if family == 0x11 and len(body) >= 12:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack_from("!HH", body, 8)
    elif family == 0x21 and len(body) >= 36:
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack_from("!HH", body, 32)
    else:
        return ProxyHeader(None, None)  # UNSPEC or a family without addresses we use
    return ProxyHeader((str(src), sport), (str(dst), dport))
