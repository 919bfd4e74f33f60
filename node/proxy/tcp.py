"""TLS passthrough (``mode: tcp``): read the ClientHello without terminating TLS, pick a
backend by SNI, then relay bytes both ways unchanged. The server sees exactly the
client's bytes; the client sees the server's certificate.

Each direction uses asyncio's flow control: when one side's write buffer fills, the
other side stops reading. A half-close (EOF) is passed on; the connection ends when
both directions are done, or either side resets.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from node.config.model import FrontendConfig
from node.proxy.accesslog import AccessEntry, AccessLog
from node.proxy.errors import ProxyError
from node.proxy.session import Host, Phase
from node.proxy.upstream.connect import ConnectError, connect_server
from node.proxy.upstream.pool import BackendPool, Server, ServerSlot
from node.proxy.wire.clienthello import MalformedHello, NotTls, parse_client_hello
from node.proxy.wire.proxyproto import encode as encode_proxy_header
from node.tls.names import NameTable

log = logging.getLogger("floatgate.tcp")


class TcpState(enum.Enum):
    HELLO = "hello"  # reading the ClientHello (hello_timeout)
    CONNECTING = "connecting"  # a server is being connected
    RELAY = "relay"  # bytes flow both ways (timeout.tunnel)


HELLO, CONNECTING, RELAY = TcpState.HELLO, TcpState.CONNECTING, TcpState.RELAY


@dataclass(frozen=True)
class TcpRoute:
    frontend: FrontendConfig
    pools: Mapping[str, BackendPool]
    access: AccessLog
    tls: None = None  # passthrough never terminates TLS
    names: NameTable[str] = field(default_factory=lambda: NameTable(()))  # SNI -> backend

    @classmethod
    def build(
        cls, frontend: FrontendConfig, pools: Mapping[str, BackendPool], access: AccessLog
    ) -> TcpRoute:
        names = NameTable((route.sni, route.backend) for route in frontend.routes)
        return cls(frontend, pools, access, None, names)

    def choose(self, sni: str | None) -> BackendPool | None:
        """Exact SNI, then wildcard (one label), then the default backend, else None."""
        name = self.names.lookup(sni) or self.frontend.default_backend
        return self.pools.get(name) if name else None


class TcpHandler:
    def __init__(self, route: TcpRoute) -> None:
        self.route = route

    def new_protocol(self, listener: Host, proxied: tuple[str, int] | None) -> TcpClient:
        return TcpClient(listener, self.route, proxied)


class TcpClient(asyncio.Protocol):
    """The client side of one passthrough connection."""

    def __init__(
        self, listener: Host, route: TcpRoute, proxied: tuple[str, int] | None = None
    ) -> None:
        self.listener = listener
        self.route = route
        self.transport: asyncio.Transport | None = None
        self.server: TcpServerSide | None = None
        self.state: TcpState = HELLO
        self.since = time.monotonic()
        self.tunnel = None
        self.closing = False
        self.buffer = bytearray()
        self.client_eof = self.server_eof = False
        self.remote = "-"
        self.proxied = proxied  # the client address a PROXY header named
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.entry: AccessEntry | None = None
        self._slot: ServerSlot | None = None  # released in _done, whatever happens
        self._connecting: asyncio.Task[None] | None = None
        self.ended_at: float | None = None  # closed on a deadline at this time

    # -- client side -------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        """READING while the ClientHello arrives (hello_timeout applies), then BUSY: a
        drain lets the relay finish within the grace period."""
        return Phase.READING if self.state is HELLO else Phase.BUSY

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = self.proxied or ((peer[0], peer[1]) if peer else ("", 0))
        self.remote = self.peer[0] or "-"
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1]) if sockname else ("", 0)
        self.listener.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.since = time.monotonic()
        if self.state is RELAY:
            assert self.server is not None and self.server.transport is not None
            self.server.transport.write(data)
            if self.entry is not None:
                self.entry.bytes_in += len(data)
            return
        self.buffer += data
        if self.state is CONNECTING:
            return
        try:
            hello = parse_client_hello(bytes(self.buffer))
        except NotTls as exc:
            if not self.route.frontend.default_backend:
                self._refuse(f"not TLS: {exc}")
                return
            hello_sni, pool = None, self.route.choose(None)
        except MalformedHello as exc:
            self._refuse(f"malformed ClientHello: {exc}")
            return
        else:
            if hello is None:
                return
            hello_sni, pool = hello.sni, self.route.choose(hello.sni)
        if pool is None:
            self._refuse(f"no route for SNI {hello_sni!r}")
            return
        self.state = CONNECTING
        assert self.transport is not None
        self.transport.pause_reading()
        self.entry = AccessEntry(
            started=self.since, headers_done=time.monotonic(), client=self.remote,
            frontend=self.route.frontend.name, backend=pool.name,
            request_line=f"TLS sni={hello_sni or '-'}", mode="tcp",
        )  # fmt: skip
        self._connecting = asyncio.get_running_loop().create_task(self._connect(pool))

    def eof_received(self) -> bool:
        if self.state is not RELAY:
            self.close()
            return False
        self.client_eof = True
        server = self.server
        if server is not None and server.transport is not None and server.transport.can_write_eof():
            server.transport.write_eof()
        self._maybe_finish()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        if self._connecting is not None:
            self._connecting.cancel()  # a client that leaves while queued frees its place
        if self.server is not None and self.server.transport is not None:
            self.server.transport.close()
        self._done(exc)
        self.listener.connection_closed(self)

    def pause_writing(self) -> None:  # our client is slow: stop reading the server
        if self.server is not None and self.server.transport is not None:
            self.server.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.server is not None and self.server.transport is not None:
            self.server.transport.resume_reading()

    # -- server side -------------------------------------------------------------------

    async def _connect(self, pool: BackendPool) -> None:
        try:
            await self._connect_server(pool)
        except Exception:  # never leave the client paused in CONNECTING
            log.exception("%s: connecting %s to a server failed", self.route.frontend.name,
                          self.remote)  # fmt: skip
            self.abort()
        finally:
            self._connecting = None
            if self.transport is None:
                self._done(None)  # the client left meanwhile: free whatever was taken

    async def _connect_server(self, pool: BackendPool) -> None:
        exclude: Server | None = None
        assert self.entry is not None
        for attempt in range(pool.config.retries + 1):
            try:
                self._slot = slot = await pool.acquire(self.remote, exclude)
            except ProxyError as exc:
                self._refuse(str(exc))
                return
            server = slot.server
            self.entry.server = server.name
            address = server.config.address
            started = time.monotonic()
            version = pool.config.send_proxy
            preamble = encode_proxy_header(version, self.peer, self.local) if version else b""
            try:
                _, side = await connect_server(
                    lambda: TcpServerSide(self), address, pool.config.timeouts.connect,
                    preamble=preamble,
                )  # fmt: skip
            except ConnectError as exc:
                slot.release()
                self._slot = None
                pool.connect_failed(server, str(exc))
                self.entry.retries = attempt
                exclude = server
                continue
            self.entry.connect = time.monotonic() - started
            pool.connect_succeeded(server)
            if self.transport is None:  # the client left while we connected
                side.transport.close()  # type: ignore[union-attr]
                return
            self.server = side
            assert side.transport is not None
            side.transport.write(bytes(self.buffer))
            self.entry.bytes_in = len(self.buffer)
            self.buffer.clear()
            self.state = RELAY
            self.transport.resume_reading()
            return
        self._refuse(f"could not connect to any server of backend {pool.name}")

    def on_server_data(self, data: bytes) -> None:
        self.since = time.monotonic()
        if self.transport is not None:
            self.transport.write(data)
            if self.entry is not None:
                self.entry.bytes_out += len(data)

    def on_server_eof(self) -> None:
        self.server_eof = True
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        self._maybe_finish()

    def on_server_lost(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- end -----------------------------------------------------------------------------

    def _maybe_finish(self) -> None:
        if self.client_eof and self.server_eof:
            self.close()

    def _refuse(self, reason: str) -> None:
        log.info(
            "%s: closing connection from %s: %s", self.route.frontend.name, self.remote, reason
        )
        if self.entry is not None:
            self.entry.termination = reason[:80]
        self.close()

    def _done(self, exc: BaseException | None) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        if self.entry is not None:
            self.entry.finished = time.monotonic()
            self.entry.status = 200 if self.state is RELAY else 503
            self.route.access.write(self.entry)
            self.entry = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.server is not None and self.server.transport is not None:
            self.server.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        if self.server is not None and self.server.transport is not None:
            self.server.transport.abort()

    def quiet(self, now: float) -> bool:
        """A passthrough stream has no exchange boundaries floatgate can see."""
        return False

    def expire(self, now: float) -> None:
        """Sweeper: hello_timeout before a route is chosen, ``timeout.tunnel`` idleness
        once relaying (waiting for a server is bounded by timeout.queue/connect)."""
        if self.state is CONNECTING:
            return
        if self.ended_at is not None:
            if now - self.ended_at >= 1.0:  # a peer that does not read keeps the close waiting
                self.abort()
            return
        frontend = self.route.frontend
        allowed = frontend.hello_timeout if self.state is HELLO else frontend.timeouts.tunnel_idle
        if now - self.since >= allowed:
            if self.state is RELAY:
                meters = self.route.access.meters.frontend(frontend.name)
                meters.timeouts["tunnel"] += 1
            self.ended_at = now
            self._refuse("ClientHello timeout" if self.state is HELLO else "idle timeout")


class TcpServerSide(asyncio.Protocol):
    def __init__(self, client: TcpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client.on_server_data(data)

    def eof_received(self) -> bool:
        self.client.on_server_eof()
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        self.client.on_server_lost()

    def pause_writing(self) -> None:  # the server is slow: stop reading the client
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None and self.client.state is RELAY:
            self.client.transport.resume_reading()
