"""Pure header logic: request-framing checks, hop-by-hop removal, X-Forwarded-*.

aiohttp's C parser (llhttp) already rejects most malformed messages; these checks are a
second, explicit layer against request smuggling that does not depend on parser leniency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

RawHeaders = Sequence[tuple[bytes, bytes]]

HeaderList = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    }
)
_NEVER_NAMED_AWAY = frozenset({b"content-length", b"host"})
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
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
    if plainly_fine(raw_headers):
        return None
    return header_by_header(raw_headers, version)


def header_by_header(raw_headers: RawHeaders, version: tuple[int, int]) -> str | None:
    """framing_problem's checks one header at a time (what ``plainly_fine`` says of
    all of them at once, when it can)."""
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


def plainly_fine(raw_headers: RawHeaders) -> bool:
    """The common case, checked over all headers at once: every name and value valid
    and no name that could be (or imitate) a framing header. False says nothing; the
    header-by-header checks then decide."""
    names = [name for name, _ in raw_headers]
    if not all(names) or b"".join(names).translate(None, _TCHAR):
        return False
    if b"".join([value for _, value in raw_headers]).translate(None, _VALUE_OK):
        return False
    squeezed = b"\n".join(names).lower().translate(None, _SEPARATORS)
    return b"transferencoding" not in squeezed and b"contentlength" not in squeezed


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


def connection_tokens(raw_headers: RawHeaders) -> frozenset[bytes]:
    """Header names listed in Connection, lower-case (they are hop-by-hop too)."""
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def end_to_end(raw_headers: RawHeaders, drop: frozenset[bytes] = frozenset()) -> HeaderList:
    """Headers minus hop-by-hop ones, those named in Connection, and ``drop`` (all
    lower-case names), in their original order and spelling."""
    skip = HOP_BY_HOP | drop if drop else HOP_BY_HOP
    kept: HeaderList = []
    named = False  # a Connection header: the names it lists go too
    for name, value in raw_headers:
        lower = name.lower()
        if lower in skip:
            named = named or lower == b"connection"
        else:
            kept.append((name, value))
    if named:
        # (keep-alive is gone already; the framing and routing headers are never
        # named away: a request whose body is sent without its Content-Length would
        # be read by the server as a second request)
        tokens = connection_tokens(raw_headers) - skip - _NEVER_NAMED_AWAY
        if tokens:
            kept = [(name, value) for name, value in kept if name.lower() not in tokens]
    return kept


def add_forwarded(
    headers: HeaderList,
    client_ip: str | None,
    proto: bytes,
    host: bytes | None,
    trusted: bool,
) -> None:
    """Set X-Forwarded-For/-Proto/-Host. Client-supplied values survive only if trusted."""
    chain = client_ip.encode() if client_ip else b""
    if trusted:
        previous = [v for n, v in headers if n.lower() == b"x-forwarded-for"]
        if previous:
            chain = b", ".join([*previous, chain]) if chain else b", ".join(previous)
        proto = _last(headers, b"x-forwarded-proto") or proto
        host = _last(headers, b"x-forwarded-host") or host
    headers[:] = [(n, v) for n, v in headers if n.lower() not in _FORWARDED]
    if chain:
        headers.append((b"X-Forwarded-For", chain))
    headers.append((b"X-Forwarded-Proto", proto))
    if host:
        headers.append((b"X-Forwarded-Host", host))


def _last(headers: HeaderList, name: bytes) -> bytes | None:
    found = None
    for n, v in headers:
        if n.lower() == name:
            found = v
    return found


def header_value(raw_headers: RawHeaders, name: bytes) -> bytes | None:
    """The first value of a header (``name`` lower-case)."""
    for n, v in raw_headers:
        if n.lower() == name:
            return v
    return None


def serialize(first_line: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A message head: first line, headers, blank line."""
    return b"\r\n".join([first_line, *[n + b": " + v for n, v in headers], b"\r\n"])


def is_websocket_upgrade(raw_headers: RawHeaders) -> bool:
    upgrade = False
    for name, value in raw_headers:
        if name.lower() == b"upgrade" and b"websocket" in value.lower():
            upgrade = True
    return upgrade and b"upgrade" in connection_tokens(raw_headers)
