"""The node process's data plane when workers serve (``workers: N`` on a cluster node):
what the cluster role asks of a data plane (node.cluster.serving), answered for the
node as a whole.

Holding new connections is done here, on the sockets the node process owns (the SYN
filter sits on the shared socket, so it holds for every worker at once). "Quiet" is
asked of the workers by numbered orders: a worker counts as quiet only by its answer
to a report ordered after the hold began (each quiet() call asks again, at most every
REPORT_EVERY), every worker that may hold connections answers (an older generation
still draining too), and the listen backlogs must be empty. Closing idle connections
is an order whose answers the handover waits for (idle_closed) before the VIP goes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from node.app.supervisor import WorkerPool
from node.proxy.upstream.pool import BackendPool
from node.proxy.wire.synfilter import accept_queue, hold_syns, release_syns

REPORT_EVERY = 0.005  # seconds between two "report" orders to one worker


class WorkerPlane:
    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self._held: int | None = None  # the report order sent when the hold began
        self._closing = 0  # the last close_idle order

    @property
    def listeners(self) -> Mapping[Any, Any]:
        return self.pool.sockets

    @property
    def pools(self) -> Mapping[str, BackendPool]:
        return self.pool.health

    def frontend_problems(self) -> dict[str, str]:
        return self.pool.problems()

    def hold_new(self, hold: bool) -> None:
        for sock in self.pool.sockets.values():
            if sock.fileno() >= 0:
                (hold_syns if hold else release_syns)(sock)
        self._held = self._ask(force=True) if hold else None

    def quiet(self) -> bool:
        """Quiet by the answers to reports asked for after the hold began, from every
        worker that may hold connections (draining generations too)."""
        if self._held is None:
            return False
        if any(accept_queue(s) > 0 for s in self.pool.sockets.values() if s.fileno() >= 0):
            return False
        if all(w.answered >= self._held and w.quiet for w in self.pool.live()):
            return True
        self._ask()
        return False

    def close_idle(self) -> None:
        self._closing = self.pool.next_order()
        for worker in self.pool.live():
            worker.order("close_idle", seq=self._closing)

    async def idle_closed(self, limit: float) -> None:
        """Until every worker has closed its idle connections (up to ``limit``)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(w.answered >= self._closing for w in self.pool.live()):
                return
            await asyncio.sleep(0.002)

    def stop_accepting(self) -> None:
        for worker in self.pool.live():
            worker.order("stop_accepting")

    def _ask(self, force: bool = False) -> int:
        """Order a numbered report from every live worker (each at most every
        REPORT_EVERY unless ``force``); returns the order's number."""
        seq = self.pool.next_order()
        now = time.monotonic()
        for worker in self.pool.live():
            if force or now - worker.asked_at >= REPORT_EVERY:
                worker.asked_at = now
                worker.order("report", seq=seq)
        return seq
