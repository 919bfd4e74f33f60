"""The node process's data-plane workers (``workers: N`` in node.yaml).

The node process binds every frontend's socket once (``IP_FREEBIND``) and keeps it for
as long as it runs; N worker processes (node.app.worker) inherit the sockets and serve.
Beside them one spare waits with the configuration loaded: a worker that dies or stops
beating (its event loop stuck for HUNG_AFTER) is replaced by the spare at once, and a
new spare is started. Connections keep arriving in the listen backlog meanwhile: the
socket belongs to the node process, not to the worker that died. A reload (SIGHUP) is a
new generation: new workers on the new configuration serve first, then the old ones
drain within ``shutdown_grace``. Nothing here is shared memory: each worker reports
over its own socket pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from node.app.workerlink import (
    BEAT,
    HUNG_AFTER,
    MAX_LINE,
    LinkError,
    StartOrder,
    encode,
    receive,
)
from node.config.model import AccessLogConfig, ClusterConfig
from node.observe.metrics import Meters, add_counts
from node.proxy.listener import open_socket
from node.proxy.upstream.pool import BackendPool
from node.tls.material import TlsMaterial

log = logging.getLogger("floatgate.workers")

START_TIMEOUT = 30.0  # a worker that is not ready by then is killed
EXIT_WAIT = 1.0  # after its link closed, a worker has this long to exit before SIGKILL
CRASH_LOOP = (5, 10.0)  # this many replacements within these seconds: slow down
CRASH_LOOP_PAUSE = 1.0
REPLACING = 1.0  # no worker serving for this long is a node that cannot serve


class WorkerStartError(Exception):
    """New workers could not serve this configuration; the running ones keep serving."""


@dataclass(eq=False)
class WorkerProcess:
    index: int
    generation: int
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    spawned: float
    state: str = "starting"  # starting | ready | serving | draining | gone
    last_beat: float = 0.0
    problems: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    exit_code: int | None = None
    counters: dict[str, Any] | None = None  # the last reported (Meters.counters())
    frontends: dict[str, int] = field(default_factory=dict)  # open connections
    servers: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # [active, total]
    # The answer to the node process's numbered orders ("report", "close_idle"): the
    # highest number answered, and whether the worker was between exchanges then.
    answered: int = 0
    quiet: bool = False
    asked_at: float = 0.0  # the last "report" order
    ready: asyncio.Future[str | None] = field(default_factory=asyncio.Future)
    serving: asyncio.Future[str | None] = field(default_factory=asyncio.Future)
    watcher: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def connections(self) -> int:
        return sum(self.frontends.values())

    def order(self, op: str, **fields_: object) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode({"op": op, **fields_}))

    def settle(self, outcome: str | None) -> None:
        for future in (self.ready, self.serving):
            if not future.done():
                future.set_result(outcome)


def _worker_environment() -> dict[str, str]:
    """The node's environment without systemd's notify and watchdog variables: only the
    node process speaks to systemd (READY once the workers serve; its watchdog beats
    while it supervises them)."""
    drop = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"}
    return {key: value for key, value in os.environ.items() if key not in drop}


def _requests(counters: dict[str, Any] | None) -> int:
    """HTTP requests answered, as the worker last reported them."""
    if counters is None:
        return 0
    return sum(sum(f.get("requests", {}).values()) for f in counters.get("frontends", {}).values())


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class WorkerPool:
    def __init__(
        self, count: int, access_log: AccessLogConfig, log_level: str, log_format: str
    ) -> None:
        self.count = count
        self.access_log = access_log
        self.log_level, self.log_format = log_level, log_format
        self.sockets: dict[tuple[str, int], socket.socket] = {}
        self.workers: list[WorkerProcess] = []  # the serving generation, by index
        self.spare: WorkerProcess | None = None
        self.retired: set[WorkerProcess] = set()  # draining (older generations)
        self.generation = 0
        self.restarts = 0
        self.last_replacement: dict[str, Any] | None = None
        self._paths = (Path(), Path())
        self.acme_dir: Path | None = None  # a standalone node's ACME files (StartOrder.acme)
        self._keys: list[tuple[str, int]] = []
        self._stopping = False
        self._none_serving_since: float | None = None
        self._order = 0  # the last numbered order (next_order)
        self._recent: deque[float] = deque(maxlen=CRASH_LOOP[0])
        self._folded: dict[str, Any] = {}  # the counters of workers that are gone
        # Servers' health, decided here once for the node and pushed to every worker
        # (workers run no checks; they report passive failures back).
        self.health_meters = Meters()
        self.health: dict[str, BackendPool] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._sparing: asyncio.Task[None] | None = None

    # -- starting, reloading, stopping -------------------------------------------

    async def start(
        self, config: ClusterConfig, tls: TlsMaterial, cluster: Path, certs: Path
    ) -> None:
        """Bind every frontend, start the health checks and the first generation and
        wait until it serves. Raises ListenError or WorkerStartError, with nothing left
        running."""
        for frontend in config.frontends:
            key = (frontend.bind.host, frontend.bind.port)
            try:
                self.sockets[key] = open_socket(frontend.bind)
            except Exception:
                self._close_sockets(list(self.sockets))
                raise
        self.health = self._health_pools(config, tls)
        try:
            await self._next_generation(config, cluster, certs)
        except WorkerStartError:
            self._close_sockets(list(self.sockets))
            await self._close_pools(self.health)
            raise
        self._watchdog = asyncio.create_task(self._watch_beats())

    async def reload(
        self, config: ClusterConfig, tls: TlsMaterial, cluster: Path, certs: Path
    ) -> None:
        """A new generation on ``config``; the old one drains once the new one serves.
        Raises ListenError or WorkerStartError with the running generation untouched."""
        wanted = {(f.bind.host, f.bind.port): f for f in config.frontends}
        opened: list[tuple[str, int]] = []
        try:
            for key, frontend in wanted.items():
                if key not in self.sockets:
                    self.sockets[key] = open_socket(frontend.bind)
                    opened.append(key)
        except Exception:
            self._close_sockets(opened)
            raise
        running, self.health = self.health, self._health_pools(config, tls)
        try:
            old = await self._next_generation(config, cluster, certs)
        except WorkerStartError:
            self._close_sockets(opened)
            await self._close_pools(self.health)
            self.health = running
            self._push_health()  # what the candidate pools may have told the workers
            raise
        await self._close_pools(running)
        self._push_health()
        for worker in old:
            if worker.state == "serving":
                self._retire(worker, config.shutdown_grace, close_idle=False)
            else:
                self._retire(worker, 0.0)
        self._close_sockets([key for key in self.sockets if key not in wanted])

    async def stop(self, grace: float) -> None:
        """Every worker drains within ``grace``; whatever is still running then is
        killed; the listening sockets close last."""
        self._stopping = True
        for task in (self._watchdog, self._sparing):
            if task is not None:
                task.cancel()
        everyone = [*self.workers, *self.retired, *([self.spare] if self.spare else [])]
        for worker in everyone:
            worker.order("drain", grace=grace if worker.state == "serving" else 0.0)
        waiting = [w.proc.wait() for w in everyone if w.proc.returncode is None]
        if waiting:
            done = asyncio.gather(*waiting)
            try:
                await asyncio.wait_for(done, grace + 5.0)
            except TimeoutError:
                for worker in everyone:
                    if worker.proc.returncode is None:
                        log.error("worker %d (pid %d) did not stop: killing it", worker.index,
                                  worker.pid)  # fmt: skip
                        worker.proc.kill()
                await asyncio.gather(*(w.proc.wait() for w in everyone), return_exceptions=True)
        await asyncio.gather(*(w.watcher for w in everyone if w.watcher), return_exceptions=True)
        self._close_sockets(list(self.sockets))
        await self._close_pools(self.health)

    def next_order(self) -> int:
        """A number for an order whose answer someone waits for."""
        self._order += 1
        return self._order

    def live(self) -> list[WorkerProcess]:
        """Every worker that may hold client connections: the serving generation
        (a spare promoted a moment ago included) and the older ones still draining."""
        return [w for w in [*self.workers, *self.retired]
                if w.proc.returncode is None and w.state != "starting"]  # fmt: skip

    def repath(self, cluster: Path, certs: Path) -> None:
        """The serving generation's files moved (a bundle's staging directory became
        ``current``): replacements and spares load them from there."""
        self._paths = (cluster, certs)

    # -- what the node reports -----------------------------------------------------

    def problems(self) -> dict[str, str]:
        """Why the node cannot serve now (empty: it serves), for /readyz and the cluster
        role's health: a frontend that no serving worker can serve, or no worker serving
        for longer than REPLACING takes. One worker being replaced while others serve
        is not a problem of the node (its clients wait in the shared backlog at worst),
        and must not hand the VIP over."""
        serving = [w for w in self.workers if w.state == "serving"]
        now = time.monotonic()
        if not serving:
            if self._none_serving_since is None:
                self._none_serving_since = now
            if now - self._none_serving_since >= REPLACING or self.generation == 0:
                return {"workers": "no worker serves"}
            return {}
        self._none_serving_since = None
        found: dict[str, str] = {}
        for frontend in {name for w in serving for name in w.problems}:
            reasons = [w.problems.get(frontend) for w in serving]
            if all(reasons):
                found[frontend] = f"every worker: {reasons[0]}"
        return found

    def counters(self) -> list[dict[str, Any]]:
        """What every worker counted, the gone ones included (to be summed: one
        report a second, so a killed worker's last second is not in it)."""
        live = [w.counters for w in [*self.workers, *self.retired] if w.counters is not None]
        return [self._folded, *live, self.health_meters.counters()]

    def sessions(self) -> tuple[dict[str, int], dict[tuple[str, str], list[int]]]:
        """Open client connections by frontend, and [in flight, sent] by server, summed
        over the workers that serve or drain (as of their last beat)."""
        frontends: dict[str, int] = {}
        servers: dict[tuple[str, str], list[int]] = {}
        for worker in [*self.workers, *self.retired]:
            for name, count in worker.frontends.items():
                frontends[name] = frontends.get(name, 0) + count
            for backend, by_server in worker.servers.items():
                for server, (active, total) in by_server.items():
                    have = servers.setdefault((backend, server), [0, 0])
                    have[0] += active
                    have[1] += total
        return frontends, servers

    def table(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        rows = []
        spare = [self.spare] if self.spare is not None else []
        for worker in [*self.workers, *spare, *sorted(self.retired, key=lambda w: w.index)]:
            role = "spare" if worker is self.spare else "worker"
            if worker in self.retired:
                role = "draining"
            rows.append({"index": worker.index, "pid": worker.pid, "role": role,
                         "generation": worker.generation, "state": worker.state,
                         "connections": worker.connections,
                         "requests": _requests(worker.counters),
                         "uptime_s": round(now - worker.spawned, 1),
                         "last_beat_ms": round((now - worker.last_beat) * 1000)
                         if worker.last_beat else None})  # fmt: skip
        return rows

    # -- workers ------------------------------------------------------------------

    async def _next_generation(
        self, config: ClusterConfig, cluster: Path, certs: Path
    ) -> list[WorkerProcess]:
        """Start workers (and a spare) on ``config``; once they serve they replace the
        running ones, which are returned (to be drained)."""
        generation = self.generation + 1
        keys = [(f.bind.host, f.bind.port) for f in config.frontends]
        started = [self._spawn(i, generation, cluster, certs, keys) for i in range(self.count + 1)]
        spawned = await asyncio.gather(*started, return_exceptions=True)
        fresh = [w for w in spawned if isinstance(w, WorkerProcess)]
        problem = next((e for e in spawned if isinstance(e, BaseException)), None)
        if problem is not None:
            for worker in fresh:
                self._kill(worker)
            if isinstance(problem, WorkerStartError):
                raise problem
            raise WorkerStartError(f"cannot start the workers: {problem!r}") from problem
        try:
            failures = await self._wait_all(fresh, "ready")
            for worker in fresh[: self.count]:
                worker.order("serve")
            failures = failures or await self._wait_all(fresh[: self.count], "serving")
        except asyncio.CancelledError:
            for worker in fresh:
                self._kill(worker)
            raise
        if failures:
            for worker in fresh:
                self._retire(worker, 0.0)
            raise WorkerStartError(failures[0])
        old = [*self.workers, *([self.spare] if self.spare is not None else [])]
        self.generation, self._paths, self._keys = generation, (cluster, certs), keys
        self.workers, self.spare = fresh[: self.count], fresh[self.count]
        log.info("workers of generation %d serve: pids %s (spare %d)", generation,
                 " ".join(str(w.pid) for w in self.workers), self.spare.pid)  # fmt: skip
        return old

    async def _wait_all(self, workers: list[WorkerProcess], what: str) -> list[str]:
        futures = [w.ready if what == "ready" else w.serving for w in workers]
        try:
            outcomes = await asyncio.wait_for(asyncio.gather(*futures), START_TIMEOUT)
        except TimeoutError:
            return [f"a worker was not {what} within {START_TIMEOUT:g}s"]
        return [o for o in outcomes if o is not None]

    async def _spawn(
        self, index: int, generation: int, cluster: Path, certs: Path, keys: list[tuple[str, int]]
    ) -> WorkerProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        listeners = [(host, port, self.sockets[(host, port)].fileno()) for host, port in keys]
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "node.app.worker", "--control", str(theirs.fileno()),
                pass_fds=[*(fd for _, _, fd in listeners), theirs.fileno()],
                stdin=asyncio.subprocess.DEVNULL, env=_worker_environment(),
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            raise WorkerStartError(f"cannot start a worker process: {exc}") from exc
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_LINE)
        order = StartOrder(str(cluster), str(certs), listeners, asdict(self.access_log),
                           self.log_level, self.log_format, index, generation,
                           self.count, str(self.acme_dir or ""))  # fmt: skip
        writer.write(encode(order.message()))
        writer.write(encode({"op": "health", "states": self._health_states()}))
        worker = WorkerProcess(index, generation, proc, writer, time.monotonic())
        worker.watcher = asyncio.create_task(self._follow(worker, reader))
        return worker

    async def _follow(self, worker: WorkerProcess, reader: asyncio.StreamReader) -> None:
        """Read one worker's messages until its link closes; then reap it."""
        try:
            while (message := await receive(reader)) is not None:
                worker.last_beat = time.monotonic()
                op = message["op"]
                if op == "beat":
                    problems = message.get("problems")
                    worker.problems = dict(problems) if isinstance(problems, dict) else {}
                    frontends = message.get("frontends")
                    if isinstance(frontends, dict):
                        worker.frontends = {k: n for k, n in frontends.items() if type(n) is int}
                    servers = message.get("servers")
                    if isinstance(servers, dict):
                        worker.servers = servers
                    counters = message.get("counters")
                    if isinstance(counters, dict):
                        worker.counters = counters
                    seq = message.get("seq")
                    if type(seq) is int and seq > worker.answered:
                        worker.answered, worker.quiet = seq, bool(message.get("quiet"))
                elif op == "ready":
                    worker.state = "ready" if worker.state == "starting" else worker.state
                    if not worker.ready.done():
                        worker.ready.set_result(None)
                elif op == "serving":
                    worker.state = "serving"
                    if not worker.serving.done():
                        worker.serving.set_result(None)
                elif op == "passive":
                    self._passive(message)
                elif op == "failed":
                    worker.error = str(message.get("error"))
                    worker.settle(worker.error)
        except LinkError as exc:
            log.error("worker %d (pid %d): %s; killing it", worker.index, worker.pid, exc)
            worker.proc.kill()
        with contextlib.suppress(Exception):
            worker.writer.close()
        try:
            code = await asyncio.wait_for(worker.proc.wait(), EXIT_WAIT)
        except TimeoutError:
            worker.proc.kill()
            code = await worker.proc.wait()
        worker.exit_code, worker.state = code, "gone"
        worker.settle(worker.error or f"the worker {describe_exit(code)}")
        self._gone(worker, code)

    def _gone(self, worker: WorkerProcess, code: int) -> None:
        self.retired.discard(worker)
        if worker.counters is not None:  # what it counted stays counted
            add_counts(self._folded, worker.counters)
            worker.counters = None
        if self._stopping:
            return
        if worker is self.spare:
            self.spare = None
            log.warning("spare worker (pid %d) %s%s", worker.pid, describe_exit(code),
                        f": {worker.error}" if worker.error else "")  # fmt: skip
            self._want_spare()
        elif worker in self.workers:
            log.error("worker %d (pid %d) %s%s; replacing it", worker.index, worker.pid,
                      describe_exit(code),
                      f": {worker.error}" if worker.error else "")  # fmt: skip
            self._background(self._replace(worker, time.monotonic()))

    async def _replace(self, dead: WorkerProcess, since: float, again: bool = False) -> None:
        """Put a worker in the dead one's place: the spare at once, or a new one. A
        failed attempt is retried after CRASH_LOOP_PAUSE (counted once)."""
        if not again:
            self.restarts += 1
            self._recent.append(since)
        if again or (
            len(self._recent) == CRASH_LOOP[0] and since - self._recent[0] < CRASH_LOOP[1]
        ):
            if not again:
                log.error("%d worker replacements within %.0fs: waiting %.1fs before the next",
                          CRASH_LOOP[0], CRASH_LOOP[1], CRASH_LOOP_PAUSE)  # fmt: skip
            await asyncio.sleep(CRASH_LOOP_PAUSE)
        if self._stopping or dead not in self.workers:
            return  # stopping, or a reload replaced the whole generation meanwhile
        spare = self.spare if self.spare is not None and self.spare.state == "ready" else None
        if spare is not None:
            self.spare = None
        else:
            cluster, certs = self._paths
            try:
                spare = await self._spawn(dead.index, self.generation, cluster, certs, self._keys)
            except WorkerStartError as exc:
                log.error("worker %d: no replacement could start: %s; trying again", dead.index,
                          exc)  # fmt: skip
                self._background(self._replace(dead, since, again=True))
                return
            if await self._wait_all([spare], "ready"):
                log.error("worker %d: the replacement could not start: %s; trying again",
                          dead.index, spare.error or "no answer")  # fmt: skip
                self._kill(spare)
                self._background(self._replace(dead, since, again=True))
                return
        if self._stopping or dead not in self.workers or spare.generation != self.generation:
            self._retire(spare, 0.0)
            self._want_spare()
            return
        spare.index = dead.index
        self.workers[self.workers.index(dead)] = spare
        spare.order("serve")
        failures = await self._wait_all([spare], "serving")
        took = time.monotonic() - since
        self.last_replacement = {"index": dead.index, "old_pid": dead.pid, "new_pid": spare.pid,
                                 "exit": describe_exit(dead.exit_code or 0),
                                 "seconds": round(took, 4)}  # fmt: skip
        if not failures:
            log.warning("worker %d: pid %d serves in place of pid %d (%.0f ms)", dead.index,
                        spare.pid, dead.pid, took * 1000)  # fmt: skip
        self._want_spare()

    def _want_spare(self) -> None:
        if self._stopping or self.spare is not None:
            return
        if self._sparing is not None and not self._sparing.done():
            return
        self._sparing = asyncio.create_task(self._start_spare())

    async def _start_spare(self) -> None:
        """A new spare for the serving generation; retried after CRASH_LOOP_PAUSE when
        it cannot start (e.g. its files moved while it loaded them)."""
        cluster, certs = self._paths
        try:
            spare = await self._spawn(self.count, self.generation, cluster, certs, self._keys)
        except WorkerStartError as exc:
            log.error("a spare worker could not start: %s; trying again", exc)
            self._retry_spare()
            return
        if await self._wait_all([spare], "ready"):
            log.error("a spare worker could not start: %s; trying again",
                      spare.error or "no answer")  # fmt: skip
            self._kill(spare)
            self._retry_spare()
            return
        if self._stopping or spare.generation != self.generation or self.spare is not None:
            self._retire(spare, 0.0)
            return
        self.spare = spare

    def _retry_spare(self) -> None:
        async def later() -> None:
            await asyncio.sleep(CRASH_LOOP_PAUSE)
            self._want_spare()

        self._background(later())

    def _retire(self, worker: WorkerProcess, grace: float, close_idle: bool = True) -> None:
        if worker.proc.returncode is not None:
            return
        worker.state = "draining"
        self.retired.add(worker)
        worker.order("drain", grace=grace, idle="close" if close_idle else "keep")

    def _kill(self, worker: WorkerProcess) -> None:
        if worker.proc.returncode is None:
            worker.proc.kill()

    async def _watch_beats(self) -> None:
        """A worker or spare whose event loop has not beaten for HUNG_AFTER is stuck:
        killed (and so replaced). One that never got ready is killed at START_TIMEOUT."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(BEAT)
            now = time.monotonic()
            if now - last > HUNG_AFTER / 2:
                # This process itself was stopped or stalled: the workers' beats wait
                # unread in their sockets. Judge them afresh from now on.
                log.warning("the node process was stalled for %.1fs; workers' beats are "
                            "read before any is judged", now - last)  # fmt: skip
                for worker in self.workers + ([self.spare] if self.spare else []):
                    worker.last_beat = max(worker.last_beat, now)
            last = now
            spare = [self.spare] if self.spare is not None else []
            for worker in [*self.workers, *spare]:
                if worker.proc.returncode is not None:
                    continue
                if worker.state in ("ready", "serving") and now - worker.last_beat > HUNG_AFTER:
                    log.error("worker %d (pid %d) has not answered for %.1fs: killing it",
                              worker.index, worker.pid, now - worker.last_beat)  # fmt: skip
                    worker.proc.kill()
                elif worker.state == "starting" and now - worker.spawned > START_TIMEOUT:
                    worker.proc.kill()

    # -- health ---------------------------------------------------------------------

    def _health_pools(self, config: ClusterConfig, tls: TlsMaterial) -> dict[str, BackendPool]:
        """The backends' pools, only to run the health checks (no traffic goes through
        them); a server keeps its state across a reload, as in a data plane."""
        pools = {}
        for backend in config.backends:
            pool = BackendPool(backend, self.health.get(backend.name),
                               tls.backends.get(backend.name), self.health_meters)  # fmt: skip
            pool.on_change = self._push_health
            pool.start()
            pools[backend.name] = pool
        return pools

    def _health_states(self) -> dict[str, dict[str, bool]]:
        return {name: pool.health_states() for name, pool in self.health.items()}

    def _push_health(self) -> None:
        states = self._health_states()
        spare = [self.spare] if self.spare is not None else []
        for worker in [*self.workers, *spare, *self.retired]:
            if worker.proc.returncode is None:
                worker.order("health", states=states)

    def _passive(self, message: dict[str, Any]) -> None:
        """A worker's passive observation, counted here for the node as a whole."""
        pool = self.health.get(str(message.get("backend")))
        server = next((s for s in pool.servers if s.name == message.get("server")), None) \
            if pool is not None else None  # fmt: skip
        if pool is None or server is None:
            return
        if message.get("connected"):
            pool.connect_succeeded(server)
        else:
            pool.connect_failed(server, str(message.get("reason", "")))

    @staticmethod
    async def _close_pools(pools: dict[str, BackendPool]) -> None:
        await asyncio.gather(*(pool.close() for pool in pools.values()))

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close_sockets(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            sock = self.sockets.pop(key, None)
            if sock is not None:
                sock.close()
