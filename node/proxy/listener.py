"""The listening socket of one frontend (``mode: http`` or ``tcp``) and its accept loop.

floatgate runs its own accept loop instead of ``loop.create_server`` so that
``maxconn`` works like HAProxy's: past the limit, new connections wait in the kernel's
accept backlog instead of being accepted and starved. The socket is bound with
``IP_FREEBIND``, so a standby binds the VIP before it holds it. Accepted sockets go to
the frontend's handler (node.proxy.session.Handler); TLS handshakes and PROXY headers
run in tasks of their own, bounded per frontend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from node.config.model import HostPort
from node.proxy.errors import ListenError
from node.proxy.session import Handler, Phase, Served
from node.proxy.wire.proxyproto import ProxyHeaderError, decode, needed
from node.proxy.wire.synfilter import accept_queue, hold_syns, release_syns
from node.proxy.wire.trust import is_trusted
from node.tls.material import FrontendTlsRuntime

if TYPE_CHECKING:
    from node.observe.metrics import FrontendMeters

log = logging.getLogger("floatgate.listener")

MAX_HANDSHAKES = 1024  # TLS handshakes in progress per frontend
MAX_ACCEPT = 64  # clients taken from the backlog per wake-up (HAProxy's tune.maxaccept)
IP_FREEBIND = 15  # linux/in.h


class Listener:
    def __init__(
        self,
        handler: Handler,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket | None = None,
    ) -> None:
        """``sock``: a listening socket made elsewhere (a worker process inherits the
        node process's); without one, start() opens it."""
        self._handler = handler
        self.loop = loop
        self._given = sock
        self.connections: set[Served] = set()
        self._slot_freed = asyncio.Event()
        self._socket: socket.socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # TLS handshakes and PROXY headers run in their own tasks, at most
        # MAX_HANDSHAKES at once: past that the oldest is dropped (it is the likeliest
        # to be a silent one), so a flood never blocks accepting.
        self._handshake_tasks: dict[asyncio.Task[None], float] = {}
        # Hand-overs of accepted sockets to transports that the accept loop's stop did
        # not wait for (see _hand_over): the drain waits for them too.
        self._handing: set[asyncio.Future[Any]] = set()
        self.accept_failure: str | None = None  # why the accept loop last ended
        # The node's own probes (node.proxy.selfcheck), by source address: accepted
        # like any client, but not counted as one.
        self.probes: set[tuple[str, int]] = set()
        self.probes_accepted: set[tuple[str, int]] = set()
        self._stalled_until = 0.0  # drill fault frontend-stall
        self._stuck_since: float | None = None  # the loop is neither waiting nor done
        self._backlog_waiter: asyncio.Future[None] | None = None

    @property
    def name(self) -> str:
        return self._handler.route.frontend.name

    @property
    def bind(self) -> HostPort:
        return self._handler.route.frontend.bind

    @property
    def _meters(self) -> FrontendMeters:
        return self._handler.route.access.meters.frontend(self.name)

    def start(self) -> None:
        self._socket = self._given if self._given is not None else open_socket(self.bind)
        self._given = None
        self._tasks = [
            asyncio.create_task(self._accepting(self._socket)),
            asyncio.create_task(self._sweep_loop()),
        ]
        log.info("frontend %s listening on %s", self.name, self.bind)

    @property
    def handler(self) -> Handler:
        return self._handler

    def update(self, handler: Handler) -> None:
        """Reload: new requests use the new route; existing connections stay open."""
        self._handler = handler
        self._slot_freed.set()

    def connection_closed(self, conn: Served) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._slot_freed.set()

    def serving(self, stuck_after: float = 1.0) -> str | None:
        """None while the frontend can accept; else why not (for the node's health):
        the socket is closed, the accept loop ended, or the loop has been busy with one
        connection (or stopped) for ``stuck_after`` seconds instead of accepting."""
        if self._socket is None:
            return "listener closed"
        if self._socket.fileno() < 0:
            return "listening socket closed"
        if not self._tasks or self._tasks[0].done():
            return f"accept loop ended: {self.accept_failure or 'unknown reason'}"
        stuck = self._stuck_since
        if stuck is not None and (held := time.monotonic() - stuck) >= stuck_after:
            return f"not accepting for {held:.1f}s"
        return None

    def saturated(self) -> bool:
        """At maxconn: new clients wait in the backlog (serving at capacity, not broken)."""
        return len(self.connections) >= self._handler.route.frontend.maxconn

    def stall(self, seconds: float) -> None:
        """Drill fault: stop accepting for ``seconds`` (connections wait in the backlog)."""
        self._stalled_until = time.monotonic() + seconds
        self._stuck_since = self._stuck_since or time.monotonic()

    def close_socket(self) -> None:
        """Drill fault: close the listening socket, as a bug in the process could."""
        if self._socket is not None:
            with contextlib.suppress(OSError, ValueError):
                self.loop.remove_reader(self._socket.fileno())
            self._socket.close()
            if self._backlog_waiter is not None and not self._backlog_waiter.done():
                self._backlog_waiter.set_result(None)  # the loop sees the closed socket

    async def _accepting(self, sock: socket.socket) -> None:
        """Run the accept loop; a loop that ends anyway (a bug) is logged with its
        reason, counted and restarted."""
        while True:
            try:
                await self._accept_loop(sock)
                return  # it returns only once the listening socket is gone
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.accept_failure = f"{type(exc).__name__}: {exc}"
                self._meters.accept_errors += 1
                log.exception("frontend %s: accept loop failed (%s); restarting it",
                              self.name, self.accept_failure)  # fmt: skip
                if sock.fileno() < 0:
                    return  # the socket is gone: nothing to restart on
                await asyncio.sleep(0.1)

    async def _accept_loop(self, sock: socket.socket) -> None:
        """Take clients from the backlog and hand them over. Nothing is awaited between
        the kernel's accept and the hand-over: a stop (a cancel of this task) can land
        only while waiting for the socket to become readable, never on a client already
        taken (it would be closed unserved, a reset under a worker generation that
        drains while the next one serves the same socket)."""
        while True:
            self._stuck_since = None  # waiting for a free place or a client is not stuck
            while self.saturated():
                # Past maxconn, new clients wait in the kernel backlog, as with HAProxy.
                self._slot_freed.clear()
                await self._slot_freed.wait()
            while (pause := self._stalled_until - time.monotonic()) > 0:
                self._stuck_since = self._stuck_since or time.monotonic()
                await asyncio.sleep(pause)  # drill: a frontend that stopped accepting
            self._stuck_since = None
            try:
                batch = self._take(sock)
            except OSError as exc:
                if sock.fileno() < 0:
                    self.accept_failure = "the listening socket was closed"
                    log.error("frontend %s: %s: not accepting any more", self.name,
                              self.accept_failure)  # fmt: skip
                    return
                self._meters.accept_errors += 1
                log.error("frontend %s: accept failed: %s; retrying", self.name, exc)
                await asyncio.sleep(0.1)
                continue
            if not batch:
                await self._backlog_ready(sock)
                continue
            self._stuck_since = time.monotonic()  # until it waits again
            # Every client already waiting in the backlog is taken now, not one per
            # turn of the event loop (a busy loop made a burst of new clients wait a
            # turn each): HAProxy's tune.maxaccept.
            handing = []
            for accepted in batch:
                started = self._start_serving(*accepted)
                if started is not None:
                    handing.append(started)
            if handing:
                await self._handed_over(handing)

    def _take(self, sock: socket.socket) -> list[tuple[socket.socket, Any]]:
        """The clients waiting in the accept backlog, taken without waiting: at most
        MAX_ACCEPT, and no more than maxconn leaves room for. Raises OSError when the
        first accept fails for another reason than an empty backlog."""
        room = self._handler.route.frontend.maxconn - len(self.connections)
        taken: list[tuple[socket.socket, Any]] = []
        while len(taken) < min(room, MAX_ACCEPT):
            try:
                client, address = sock.accept()
            except (BlockingIOError, ConnectionAbortedError):
                break  # none left, or one reset before it was taken (the next wake says)
            except OSError:
                if taken:
                    break  # served first; the next round reports it
                raise
            client.setblocking(False)
            taken.append((client, address))
        return taken

    async def _backlog_ready(self, sock: socket.socket) -> None:
        """Wait until a client is in the backlog (or the socket was closed)."""
        ready: asyncio.Future[None] = self.loop.create_future()
        fd = sock.fileno()
        if fd < 0:
            return
        self._backlog_waiter = ready

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self.loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            self._backlog_waiter = None
            with contextlib.suppress(OSError, ValueError):
                self.loop.remove_reader(fd)

    def _start_serving(self, client: socket.socket, address: Any) -> asyncio.Future[Any] | None:
        """Give one accepted client to its handler; returns the hand-over of a plain
        socket to its transport (awaited with the rest of the batch)."""
        probe = False
        if self.probes and tuple(address[:2]) in self.probes:
            self.probes_accepted.add(tuple(address[:2]))
            probe = True
        else:
            self._meters.connections += 1
        try:
            handing = self._serve_accepted(client, probe)
        except Exception as exc:  # contained: one connection never ends the loop
            # e.g. the peer reset it before it could be served (getpeername: ENOTCONN)
            self._meters.accept_errors += 1
            log.debug("frontend %s: accepted connection failed at once: %r", self.name, exc)
            client.close()
            return None
        if handing is not None:  # tracked at once: a drain that starts now waits for it
            self._handing.add(handing)
            handing.add_done_callback(self._handed)
        return handing

    def _serve_accepted(
        self, client: socket.socket, probe: bool = False
    ) -> asyncio.Future[Any] | None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self._handler.route.tls
        frontend = self._handler.route.frontend
        if tls is None and not frontend.accept_proxy:
            handler = self._handler
            return asyncio.ensure_future(
                self.loop.connect_accepted_socket(lambda: handler.new_protocol(self, None), client)
            )
        peer = client.getpeername()[0]
        if len(self._handshake_tasks) >= MAX_HANDSHAKES:
            oldest = next(iter(self._handshake_tasks))
            self._handshake_tasks.pop(oldest)
            oldest.cancel()
        expect_header = not probe and is_trusted(peer, frontend.accept_proxy)
        task = asyncio.create_task(self._start(client, tls, expect_header, probe))
        self._handshake_tasks[task] = time.monotonic()
        task.add_done_callback(self._handshake_done)
        return None

    async def _handed_over(self, handing: list[asyncio.Future[Any]]) -> None:
        """Wait for a batch of plain sockets to reach their transports, shielded from
        cancellation (see _hand_over); a failed one was closed by its transport
        (closing it again could close a descriptor number reused by then)."""
        batch = asyncio.gather(*handing, return_exceptions=True)
        try:
            outcomes = await asyncio.shield(batch)
        except asyncio.CancelledError:
            batch.add_done_callback(_consume)  # the drain waits for them (_handing)
            raise
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                self._meters.accept_errors += 1
                log.debug("frontend %s: accepted connection failed at once: %r", self.name,
                          outcome)  # fmt: skip

    async def _hand_over(
        self, factory: Callable[[], asyncio.BaseProtocol], client: socket.socket
    ) -> None:
        """Give a plain accepted socket to a transport, shielded from cancellation:
        cancelled (the listener stopping) while the transport waits for its protocol's
        connection_made, uvloop closes the transport without ever calling
        connection_lost, and the connection would stay counted (the drain then waits
        for it the whole shutdown_grace). Finished, it is an ordinary connection that
        the drain closes."""
        handing = asyncio.ensure_future(self.loop.connect_accepted_socket(factory, client))
        try:
            await asyncio.shield(handing)
        except asyncio.CancelledError:
            self._handing.add(handing)
            handing.add_done_callback(self._handed)
            raise

    def _handed(self, future: asyncio.Future[Any]) -> None:
        self._handing.discard(future)
        _consume(future)

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        self._handshake_tasks.pop(task, None)

    async def _start(
        self,
        client: socket.socket,
        tls: FrontendTlsRuntime | None,
        expect_header: bool,
        probe: bool = False,
    ) -> None:
        handed = False
        try:
            source = await self._proxy_header(client) if expect_header else None
            handed = True  # from here on a transport owns (and closes) the socket

            def factory() -> asyncio.BaseProtocol:
                return self._handler.new_protocol(self, source)

            if tls is None:
                await self._hand_over(factory, client)
            else:
                handshakes = self._meters.handshakes
                try:
                    await self.loop.connect_accepted_socket(
                        factory,
                        client,
                        ssl=tls.selector.default,
                        ssl_handshake_timeout=tls.config.handshake_timeout,
                    )
                except BaseException as exc:
                    if not probe:  # the node's own probes are not counted
                        handshakes[handshake_result(exc)] += 1
                    raise
                if not probe:
                    handshakes["ok"] += 1
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, ProxyHeaderError) as exc:
            log.debug("frontend %s: connection start failed: %r", self.name, exc)
            if not handed:
                client.close()
        except asyncio.CancelledError:
            if not handed:
                client.close()  # dropped for a newer handshake, or stopping
            raise

    async def _proxy_header(self, client: socket.socket) -> tuple[str, int] | None:
        """Consume exactly one PROXY header (peek, then read its length) and return
        the client address it names (None for LOCAL/UNKNOWN)."""
        deadline = self._handler.route.frontend.hello_timeout
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
            timeouts = self._handler.route.frontend.timeouts
            shortest = min(timeouts.client, timeouts.request_headers, timeouts.keep_alive,
                           timeouts.tunnel_idle)  # fmt: skip
            await asyncio.sleep(min(1.0, max(0.02, shortest / 4)))
            now = time.monotonic()
            for conn in list(self.connections):
                try:
                    conn.expire(now)
                except Exception:  # one connection's surprise must not end the sweeps
                    log.exception("frontend %s: deadline check failed", self.name)
                    conn.abort()

    def hold_new(self, hold: bool) -> None:
        """While held, new SYNs are dropped (clients retransmit them), not refused."""
        if self._socket is not None and self._socket.fileno() >= 0:
            (hold_syns if hold else release_syns)(self._socket)

    def quiet(self, now: float) -> bool:
        """Nothing waiting in the accept queue, no handshake in progress, and every
        connection between exchanges."""
        sock = self._socket
        if sock is not None and sock.fileno() >= 0 and accept_queue(sock) > 0:
            return False
        return not self._handshake_tasks and all(c.quiet(now) for c in self.connections)

    def close_idle(self) -> None:
        """Close keep-alive connections that are between requests."""
        for conn in list(self.connections):
            if conn.phase is Phase.IDLE and conn.tunnel is None:
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

    async def drain(self, grace: float, close_idle: bool = True) -> None:
        """Finish in-flight requests (up to ``grace`` seconds), then close everything.
        ``close_idle=False`` (an old worker generation while a new one serves): a
        connection between requests is not closed under a client that may be sending
        on it; its next request is answered with ``Connection: close`` (HAProxy's
        idle-close-on-response), or its keep-alive timeout ends it."""
        self.stop_accepting()
        deadline = time.monotonic() + grace
        while True:
            for conn in list(self.connections):  # also one accepted as the loop stopped
                conn.closing = True
                if close_idle and conn.phase is not Phase.BUSY and conn.tunnel is None:
                    conn.close()
            if not (self.connections or self._handing) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a hand-over nobody awaits any more (no 'never retrieved'
    warning); the transport, if it was made, belongs to the connection by now."""
    if not future.cancelled():
        future.exception()


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
