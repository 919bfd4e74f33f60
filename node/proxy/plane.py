"""The data plane as a whole: frontends (listeners) and backends (pools) built from a
:class:`ClusterConfig`, started, reloaded in place, and drained."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import replace

from node.config.model import AccessLogConfig, ClusterConfig, FrontendConfig
from node.observe.metrics import Meters
from node.proxy.accesslog import AccessLog
from node.proxy.errors import ListenError
from node.proxy.http.handler import HttpHandler, HttpRoute
from node.proxy.listener import Listener
from node.proxy.selfcheck import SelfCheck, probe_path
from node.proxy.tcp import TcpHandler, TcpRoute
from node.proxy.upstream.pool import BackendPool, PassiveReport
from node.tls.material import TlsMaterial

log = logging.getLogger("floatgate.runtime")


class DataPlane:
    def __init__(
        self,
        config: ClusterConfig,
        access_log: AccessLogConfig | bool = True,
        tls: TlsMaterial | None = None,
        meters: Meters | None = None,
        sockets: Mapping[tuple[str, int], socket.socket] | None = None,
        report: PassiveReport | None = None,
    ) -> None:
        """``sockets``: the listening sockets, by bind address, when another process
        made them (a worker's, inherited from the node process). Such a plane does not
        probe its own frontends: a probe through a shared socket may reach another
        worker; the node process watches its workers instead. ``report``: servers'
        health is decided by the node process (BackendPool's ``report``)."""
        self.config = config
        self._sockets = sockets
        self._report = report
        self.tls = tls or TlsMaterial({}, {}, ())
        self.meters = meters or Meters()
        self.access = AccessLog(access_log, self.meters)
        self.pools: dict[str, BackendPool] = {}
        self.listeners: dict[tuple[str, int], Listener] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._rotation: asyncio.Task[None] | None = None
        self.self_check = SelfCheck(config.self_check, probe_path())
        self._checking: asyncio.Task[None] | None = None

    def _proxy(
        self, frontend: FrontendConfig, pools: dict[str, BackendPool], tls: TlsMaterial
    ) -> HttpHandler | TcpHandler:
        if frontend.mode == "tcp":
            return TcpHandler(TcpRoute.build(frontend, pools, self.access))
        if frontend.tls is not None and frontend.name not in tls.frontends:
            raise ValueError(f"frontend {frontend.name}: TLS material was not loaded")
        pool = pools[frontend.default_backend]
        tls_runtime = tls.frontends.get(frontend.name)
        acme = tls.acme_thumbprint if frontend.tls is None else None  # http-01: plain only
        return HttpHandler(
            HttpRoute(frontend, pool, self.access, tls_runtime, pools, self.self_check.path, acme)
        )

    def _build_pools(self, config: ClusterConfig, tls: TlsMaterial) -> dict[str, BackendPool]:
        previous, meters, report = self.pools, self.meters, self._report
        return {
            b.name: BackendPool(b, previous.get(b.name), tls.backends.get(b.name), meters, report)
            for b in config.backends
        }

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.access.start()  # an access-log file that cannot be opened: before serving
            self.pools = self._build_pools(self.config, self.tls)
            for pool in self.pools.values():
                pool.start()
            for frontend in self.config.frontends:
                key = (frontend.bind.host, frontend.bind.port)
                given = None
                if self._sockets is not None:
                    if key not in self._sockets:
                        raise ListenError(f"{frontend.name}: no socket for {frontend.bind}")
                    given = self._sockets[key]
                listener = Listener(self._proxy(frontend, self.pools, self.tls), loop, given)
                listener.start()
                self.listeners[key] = listener
        except Exception:
            await self.stop(0.0)
            raise
        self._rotation = asyncio.create_task(self._rotate_ticket_keys())
        if self._sockets is None:
            self._checking = asyncio.create_task(self._check_frontends())

    async def _check_frontends(self) -> None:
        """Probe every frontend through its own listener, forever (health means
        serving); transitions are logged."""
        while True:
            config = self.config.self_check
            self.self_check.reconfigure(config)  # a reload may bring new rise/fall
            started = time.monotonic()
            try:
                for verdict in await self.self_check.run_once(list(self.listeners.values())):
                    if verdict.serving:
                        log.warning("frontend %s serves again: %s", verdict.frontend,
                                    verdict.reason)  # fmt: skip
                    else:
                        log.error("frontend %s cannot serve: %s", verdict.frontend,
                                  verdict.reason, extra={"event": "frontend_down"})  # fmt: skip
            except Exception:  # the checker must outlive its own surprises
                log.exception("frontend self-check failed; continuing")
            await asyncio.sleep(max(0.01, config.interval - (time.monotonic() - started)))

    def frontend_problems(self) -> dict[str, str]:
        """Frontends that cannot serve now, with the reason (empty: all serve)."""
        return self.self_check.problems(list(self.listeners.values()))

    async def _rotate_ticket_keys(self) -> None:
        """Swap each TLS frontend's contexts for fresh ones every ticket_rotation.
        Established connections keep theirs; new handshakes get new ticket keys."""
        loop = asyncio.get_running_loop()
        due: dict[str, float] = {}
        while True:
            now = loop.time()
            for listener in self.listeners.values():
                proxy = listener.handler
                tls = proxy.route.tls
                if not isinstance(proxy, HttpHandler) or tls is None or tls.ticket_key:
                    continue  # a cluster-wide key rotates with a push, not here
                name = proxy.route.frontend.name
                deadline = due.setdefault(name, now + tls.config.ticket_rotation)
                if now >= deadline:
                    listener.update(HttpHandler(replace(proxy.route, tls=tls.rotated())))
                    due[name] = now + tls.config.ticket_rotation
                    log.info("frontend %s: TLS session-ticket keys rotated", name)
            await asyncio.sleep(max(0.05, min([*(d - now for d in due.values()), 1.0])))

    async def reload(self, config: ClusterConfig, tls: TlsMaterial | None = None) -> None:
        """Apply a validated config. Listeners on unchanged addresses keep their socket
        and connections; health state carries over for unchanged servers. If a new
        address cannot be bound, nothing changes."""
        loop = asyncio.get_running_loop()
        tls = tls or TlsMaterial({}, {}, ())
        new_keys = {(f.bind.host, f.bind.port) for f in config.frontends}
        opened: dict[tuple[str, int], Listener] = {}
        pools = self._build_pools(config, tls)
        proxies = {f.name: self._proxy(f, pools, tls) for f in config.frontends}
        for frontend in config.frontends:
            key = (frontend.bind.host, frontend.bind.port)
            current = self.listeners.get(key)
            if current is not None and current.handler.route.frontend.mode != frontend.mode:
                raise ValueError(
                    f"frontend {frontend.name}: changing mode on {frontend.bind} needs a restart"
                )
        try:
            for frontend in config.frontends:
                key = (frontend.bind.host, frontend.bind.port)
                if key not in self.listeners:
                    listener = Listener(proxies[frontend.name], loop)
                    listener.start()
                    opened[key] = listener
        except Exception:
            for listener in opened.values():
                listener.stop_accepting()
            raise
        old_pools, self.pools = self.pools, pools
        for pool in pools.values():
            pool.start()
        for frontend in config.frontends:
            key = (frontend.bind.host, frontend.bind.port)
            if key in self.listeners:
                self.listeners[key].update(proxies[frontend.name])
        for key in [k for k in self.listeners if k not in new_keys]:
            self._retire(self.listeners.pop(key).drain(config.shutdown_grace))
        self.listeners.update(opened)
        for pool in old_pools.values():
            self._retire(self._close_when_idle(pool, config.shutdown_grace))
        self.config = config
        self.tls = tls
        log.info("configuration reloaded: %d frontends, %d backends",
                 len(config.frontends), len(config.backends))  # fmt: skip

    def _retire(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    @staticmethod
    async def _close_when_idle(pool: BackendPool, grace: float) -> None:
        deadline = asyncio.get_running_loop().time() + grace
        while pool.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        await pool.close()

    def stop_accepting(self) -> None:
        for listener in self.listeners.values():
            listener.stop_accepting()

    def hold_new(self, hold: bool) -> None:
        """Drop (not refuse) new connections on every listener, or stop doing so."""
        for listener in self.listeners.values():
            listener.hold_new(hold)

    def quiet(self) -> bool:
        now = time.monotonic()
        return all(listener.quiet(now) for listener in self.listeners.values())

    def close_idle(self) -> None:
        for listener in self.listeners.values():
            listener.close_idle()

    async def idle_closed(self, limit: float) -> None:
        """close_idle() is done when it returns here (node.cluster.serving)."""

    async def stop(self, grace: float, close_idle: bool = True) -> None:
        """Stop accepting, let in-flight requests finish up to ``grace``, close all
        (``close_idle``: see Listener.drain)."""
        if self._rotation is not None:
            self._rotation.cancel()
        if self._checking is not None:
            self._checking.cancel()
        await asyncio.gather(
            *(listener.drain(grace, close_idle) for listener in self.listeners.values())
        )
        self.listeners.clear()
        await asyncio.gather(*self._retired, return_exceptions=True)
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        await self.access.close()  # what is buffered is written
