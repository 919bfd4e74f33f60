"""Listening sockets for one HTTP frontend.

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
import ssl
import time
from typing import Any, Protocol

from node.config.model import HostPort
from node.proxy.connection import BUSY, IDLE
from node.proxy.errors import ListenError
from node.proxy.headers import is_trusted
from node.proxy.http import HttpProxy
from node.proxy.proxyproto import ProxyHeaderError, decode, needed
from node.proxy.synfilter import accept_queue, hold_syns, release_syns
from node.proxy.tcp import TcpProxy
from node.tls.material import FrontendTlsRuntime

log = logging.getLogger("floatgate.listener")

MAX_HANDSHAKES = 1024  # TLS handshakes in progress per frontend
IP_FREEBIND = 15  # linux/in.h


class Served(Protocol):
    """What the listener needs of a connection it serves (HTTP or passthrough)."""

    phase: int
    tunnel: Any
    closing: bool
    proxied: tuple[str, int] | None  # the client address a PROXY header named

    def close(self) -> None: ...
    def abort(self) -> None: ...
    def expire(self, now: float, limit: float) -> None: ...
    def quiet(self, now: float) -> bool: ...


class Listener:
    def __init__(self, proxy: HttpProxy | TcpProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self.loop = loop
        self.connections: set[Served] = set()
        self._slot_freed = asyncio.Event()
        self._socket: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Handshakes run in their own tasks, bounded: a flood of half-open handshakes
        # costs at most this many sockets and never blocks accepting.
        self._handshakes = asyncio.Semaphore(MAX_HANDSHAKES)
        self._handshake_tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.proxy.route.frontend.name

    @property
    def bind(self) -> HostPort:
        return self.proxy.route.frontend.bind

    def start(self) -> None:
        self._socket = open_socket(self.bind)
        self._tasks = [
            asyncio.create_task(self._accept_loop(self._socket)),
            asyncio.create_task(self._sweep_loop()),
        ]
        log.info("frontend %s listening on %s", self.name, self.bind)

    def update(self, proxy: HttpProxy | TcpProxy) -> None:
        """Reload: new requests use the new route; existing connections stay open."""
        self.proxy = proxy
        self._slot_freed.set()

    def connection_closed(self, conn: Served) -> None:
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
            self.proxy.route.access.meters.frontend(self.name).connections += 1
            tls = self.proxy.route.tls
            frontend = self.proxy.route.frontend
            peer = client.getpeername()[0]
            if tls is None and not frontend.accept_proxy:
                try:
                    await self.loop.connect_accepted_socket(
                        lambda: self.proxy.new_protocol(self), client
                    )
                except OSError:
                    client.close()
                continue
            # TLS handshakes and PROXY headers run in their own tasks, bounded: a flood
            # of half-open connections costs at most MAX_HANDSHAKES sockets and never
            # blocks accepting.
            await self._handshakes.acquire()
            expect_header = is_trusted(peer, frontend.accept_proxy)
            task = asyncio.create_task(self._start(client, tls, expect_header))
            self._handshake_tasks.add(task)
            task.add_done_callback(self._handshake_tasks.discard)

    async def _start(
        self, client: socket.socket, tls: FrontendTlsRuntime | None, expect_header: bool
    ) -> None:
        try:
            source = await self._proxy_header(client) if expect_header else None

            def factory() -> asyncio.Protocol:
                protocol = self.proxy.new_protocol(self)
                protocol.proxied = source
                return protocol

            if tls is None:
                await self.loop.connect_accepted_socket(factory, client)
            else:
                handshakes = self.proxy.route.access.meters.frontend(self.name).handshakes
                try:
                    await self.loop.connect_accepted_socket(
                        factory,
                        client,
                        ssl=tls.selector.default,
                        ssl_handshake_timeout=tls.config.handshake_timeout,
                    )
                except BaseException as exc:
                    handshakes[handshake_result(exc)] += 1
                    raise
                handshakes["ok"] += 1
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, ProxyHeaderError) as exc:
            log.debug("frontend %s: connection start failed: %r", self.name, exc)
            client.close()
        finally:
            self._handshakes.release()

    async def _proxy_header(self, client: socket.socket) -> tuple[str, int] | None:
        """Consume exactly one PROXY header (peek, then read its length) and return
        the client address it names (None for LOCAL/UNKNOWN)."""
        deadline = self.proxy.route.frontend.hello_timeout
        async with asyncio.timeout(deadline):
            while True:
                await self._readable(client)
                prefix = client.recv(2064, socket.MSG_PEEK)
                if not prefix:
                    raise ConnectionError("closed before the PROXY header")
                want = needed(prefix)
                if want and len(prefix) >= want:
                    return decode(client.recv(want)).src
                await asyncio.sleep(0.005)  # partial header: let more bytes arrive

    async def _readable(self, sock: socket.socket) -> None:
        ready: asyncio.Future[None] = self.loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self.loop.add_reader(sock.fileno(), wake)
        try:
            await ready
        finally:
            self.loop.remove_reader(sock.fileno())

    async def _sweep_loop(self) -> None:
        while True:
            limit = self.proxy.route.frontend.timeouts.client
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            for conn in list(self.connections):
                conn.expire(now, limit)

    def hold_new(self, hold: bool) -> None:
        """While held, new SYNs are dropped (clients retransmit them), not refused."""
        if self._socket is not None:
            (hold_syns if hold else release_syns)(self._socket)

    def quiet(self, now: float) -> bool:
        """Nothing waiting in the accept queue, no handshake in progress, and every
        connection between exchanges."""
        if self._socket is not None and accept_queue(self._socket) > 0:
            return False
        return not self._handshake_tasks and all(c.quiet(now) for c in self.connections)

    def close_idle(self) -> None:
        """Close keep-alive connections that are between requests."""
        for conn in list(self.connections):
            if conn.phase == IDLE and conn.tunnel is None:
                conn.close()

    def stop_accepting(self) -> None:
        for task in [*self._tasks, *self._handshake_tasks]:
            task.cancel()
        self._tasks.clear()
        if self._socket is not None:
            with contextlib.suppress(OSError, ValueError):
                self.loop.remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None

    async def drain(self, grace: float) -> None:
        """Finish in-flight requests (up to ``grace`` seconds), then close everything."""
        self.stop_accepting()
        for conn in list(self.connections):
            conn.closing = True
            if conn.phase != BUSY and conn.tunnel is None:
                conn.close()
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()


def handshake_result(exc: BaseException) -> str:
    """A bounded word for a failed TLS handshake (a metric label)."""
    if isinstance(exc, ssl.SSLError):
        return "failed"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "aborted"


def open_socket(bind: HostPort) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET:
            # A standby binds to the VIP before it holds it, so a takeover needs no bind.
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((bind.host, bind.port))
        sock.listen(4096)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {bind}: {exc.strerror or exc}") from exc
    return sock
