"""The client side towards servers: a lean HTTP/1.1 client with a per-server pool of
keep-alive connections.

aiohttp's ClientSession costs more CPU per request than the whole server side (cookie
jar, URL handling, tracing, a request object per call). floatgate needs much less: write
one request head, stream a body, parse one response. It reuses aiohttp's connection
protocol, ``ResponseHandler`` (llhttp C response parser, payload StreamReader with flow
control, socket read timeout), and skips the rest. This module and node/proxy/upstream/
connect.py (which hands it a TLS transport after a PROXY header with
``connection_made``) are the only places that touch that aiohttp internal; aiohttp is
pinned in constraints.txt, every functional test goes through here, and
tests/functional/test_proxy_protocol.py covers the TLS-after-PROXY path.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp.client_proto import ResponseHandler

from node.config.model import HostPort, Timeouts
from node.proxy.upstream.connect import connect_server
from node.proxy.wire.chunked import LAST_CHUNK
from node.proxy.wire.chunked import chunk as frame_chunk
from node.tls.material import BackendTlsRuntime

IDLE_SECONDS = 30.0  # close pooled connections idle for longer than this
MAX_IDLE = 256  # pooled connections kept per server
MAX_RESPONSE_LINE = 65536  # status line and each header line from servers


class ServerProtocol(ResponseHandler):
    """aiohttp's ResponseHandler, with a framing error in a response body reaching the
    body's reader. aiohttp's C parser drops its payload before it raises, so
    ResponseHandler fails only its message queue (and drops the read timeout): a reader
    of the body would wait forever for a server that sent a malformed chunk
    (tests/functional/test_backends.py). ``_payload`` is aiohttp's current body.

    A new parser is made for every exchange (``set_response_params``): bytes a server
    sent past the end of its last response (a body on a 304, a length that counted
    characters) may have started a message inside the old one, which would glue them
    onto the next response (tests/functional/test_backends.py). ``pooled``: idle in
    the pool; whatever arrives then answers nobody and closes the connection."""

    pooled = False

    def data_received(self, data: bytes) -> None:
        if self.pooled and data:
            self.pooled = False
            if self.transport is not None:
                self.transport.close()  # an answer nobody asked for: never served
            return
        payload = self._payload
        super().data_received(data)
        failed = self.exception()
        if (
            failed is not None
            and payload is not None
            and not payload.is_eof()
            and payload.exception() is None
        ):
            payload.set_exception(aiohttp.ClientPayloadError(f"response body: {failed}"))


class StaleConnection(Exception):
    """A pooled connection died before answering; nothing was processed by the server
    that can be told apart from a lost request, so only replayable requests retry."""


@dataclass(slots=True)
class RequestBody:
    """What follows the request head: nothing, bytes already read, or a stream
    (written raw for Content-Length framing, re-chunked for chunked framing)."""

    data: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    chunked: bool = False


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    reason: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content_length: int | None
    payload: aiohttp.StreamReader
    protocol: ServerProtocol
    connect_seconds: float


class ServerConnections:
    """Keep-alive connections to one server."""

    def __init__(
        self, address: HostPort, timeouts: Timeouts, tls: BackendTlsRuntime | None = None
    ) -> None:
        self.address = address
        self.timeouts = timeouts
        self.tls = tls
        self._idle: collections.deque[tuple[ServerProtocol, float]] = collections.deque()

    async def _connect(self, preamble: bytes) -> ServerProtocol:
        loop = asyncio.get_running_loop()
        _, protocol = await connect_server(
            lambda: ServerProtocol(loop), self.address, self.timeouts.connect, self.tls, preamble
        )
        return protocol

    def _pooled(self) -> ServerProtocol | None:
        now = time.monotonic()
        while self._idle:
            protocol, since = self._idle.pop()
            protocol.pooled = False
            fresh = now - since < IDLE_SECONDS
            if protocol.is_connected() and not protocol.should_close and fresh:
                return protocol
            protocol.close()
        return None

    def release(self, protocol: ServerProtocol, reusable: bool) -> None:
        if reusable and not protocol.should_close and len(self._idle) < MAX_IDLE:
            protocol.pooled = True
            self._idle.append((protocol, time.monotonic()))
        else:
            protocol.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[0].close()

    async def exchange(
        self,
        method: str,
        head: bytes,
        body: RequestBody,
        *,
        fresh: bool = False,
        preamble: bytes = b"",
    ) -> UpstreamResponse:
        """Send one request and wait for the response head.

        Raises ConnectError (nothing sent), StaleConnection (a pooled connection died
        before any response byte), aiohttp.SocketTimeoutError (server silent), or
        aiohttp.ClientError (bad or cut response)."""
        protocol = None if fresh or preamble else self._pooled()
        connect_seconds = 0.0
        reused = protocol is not None
        if protocol is None:
            started = time.monotonic()
            protocol = await self._connect(preamble)
            connect_seconds = time.monotonic() - started
            preamble = b""  # sent: before the TLS handshake, if any
        protocol.set_response_params(
            skip_payload=method == "HEAD",
            read_until_eof=False,
            auto_decompress=False,
            read_timeout=self.timeouts.server,
            read_bufsize=2**16,
            max_line_size=MAX_RESPONSE_LINE,
            max_field_size=MAX_RESPONSE_LINE,
            max_headers=256,
        )
        try:
            await _write_request(protocol, preamble + head, body, self.timeouts.server)
            protocol.start_timeout()
            message, payload = await protocol.read()
            while 100 <= message.code < 200 and message.code != 101:  # 103 Early Hints...
                message, payload = await protocol.read()
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError) as exc:
            # (SocketTimeoutError is a ServerTimeoutError, not one of these)
            protocol.close()
            if reused and not isinstance(exc, aiohttp.SocketTimeoutError):
                raise StaleConnection(str(exc) or type(exc).__name__) from exc
            raise
        except BaseException:
            protocol.close()
            raise
        length = message.headers.get("Content-Length")
        return UpstreamResponse(
            status=message.code,
            reason=message.reason,
            raw_headers=message.raw_headers,
            content_length=int(length) if length is not None and length.isdigit() else None,
            payload=payload,
            protocol=protocol,
            connect_seconds=connect_seconds,
        )


async def _write_request(
    protocol: ServerProtocol, head: bytes, body: RequestBody, server_timeout: float
) -> None:
    """Write one request; a server that stops reading the body for ``server_timeout``
    raises TimeoutError."""
    transport = protocol.transport
    if transport is None or transport.is_closing():
        raise aiohttp.ServerDisconnectedError()
    if body.stream is None:
        transport.write(head + body.data if body.data else head)
        return
    transport.write(head)
    async for chunk in body.stream:
        if not chunk:
            continue
        if transport.is_closing():
            raise aiohttp.ServerDisconnectedError()
        transport.write(frame_chunk(chunk) if body.chunked else chunk)
        if protocol.writing_paused:
            async with asyncio.timeout(server_timeout):
                await protocol._drain_helper()
    if body.chunked:
        transport.write(LAST_CHUNK)
