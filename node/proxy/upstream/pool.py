"""A backend at run time: its servers' state, selection, the request queue, health loops,
and the keep-alive connections to each server."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.config.model import BackendConfig, ServerConfig
from node.proxy.errors import NoServerAvailable, QueueFull, QueueTimeout
from node.proxy.upstream.balance import Balancer, make_balancer
from node.proxy.upstream.exchange import ServerConnections
from node.proxy.upstream.health import HealthState, Transition, probe
from node.proxy.upstream.runtime import AdminState, ServerRuntime
from node.proxy.wire.proxyproto import local_header
from node.tls.material import BackendTlsRuntime

if TYPE_CHECKING:
    from node.observe.metrics import Meters

log = logging.getLogger("floatgate.health")

# (backend, server, connected, reason): one passive observation, for whoever decides
PassiveReport = Callable[[str, str, bool, str], None]


@dataclass(eq=False, slots=True)
class Server:
    config: ServerConfig
    health: HealthState
    connections: ServerConnections
    active: int = 0
    total: int = 0
    last_reason: str = "initial state"
    passive_failures: int = 0
    admin: AdminState = AdminState.READY  # set by an operator (node.proxy.upstream.runtime)
    runtime_weight: int | None = None  # set by an operator; None: the configured weight

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def weight(self) -> int:
        return self.config.weight if self.runtime_weight is None else self.runtime_weight

    @property
    def up(self) -> bool:
        """UP by its health, and not in maintenance (whose checks are stopped)."""
        return self.health.up and self.admin is not AdminState.MAINT

    @property
    def takes_new(self) -> bool:
        """New requests or connections may go to it: UP, ready and of weight > 0."""
        return self.health.up and self.admin is AdminState.READY and self.weight > 0

    def has_slot(self) -> bool:
        return self.config.maxconn == 0 or self.active < self.config.maxconn


class ServerSlot:
    """One taken place on a server (counted against its ``maxconn``). Every holder ends
    with ``release()``, which frees the place exactly once however often it is called,
    or uses the slot as an ``async with`` guard."""

    __slots__ = ("_pool", "_released", "server")

    def __init__(self, pool: BackendPool, server: Server) -> None:
        self._pool = pool
        self.server = server
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._free(self.server)

    async def __aenter__(self) -> ServerSlot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@dataclass(eq=False, slots=True)
class _Waiter:
    key: str
    exclude: Server | None
    future: asyncio.Future[ServerSlot] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class BackendPool:
    def __init__(
        self,
        config: BackendConfig,
        previous: BackendPool | None = None,
        tls: BackendTlsRuntime | None = None,
        meters: Meters | None = None,
        report: PassiveReport | None = None,
    ) -> None:
        """``report``: servers' health is decided elsewhere (a worker's pools, by the
        node process): no checks run here, passive observations go to ``report`` and
        the decisions come back through set_health."""
        self.config = config
        self.report = report
        # called after each UP/DOWN transition decided here (the node process pushes them)
        self.on_change: Callable[[], None] | None = None
        self.tls = tls
        self.meters = meters
        if meters is not None:
            for server_config in config.servers:
                meters.server_known(config.name, server_config.name)
        self.servers: list[Server] = [self._server(s, previous) for s in config.servers]
        self._primary = [s for s in self.servers if not s.config.backup]
        self._backup = [s for s in self.servers if s.config.backup]
        self._balancer_primary: Balancer = make_balancer(config.balance, self._primary)
        self._balancer_backup: Balancer = make_balancer(config.balance, self._backup)
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._checks: dict[str, asyncio.Task[None]] = {}
        version = config.send_proxy
        self._check_preamble = local_header(version) if version else b""
        self.in_flight = 0

    def _server(self, config: ServerConfig, previous: BackendPool | None) -> Server:
        check = self.config.check
        health = HealthState(rise=check.rise if check else 1, fall=check.fall if check else 1)
        admin, weight = AdminState.READY, None
        if previous is not None:
            for old in previous.servers:
                if old.config.name == config.name:  # an operator's state follows the name
                    admin, weight = old.admin, old.runtime_weight
                    if old.config.address == config.address:
                        health.up = old.health.up
                    break
        return Server(
            config=config,
            health=health,
            connections=ServerConnections(config.address, self.config.timeouts, self.tls),
            admin=admin,
            runtime_weight=weight,
        )

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        check = self.config.check
        if check is None or self.report is not None:
            return
        for server in self.servers:
            if server.admin is not AdminState.MAINT:
                self._start_check(server)

    def _start_check(self, server: Server) -> None:
        runs = self.config.check is not None and self.report is None and server.config.check
        if runs and server.name not in self._checks:
            self._checks[server.name] = asyncio.create_task(self._check_loop(server))

    async def close(self) -> None:
        for task in self._checks.values():
            task.cancel()
        await asyncio.gather(*self._checks.values(), return_exceptions=True)
        self._checks.clear()
        for waiter in self._queue:
            if not waiter.future.done():
                waiter.future.set_exception(
                    NoServerAvailable(self.name, "backend is shutting down")
                )
        self._queue.clear()
        for server in self.servers:
            server.connections.close()

    # -- selection -------------------------------------------------------------------

    def usable_count(self) -> int:
        """Servers that take new requests (UP, ready, weight > 0)."""
        return sum(1 for s in self.servers if s.takes_new)

    def _select(self, key: str, exclude: Server | None) -> Server | bool | None:
        """A server with a free slot; None if none is up; False if all up ones are full."""
        for group, balancer in (
            (self._primary, self._balancer_primary),
            (self._backup, self._balancer_backup),
        ):
            up = [s for s in group if s.takes_new]
            if not up:
                continue
            if exclude is not None and len(up) > 1:
                up = [s for s in up if s is not exclude]
            free = [s for s in up if s.has_slot()]
            if not free:
                return False
            picked = balancer.pick(free, key)
            assert isinstance(picked, Server)
            return picked
        return None

    async def acquire(self, key: str, exclude: Server | None = None) -> ServerSlot:
        """Take a slot on a server, waiting in the queue while every up server is full.
        A caller cancelled while queued holds nothing, even if a server was assigned
        to it in the same instant."""
        if not self._queue:
            picked = self._select(key, exclude)
            if isinstance(picked, Server):
                return self._take(picked)
            if picked is None:
                raise NoServerAvailable(self.name, "no server is up")
        elif self.usable_count() == 0:
            raise NoServerAvailable(self.name, "no server is up")
        if len(self._queue) >= self.config.maxqueue:
            raise QueueFull(self.name, len(self._queue))
        waiter = _Waiter(key, exclude)
        self._queue.append(waiter)
        taken = False
        try:
            async with asyncio.timeout(self.config.timeouts.queue):
                slot = await waiter.future
            taken = True
            return slot
        except TimeoutError:
            raise QueueTimeout(self.name, self.config.timeouts.queue) from None
        finally:
            future = waiter.future
            if not future.done():
                future.cancel()
            elif not taken and not future.cancelled() and future.exception() is None:
                future.result().release()  # assigned, but the caller is gone
            try:
                self._queue.remove(waiter)
            except ValueError:
                pass

    def _take(self, server: Server) -> ServerSlot:
        server.active += 1
        server.total += 1
        self.in_flight += 1
        return ServerSlot(self, server)

    def _free(self, server: Server) -> None:
        """Only ServerSlot.release calls this."""
        server.active -= 1
        self.in_flight -= 1
        self._serve_queue()

    def _serve_queue(self) -> None:
        while self._queue:
            waiter = self._queue[0]
            if waiter.future.done():
                self._queue.popleft()
                continue
            picked = self._select(waiter.key, waiter.exclude)
            if picked is None:
                self._queue.popleft()
                waiter.future.set_exception(NoServerAvailable(self.name, "no server is up"))
                continue
            if picked is False:
                return
            assert isinstance(picked, Server)
            self._queue.popleft()
            waiter.future.set_result(self._take(picked))

    # -- health ----------------------------------------------------------------------

    def set_health(self, states: Mapping[str, bool]) -> None:
        """Servers' UP/DOWN as decided elsewhere (by name; others unchanged)."""
        changed = False
        for server in self.servers:
            up = states.get(server.name)
            if up is not None and up != server.health.up:
                server.health.up, changed = up, True
        if changed:
            self._serve_queue()

    def set_runtime(self, entries: Mapping[str, ServerRuntime]) -> None:
        """Operators' states (by server name; absent: ready, configured weight). Maint
        stops a server's checks; leaving it, a checked server is DOWN until a check
        passes. New weights rebuild the balancers (a hash ring follows them)."""
        reweighed = False
        for server in self.servers:
            entry = entries.get(server.name, ServerRuntime())
            reweighed |= entry.weight != server.runtime_weight
            was, server.admin, server.runtime_weight = server.admin, entry.state, entry.weight
            if was is entry.state:
                continue
            if entry.state is AdminState.MAINT:
                task = self._checks.pop(server.name, None)
                if task is not None:
                    task.cancel()
                server.last_reason = "maintenance: set by an operator, checks stopped"
            elif was is AdminState.MAINT and self.report is None and self.config.check \
                    and server.config.check:  # fmt: skip
                server.health.up, server.health.successes = False, server.health.rise - 1
                server.health.failures = 0
                server.last_reason = "leaving maintenance: DOWN until a check passes"
                self._start_check(server)
                if self.on_change is not None:
                    self.on_change()
            if self.report is None:  # the pool that decides says it once for the node
                log.warning("server %s/%s is %s (set by %s)", self.name, server.name,
                            _ADMIN_SAID[entry.state], entry.by or "an operator")  # fmt: skip
        if reweighed:
            self._balancer_primary = make_balancer(self.config.balance, self._primary)
            self._balancer_backup = make_balancer(self.config.balance, self._backup)
        self._serve_queue()

    def health_states(self) -> dict[str, bool]:
        return {server.name: server.health.up for server in self.servers}

    def connect_failed(self, server: Server, reason: str) -> None:
        """Passive observation: consecutive connection failures mark a server down."""
        if self.report is not None:
            server.passive_failures += 1
            self.report(self.name, server.name, False, reason)
            return
        server.passive_failures += 1
        limit = self.config.passive_fall
        if limit and server.health.up and server.passive_failures >= limit:
            server.health.up = False
            server.health.successes = 0
            detail = f"{server.passive_failures} consecutive connection failures ({reason})"
            server.last_reason = detail  # what /status shows for it
            self._log_transition(server, Transition(False, detail), 0.0)
            self._serve_queue()

    def connect_succeeded(self, server: Server) -> None:
        if self.report is not None and server.passive_failures:
            self.report(self.name, server.name, True, "")  # only the first after failures
        server.passive_failures = 0

    async def _check_loop(self, server: Server) -> None:
        check = self.config.check
        assert check is not None
        while True:
            started = time.monotonic()
            result = await probe(server.config.address, check, self.tls, self._check_preamble)
            server.last_reason = result.reason
            transition = server.health.observe(result.ok, result.reason)
            if transition is not None:
                server.passive_failures = 0
                self._log_transition(server, transition, result.duration)
                self._serve_queue()
            await asyncio.sleep(max(0.0, check.interval - (time.monotonic() - started)))

    def _log_transition(self, server: Server, transition: Transition, duration: float) -> None:
        if self.meters is not None:
            self.meters.check_change(self.name, server.name)
        if self.on_change is not None:
            self.on_change()
        active = sum(1 for s in self._primary if s.up)
        backup = sum(1 for s in self._backup if s.up)
        state = "UP" if transition.up else "DOWN"
        log.warning(
            "server %s/%s is %s, reason: %s, check duration: %.0fms. "
            "%d active and %d backup servers online.",
            self.name, server.name, state, transition.reason, duration * 1000, active, backup,
        )  # fmt: skip


def server_table(pools: Sequence[BackendPool]) -> list[dict[str, object]]:
    """Every server's state, for /status (the admin API and the status page)."""
    return [
        {
            "backend": pool.name,
            "server": s.name,
            "address": str(s.config.address),
            "up": s.up,
            "admin": s.admin.value,
            "weight": s.weight,
            "backup": s.config.backup,
            "active": s.active,
            "total": s.total,
            "reason": s.last_reason,
        }
        for pool in pools
        for s in pool.servers
    ]


_ADMIN_SAID = {
    AdminState.READY: "READY (takes traffic as its health allows)",
    AdminState.DRAIN: "in DRAIN: no new requests, in-flight ones finish, checks go on",
    AdminState.MAINT: "in MAINT: out of the backend, checks stopped",
}
