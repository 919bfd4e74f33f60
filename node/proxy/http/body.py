"""The client's request body, made ready for the server: small bodies read whole (sent
with the head, so the request can be replayed on another connection), larger ones and
chunked ones streamed. A malformed chunk in what has already arrived is refused before
any server is contacted."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from node.proxy.errors import BadRequest, ClientTimeout
from node.proxy.http.client import Client
from node.proxy.http.headers import header_value
from node.proxy.http.stream import first_piece, pieces
from node.proxy.upstream.exchange import RequestBody
from node.proxy.wire.chunked import LAST_CHUNK, chunk

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
BUFFER_BODY = 65536  # request bodies up to this size are read whole before sending


class ClientBodyError(Exception):
    """Reading the client's request body failed (malformed chunk, client gone); the
    cause is chained."""


async def request_body(
    conn: Client, message: RawRequestMessage, payload: StreamReader
) -> RequestBody:
    if payload.is_eof() and payload.exception() is None:  # no body, or all of it is here
        data = payload.read_nowait(-1)
        if message.chunked:
            return RequestBody(data=chunk(data) + LAST_CHUNK, chunked=True)
        return RequestBody(data=data)
    expect = header_value(message.raw_headers, b"expect")
    if expect is not None and expect.lower() == b"100-continue" and message.version >= (1, 1):
        conn.write(_CONTINUE)
    length = message.headers.get("Content-Length")
    try:
        if length is not None:
            if int(length) <= BUFFER_BODY:  # small: read whole, sent with the head
                return RequestBody(data=await payload.readexactly(int(length)))
            return RequestBody(stream=_client_body(b"", payload))
        # Chunked: parse what has already arrived before any server is contacted, so
        # a malformed chunk in the first segment is refused with nothing forwarded.
        first = await first_piece(payload)
        if payload.is_eof():  # the rest arrived meanwhile: all of it is here
            whole = first + payload.read_nowait(-1)
            return RequestBody(data=chunk(whole) + LAST_CHUNK, chunked=True)
    except ClientTimeout:
        raise
    except Exception as exc:
        raise BadRequest(f"request body: {exc}") from exc
    return RequestBody(stream=_client_body(first, payload), chunked=True)


async def _client_body(first: bytes, content: StreamReader) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for data in pieces(content):
            yield data
    except Exception as exc:
        raise ClientBodyError(type(exc).__name__) from exc
