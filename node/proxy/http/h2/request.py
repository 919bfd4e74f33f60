"""An HTTP/2 request's header list, checked (RFC 9113 section 8) and turned into the
HTTP/1.1 request message the rest of the request path serves.

Pure logic: the h2 library's own header validation is switched off so that a malformed
request is a *stream* error (RST_STREAM PROTOCOL_ERROR, RFC 9113 8.1.1) decided here,
not a connection error that would end every other stream of the client.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2 (te: only "trailers").
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
_FORBIDDEN_IN_VALUE = (0x00, 0x0A, 0x0D)
_METHOD = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_NOT_IN_TARGET = frozenset([*range(0x21), 0x7F])  # :path and :authority: no space, no controls
MAX_FIELDS = 128  # as for HTTP/1.1 (node.proxy.http.connection)
_NO_URL = URL()


class MalformedRequest(ValueError):
    """The request is malformed (RFC 9113 8.1.1): the stream is reset, never forwarded."""


class RequestTooLarge(ValueError):
    """Over the frontend's limits, as for HTTP/1.1: answered with ``status`` (414 for
    the path, 431 for a header field)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def to_request(
    fields: Sequence[tuple[bytes, bytes]],
    end_stream: bool,
    max_uri_length: int = 8190,
    max_header_size: int = 16384,
) -> RawRequestMessage:
    """The HTTP/1.1 message for one HTTP/2 request head. ``end_stream``: the HEADERS
    frame ended the stream (no body). The limits are the frontend's (as for HTTP/1.1:
    the request target, and one header field). Raises :class:`MalformedRequest` or
    :class:`RequestTooLarge`."""
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    lengths: set[bytes] = set()
    if len(fields) > MAX_FIELDS:
        raise MalformedRequest(f"more than {MAX_FIELDS} header fields")
    for name, value in fields:
        if name.startswith(b":"):
            if regular or cookies or host is not None:
                raise MalformedRequest(f"pseudo-header {_shown(name)} after regular fields")
            if name not in _REQUEST_PSEUDO:
                raise MalformedRequest(f"unknown pseudo-header {_shown(name)}")
            if name in pseudo:
                raise MalformedRequest(f"pseudo-header {_shown(name)} repeated")
            _check_value(name, value)
            pseudo[name] = value
            continue
        _check_name(name)
        _check_value(name, value)
        if len(name) + len(value) + 2 > max_header_size:
            raise RequestTooLarge(431, "Request Header Fields Too Large")
        if name in _CONNECTION_SPECIFIC:
            raise MalformedRequest(f"connection-specific header {_shown(name)}")
        if name == b"te":
            if value.strip().lower() != b"trailers":
                raise MalformedRequest("te other than trailers")
            continue  # hop-by-hop: not forwarded
        if name == b"cookie":
            cookies.append(value)  # RFC 9113 8.2.3: crumbs are joined for HTTP/1.1
        elif name == b"host":
            if host is not None:
                raise MalformedRequest("host repeated")
            host = value
        else:
            if name == b"content-length":
                lengths.add(value)
            regular.append((name, value))
    method = pseudo.get(b":method")
    if not method:
        raise MalformedRequest("no :method")
    # These become the HTTP/1.1 request line and Host: nothing in them may add a word.
    if any(byte not in _METHOD for byte in method):
        raise MalformedRequest(f"invalid :method {_shown(method)}")
    authority = pseudo.get(b":authority")
    if authority is not None and (
        any(byte in _NOT_IN_TARGET for byte in authority) or b"@" in authority
    ):
        raise MalformedRequest(f"invalid :authority {_shown(authority)} (host[:port] only)")
    if method == b"CONNECT":
        if b":path" in pseudo or b":scheme" in pseudo or not authority:
            raise MalformedRequest("CONNECT with :path or :scheme, or without :authority")
        path = authority
    else:
        path = pseudo.get(b":path", b"")
        if not path or b":scheme" not in pseudo:
            raise MalformedRequest("no :path or no :scheme")
        if not path.startswith(b"/") and not (path == b"*" and method == b"OPTIONS"):
            raise MalformedRequest(f"invalid :path {_shown(path)}")
        if any(byte in _NOT_IN_TARGET for byte in path):
            raise MalformedRequest(f"invalid :path {_shown(path)}")
        if len(method) + len(path) + 10 > max_uri_length:  # "GET /p HTTP/1.1" as HTTP/1.1
            raise RequestTooLarge(414, "URI Too Long")
    if authority is not None and host is not None and host.lower() != authority.lower():
        raise MalformedRequest("host differs from :authority")
    if len(lengths) > 1:
        raise MalformedRequest("content-length values differ")
    if lengths and end_stream and lengths != {b"0"}:
        raise MalformedRequest("content-length without a body")
    head: list[tuple[bytes, bytes]] = []
    if authority is not None or host is not None:
        head.append((b"host", authority if authority is not None else host or b""))
    head.extend(regular)
    if cookies:
        head.append((b"cookie", b"; ".join(cookies)))
    # Host (from :authority) and the joined Cookie are header lines of the HTTP/1.1 request
    if any(len(value) + len(name) + 2 > max_header_size for name, value in (head[0], head[-1])):
        raise RequestTooLarge(431, "Request Header Fields Too Large")
    method_text, path_text = method.decode("latin-1"), path.decode("latin-1")
    headers = CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in head)
    return RawRequestMessage(
        method=method_text,
        path=path_text,
        version=HttpVersion11,  # served as HTTP/1.1 from here on (the log says HTTP/2.0)
        headers=CIMultiDictProxy(headers),
        raw_headers=tuple(head),
        should_close=False,
        compression=None,
        upgrade=False,
        chunked=not end_stream and not lengths,  # a body of unknown length: chunked
        url=_NO_URL,  # not read by the request path
    )


def _check_name(name: bytes) -> None:
    if not name or any(byte not in _TOKEN for byte in name):
        raise MalformedRequest(f"invalid header name {_shown(name)} (lowercase tokens only)")


def _check_value(name: bytes, value: bytes) -> None:
    if any(byte in value for byte in _FORBIDDEN_IN_VALUE):
        raise MalformedRequest(f"NUL, CR or LF in {_shown(name)}")
    if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        raise MalformedRequest(f"whitespace around the value of {_shown(name)}")


def _shown(text: bytes) -> str:
    return repr(text[:40].decode("latin-1"))
