"""Pure TLS ClientHello parsing (for passthrough routing) and building (for the
``ssl-hello`` health check). Nothing here decrypts or terminates anything.

``parse_client_hello(data)`` looks at the bytes a client sent so far:
- returns None while the ClientHello is incomplete (it may span several TCP segments
  and several TLS records);
- returns a :class:`ClientHello` (SNI, ALPN) once it is complete;
- raises :class:`NotTls` if the first bytes are not a TLS handshake record, and
  :class:`MalformedHello` if the message is inconsistent or too large.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

MAX_HELLO = 64 * 1024  # a ClientHello larger than this is refused (post-quantum ones are ~2 KiB)
_HANDSHAKE, _CLIENT_HELLO, _SERVER_HELLO = 0x16, 0x01, 0x02
_EXT_SNI, _EXT_ALPN = 0x0000, 0x0010


class NotTls(ValueError):
    """The first bytes are not a TLS handshake."""


class MalformedHello(ValueError):
    """A TLS handshake whose ClientHello is inconsistent, truncated or too large."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    sni: str | None
    alpn: tuple[str, ...]
    size: int  # bytes of TLS records the hello took


def parse_client_hello(data: bytes) -> ClientHello | None:
    handshake, consumed = _reassemble(data)
    if handshake is None:
        return None
    return _parse_body(handshake, consumed)


def _reassemble(data: bytes) -> tuple[bytes | None, int]:
    """Concatenate handshake-record payloads until the first handshake message is whole."""
    if data and data[0] != _HANDSHAKE:
        raise NotTls(f"first byte 0x{data[0]:02x} is not a TLS handshake record")
    if len(data) >= 3 and data[1] != 0x03:
        raise NotTls(f"record version 0x{data[1]:02x}{data[2]:02x} is not TLS")
    payload = bytearray()
    offset = 0
    while offset + 5 <= len(data):
        kind, major, length = (
            data[offset],
            data[offset + 1],
            struct.unpack_from("!H", data, offset + 3)[0],
        )
        if kind != _HANDSHAKE or major != 0x03:
            raise MalformedHello("non-handshake record before the ClientHello was complete")
        if length == 0 or length > 16384 + 2048:
            raise MalformedHello(f"invalid TLS record length {length}")
        if offset + 5 + length > len(data):
            break
        payload += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(payload) >= 4:
            if payload[0] != _CLIENT_HELLO:
                raise MalformedHello(
                    f"first handshake message is type {payload[0]}, not ClientHello"
                )
            needed = 4 + int.from_bytes(payload[1:4], "big")
            if needed > MAX_HELLO:
                raise MalformedHello(f"ClientHello of {needed} bytes is too large")
            if len(payload) >= needed:
                return bytes(payload[:needed]), offset
    if len(data) > MAX_HELLO + 5 * 8:
        raise MalformedHello("ClientHello too large")
    return None, 0


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise MalformedHello("ClientHello truncated")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, length_bytes: int) -> bytes:
        size = int.from_bytes(self.take(length_bytes), "big")
        return self.take(size)

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _parse_body(handshake: bytes, consumed: int) -> ClientHello:
    r = _Reader(handshake[4:])
    r.take(2 + 32)  # legacy_version, random
    r.vector(1)  # session id
    if len(r.vector(2)) % 2:
        raise MalformedHello("odd cipher suite list")
    r.vector(1)  # compression methods
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    if r.left:
        extensions = _Reader(r.vector(2))
        seen: set[int] = set()
        while extensions.left:
            kind = extensions.u16()
            body = extensions.vector(2)
            if kind in seen:
                raise MalformedHello(f"duplicate extension {kind}")
            seen.add(kind)
            if kind == _EXT_SNI:
                sni = _server_name(body)
            elif kind == _EXT_ALPN:
                alpn = _alpn(body)
    return ClientHello(sni, alpn, consumed)


def _server_name(body: bytes) -> str | None:
    names = _Reader(_Reader(body).vector(2))
    while names.left:
        kind = names.u8()
        value = names.vector(2)
        if kind == 0:
            try:
                text = value.decode("ascii").lower().rstrip(".")
            except UnicodeDecodeError as exc:
                raise MalformedHello("server name is not ASCII") from exc
            if not text or len(text) > 253 or any(c in text for c in " /\\\0"):
                raise MalformedHello("invalid server name")
            return text
    return None


def _alpn(body: bytes) -> tuple[str, ...]:
    protocols = _Reader(_Reader(body).vector(2))
    found = []
    while protocols.left:
        found.append(protocols.vector(1).decode("ascii", "replace"))
    return tuple(found)


def build_client_hello(server_name: str | None = None) -> bytes:
    """A TLS 1.2/1.3-compatible ClientHello record, enough to make a server answer
    with a ServerHello (the ``ssl-hello`` health check)."""
    suites = [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x1301, 0x1302, 0x1303]
    extensions = b""
    if server_name:
        name = server_name.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions += _ext(_EXT_SNI, struct.pack("!H", len(entry)) + entry)
    extensions += _ext(0x000A, struct.pack("!HHH", 4, 0x001D, 0x0017))  # groups: x25519, P-256
    extensions += _ext(0x000B, b"\x01\x00")  # ec_point_formats: uncompressed
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501]
    extensions += _ext(
        0x000D, struct.pack("!H", 2 * len(sigalgs)) + struct.pack(f"!{len(sigalgs)}H", *sigalgs)
    )
    body = (
        b"\x03\x03" + os.urandom(32) + b"\x00"
        + struct.pack("!H", 2 * len(suites)) + struct.pack(f"!{len(suites)}H", *suites)
        + b"\x01\x00" + struct.pack("!H", len(extensions)) + extensions
    )  # fmt: skip
    handshake = bytes([_CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body
    return bytes([_HANDSHAKE, 0x03, 0x01]) + struct.pack("!H", len(handshake)) + handshake


def is_server_hello(data: bytes) -> bool:
    """The first record of a server's answer is a handshake carrying a ServerHello."""
    return len(data) >= 6 and data[0] == _HANDSHAKE and data[1] == 0x03 and data[5] == _SERVER_HELLO


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body
