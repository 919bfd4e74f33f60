"""HTTP/1.1 chunked transfer coding, sending side (RFC 9112 section 7.1). Parsing is
llhttp's, through aiohttp."""

from __future__ import annotations

LAST_CHUNK = b"0\r\n\r\n"  # the zero-size chunk with no trailers


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk; nothing for no data (an empty chunk would end the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
