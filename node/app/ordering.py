"""The ACME orderer's seat in the node: always on a standalone node; on a cluster
node only while it is the active (started when it wins, cancelled when it stops
being active: what an order in flight then finishes is refused by the fence)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from node.acme.orderer import Orderer, Outlet, Serving

log = logging.getLogger("floatgate.acme")


class AcmeSeat:
    def __init__(self, outlet: Outlet, serving: Serving, user_agent: str) -> None:
        self.orderer = Orderer(outlet, serving, user_agent=user_agent)
        self._task: asyncio.Task[None] | None = None
        self.clustered = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self.orderer.run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def follow(self, leading: bool, _reason: str = "") -> None:
        """The election's on_change: order while active."""
        if leading:
            self.start()
        elif self.running:
            log.info("ACME orderer stops: this node is no longer the active")
            self.stop()

    def poke(self) -> None:
        """Look again now (a new configuration or bundle is serving); a standalone
        node's orderer starts with the first configuration that has ACME entries."""
        if not self.clustered:
            self.start()
        self.orderer.wake.set()

    def status(self) -> dict[str, Any]:
        if not self.running:
            who = "the active orders" if self.clustered else "not running"
            return {"orderer": who, "certificates": {}}
        return {"orderer": "this node", "certificates": self.orderer.status()}
