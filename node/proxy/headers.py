"""Pure header logic: request-framing checks, hop-by-hop removal, X-Forwarded-*.

aiohttp's C parser (llhttp) already rejects most malformed messages; these checks are a
second, explicit layer against request smuggling that does not depend on parser leniency.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from multidict import CIMultiDict

from node.config.model import Network

RawHeaders = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# bytes.translate(None, X) deletes X: what is left of a name or value is what is invalid.
_VALUE_OK = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_SEPARATORS = b"-_.~!#$%&'*+^`|"
_FRAMING_LOOKALIKES = frozenset({b"transferencoding", b"contentlength"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


class UnsupportedCoding(ValueError):
    """A transfer coding other than chunked: 501 (RFC 9112 section 6.1), not forwarded."""


def framing_problem(raw_headers: RawHeaders, version: tuple[int, int]) -> str | None:
    """Why this request's framing is unsafe to forward, or None when it is fine.

    Raises :class:`UnsupportedCoding` for well-formed transfer codings floatgate does
    not implement (anything but a lone ``chunked``)."""
    if version not in ((1, 1), (1, 0)):
        return f"unsupported HTTP version {version[0]}.{version[1]}"
    content_lengths: list[bytes] = []
    transfer_encodings: list[bytes] = []
    for name, value in raw_headers:
        if not name or name.translate(None, _TCHAR):
            return f"invalid header name {name[:40]!r}"
        if value.translate(None, _VALUE_OK):
            return f"control character in header {name.decode('latin-1')!r}"
        lower = name.lower()
        if lower == b"content-length":
            content_lengths.append(value)
        elif lower == b"transfer-encoding":
            transfer_encodings.append(value)
        elif lower.translate(None, _SEPARATORS) in _FRAMING_LOOKALIKES:
            # Transfer_Encoding, Content--Length...: servers that fold _ into - (CGI,
            # WSGI) would read framing this proxy did not see.
            return f"header {name[:40]!r} imitates a framing header"
    if len(content_lengths) > 1:
        return "multiple Content-Length headers"
    if content_lengths and not content_lengths[0].strip(b" \t").isdigit():
        return f"invalid Content-Length {content_lengths[0][:40]!r}"
    if transfer_encodings:
        if content_lengths:
            return "both Content-Length and Transfer-Encoding"
        if version < (1, 1):
            return "Transfer-Encoding in an HTTP/1.0 request"
        codings = [c.strip(b" \t").lower() for v in transfer_encodings for c in v.split(b",")]
        if codings[-1] != b"chunked" and codings[-1].split(b";")[0].strip() != b"chunked":
            return f"Transfer-Encoding does not end with chunked: {transfer_encodings[-1][:40]!r}"
        if codings != [b"chunked"]:
            raise UnsupportedCoding(b", ".join(codings).decode("latin-1")[:60])
    return None


def is_ambiguous(method: str, raw_headers: RawHeaders) -> bool:
    """A body on GET/HEAD has no defined meaning: forwarded, but neither the client nor
    the server connection is reused afterwards, so no later request can be desynced."""
    if method not in ("GET", "HEAD"):
        return False
    for name, value in raw_headers:
        lower = name.lower()
        if lower == b"transfer-encoding" or (
            lower == b"content-length" and value.strip(b" \t") != b"0"
        ):
            return True
    return False


def connection_tokens(raw_headers: RawHeaders) -> frozenset[str]:
    """Header names listed in Connection (they are hop-by-hop too)."""
    tokens: set[str] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(
                t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip()
            )
    return frozenset(tokens)


def end_to_end(raw_headers: RawHeaders, drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """Copy headers minus hop-by-hop ones, those named in Connection, and ``drop``."""
    skip = HOP_BY_HOP | connection_tokens(raw_headers) | frozenset(drop)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in raw_headers:
        text = name.decode("latin-1")
        if text.lower() not in skip:
            out.add(text, value.decode("latin-1"))
    return out


def is_trusted(client_ip: str | None, trusted: Sequence[Network]) -> bool:
    if not client_ip or not trusted:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def add_forwarded(
    headers: CIMultiDict[str],
    client_ip: str | None,
    proto: str,
    host: str | None,
    trusted: bool,
) -> None:
    """Set X-Forwarded-For/-Proto/-Host. Client-supplied values survive only if trusted."""
    if trusted:
        previous = ", ".join(headers.getall("X-Forwarded-For", []))
        chain = f"{previous}, {client_ip}" if previous else (client_ip or "")
        proto = headers.get("X-Forwarded-Proto", proto)
        host = headers.get("X-Forwarded-Host", host)
    else:
        chain = client_ip or ""
    for name in _FORWARDED:
        headers.popall(name, None)
    if chain:
        headers["X-Forwarded-For"] = chain
    headers["X-Forwarded-Proto"] = proto
    if host:
        headers["X-Forwarded-Host"] = host


def is_websocket_upgrade(raw_headers: RawHeaders) -> bool:
    upgrade = False
    for name, value in raw_headers:
        if name.lower() == b"upgrade" and b"websocket" in value.lower():
            upgrade = True
    return upgrade and "upgrade" in connection_tokens(raw_headers)
