"""Listening sockets and client connections for one HTTP frontend.

floatgate runs its own accept loop instead of ``loop.create_server`` so that
``maxconn`` works like HAProxy's: past the limit, new connections wait in the kernel's
accept backlog instead of being accepted and starved. The socket is created here, which
is also where the cluster will pre-bind to the VIP with ``IP_FREEBIND``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from node.config.model import FrontendConfig, HostPort
from node.proxy.errors import ListenError
from node.proxy.http import HttpProxy, plain_response

log = logging.getLogger("floatgate.listener")

_IDLE, _READING, _BUSY = 0, 1, 2
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n"
)


class FrontendConnection(RequestHandler):
    """One client connection. Tracks whether it is idle, receiving a request's headers,
    or being served, so the frontend's sweeper can apply ``timeout.client``."""

    def __init__(self, listener: Listener, **kwargs: Any) -> None:
        super().__init__(listener.server, loop=listener.loop, **kwargs)
        self.listener = listener
        self.phase = _IDLE
        self.since = time.monotonic()
        self.request_started: float | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.listener.connections.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.listener.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if self.phase == _IDLE:
            self.phase = _READING
            self.since = self.request_started = time.monotonic()
        super().data_received(data)

    def begin(self) -> None:
        self.phase = _BUSY

    def end(self) -> None:
        self.phase = _IDLE
        self.since = time.monotonic()
        self.request_started = None

    def expire(self, now: float, limit: float) -> None:
        """Close the connection if it has been idle or sending headers for too long."""
        if self.phase == _BUSY or now - self.since < limit or self.transport is None:
            return
        if self.phase == _READING:
            self.transport.write(_TIMEOUT_408)
            log.info("%s: client too slow to send request headers: 408", self.listener.name)
        self.force_close()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Parser errors and internal errors: a short plain-text answer, never a traceback."""
        if isinstance(exc, LineTooLong):
            status, text = _too_long(exc, self.listener.proxy.route.frontend.max_uri_length)
        elif isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower():
            status, text = 431, "Request Header Fields Too Large"
        elif isinstance(exc, BadHttpMessage):
            status, text = 400, "Bad Request"
        elif isinstance(exc, ConnectionError):
            # The client went away mid-exchange: routine, not an internal error.
            log.debug("%s: client %s disconnected: %r", self.listener.name, _peer(self), exc)
            status, text = 499, "Client Closed Request"
        elif status == 500:
            if exc is not None:
                log.error("%s: internal error: %r", self.listener.name, exc)
            text = "Internal Server Error"
        else:
            text = message or "Error"
        if isinstance(exc, BadHttpMessage):
            log.info("%s: rejected request from %s: %s", self.listener.name,
                     _peer(self), str(exc)[:200])  # fmt: skip
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        return plain_response(status, text, close=True)


def _too_long(exc: LineTooLong, uri_limit: int) -> tuple[int, str]:
    """The parser reports the offending bytes and the limit it hit: the request target
    (starts with / or a scheme, limit max_uri_length) -> 414, anything else -> 431."""
    line, limit = (*exc.args, "", "")[:2]
    head = bytes(line[:8]) if isinstance(line, bytes | bytearray) else str(line)[:8].encode()
    if str(limit) == str(uri_limit) and head.startswith((b"/", b"*", b"http:", b"https:")):
        return 414, "URI Too Long"
    return 431, "Request Header Fields Too Large"


def _peer(conn: RequestHandler) -> str:
    transport = conn.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if peer else "-"


class FrontendServer(web.Server):
    """aiohttp's low-level server, creating :class:`FrontendConnection` handlers."""

    def __init__(self, listener: Listener, **kwargs: Any) -> None:
        super().__init__(listener.dispatch, loop=listener.loop, **kwargs)
        self.listener = listener

    def __call__(self) -> RequestHandler:
        return FrontendConnection(self.listener, **self._kwargs)


class Listener:
    def __init__(self, proxy: HttpProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self.loop = loop
        self.connections: set[FrontendConnection] = set()
        self.server = FrontendServer(self, **self._limits(proxy.route.frontend))
        self._slot_freed = asyncio.Event()
        self._socket: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return self.proxy.route.frontend.name

    @property
    def bind(self) -> HostPort:
        return self.proxy.route.frontend.bind

    @staticmethod
    def _limits(frontend: FrontendConfig) -> dict[str, Any]:
        return {
            "max_line_size": frontend.max_uri_length,
            "max_field_size": frontend.max_header_size,
            "keepalive_timeout": 86400.0,  # idle connections are closed by our sweeper
            "access_log": None,
            "lingering_time": 2.0,
        }

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        conn: Any = request.protocol
        conn.begin()
        try:
            return await self.proxy(request)
        finally:
            conn.end()

    def start(self) -> None:
        self._socket = open_socket(self.bind)
        self._tasks = [
            asyncio.create_task(self._accept_loop(self._socket)),
            asyncio.create_task(self._sweep_loop()),
        ]
        log.info("frontend %s listening on %s", self.name, self.bind)

    def update(self, proxy: HttpProxy) -> None:
        """Reload: new requests use the new route; existing connections stay open."""
        frontend = proxy.route.frontend
        self.proxy = proxy
        self.server._kwargs.update(self._limits(frontend))
        self._slot_freed.set()

    def connection_closed(self, conn: FrontendConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._slot_freed.set()

    async def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            while len(self.connections) >= self.proxy.route.frontend.maxconn:
                # Past maxconn, new clients wait in the kernel backlog, as with HAProxy.
                self._slot_freed.clear()
                await self._slot_freed.wait()
            try:
                client, _ = await self.loop.sock_accept(sock)
            except OSError as exc:
                log.error("frontend %s: accept failed: %s; retrying", self.name, exc)
                await asyncio.sleep(0.1)
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await self.loop.connect_accepted_socket(self.server, client)
            except OSError:
                client.close()

    async def _sweep_loop(self) -> None:
        while True:
            limit = self.proxy.route.frontend.timeouts.client
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            for conn in list(self.connections):
                conn.expire(now, limit)

    def stop_accepting(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self.loop.remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None

    async def drain(self, grace: float) -> None:
        """Finish in-flight requests (up to ``grace`` seconds), then close everything."""
        self.stop_accepting()
        for conn in list(self.connections):
            if conn.phase != _BUSY:
                conn.force_close()
            else:
                conn.close()
        deadline = time.monotonic() + grace
        while any(c.phase == _BUSY for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.server.shutdown(0.1)
        for conn in list(self.connections):
            conn.force_close()


def open_socket(bind: HostPort) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind.host, bind.port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {bind}: {exc.strerror or exc}") from exc
    return sock
