"""A node's cluster role: the election and the VIP manager around a data plane.

Joined here (and only from node/daemon.py): campaign only while the data plane is
healthy; hold the VIP only until the leadership deadline; hand over in the order of
DESIGN invariant 7 (stop accepting, remove the VIP, resign, then drain).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

from election.decide import Me
from election.etcd import EtcdElection
from node.config.model import ClusterConfig, NodeConfig
from node.proxy.connection import IDLE
from node.proxy.runtime import DataPlane
from vip.iproute import IprouteBackend
from vip.manager import VipManager

log = logging.getLogger("floatgate.cluster")


class ClusterConfigError(ValueError):
    """node.yaml / cluster.yaml do not describe a runnable cluster node."""


class ClusterRole:
    @staticmethod
    def validate(node: NodeConfig, config: ClusterConfig) -> None:
        if node.etcd is None:
            raise ClusterConfigError("node.yaml has no etcd section")
        if config.vip is None or not node.interface:
            raise ClusterConfigError(
                "cluster mode needs vip (cluster.yaml) and interface (node.yaml)"
            )
        for url in node.etcd.endpoints:
            endpoint = urlsplit(url)
            if endpoint.scheme != "http" or endpoint.hostname is None:
                raise ClusterConfigError(
                    f"etcd endpoint {url}: this version talks to etcd over plain http only "
                    "(etcd TLS is not supported yet)"
                )

    def __init__(self, node: NodeConfig, config: ClusterConfig, plane: DataPlane) -> None:
        self.validate(node, config)
        assert node.etcd is not None and config.vip is not None and node.interface
        endpoints = [urlsplit(url) for url in node.etcd.endpoints]
        self.node = node
        self.config = config
        self.plane = plane
        self.election = EtcdElection(
            [(e.hostname or "localhost", e.port or 2379) for e in endpoints],
            config.cluster,
            Me(node.name, node.priority, config.election.nopreempt),
            ttl=max(1, round(config.election.lease_ttl)),
            payload=self._payload,
        )
        self.vip = VipManager(
            IprouteBackend(node.interface),
            config.vip.address,
            self._vip_deadline,
            garp_count=config.vip.garp.count,
            garp_interval=config.vip.garp.interval,
            tick=0.1,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._hold_off_until = 0.0  # after a switchover: do not campaign before this

    def _payload(self) -> dict[str, Any]:
        admin = self.node.admin
        return {"admin": str(admin.listen) if admin else None, "pid": os.getpid()}

    def _vip_deadline(self) -> float | None:
        return self.election.deadline() if self.election.is_leader() else None

    def healthy(self) -> bool:
        """Listeners bound, configuration loaded, enough healthy backends (and not in
        the hold-off that follows a switchover away from this node)."""
        if time.monotonic() < self._hold_off_until or not self.plane.listeners:
            return False
        up = sum(pool.usable_count() for pool in self.plane.pools.values())
        return up >= self.config.election.min_healthy_backends

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.election.run(self.healthy)),
            asyncio.create_task(self.vip.run()),
        ]

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        leader = self.election.leader
        return {
            "node": self.node.name,
            "role": "active" if self.election.is_leader(now) else "standby",
            "leader": leader.name if leader else None,
            "fencing_token": self.election.fencing_token,
            "lease_remaining": round(self.election.state.lease.remaining(now), 3)
            if self.election.is_leader(now) else 0.0,
            "healthy": self.healthy(),
            "decision": self.election.last_decision.reason,
            "vip": str(self.config.vip.address) if self.config.vip else None,
        }  # fmt: skip

    async def switchover(self, hold_off: float | None = None) -> str:
        """Planned handover: remove the VIP, resign, and stay standby (listeners still
        bound) for ``hold_off`` seconds so another node takes over."""
        if not self.election.is_leader():
            return "not active: nothing to hand over"
        self._hold_off_until = time.monotonic() + (hold_off or 2 * self.election.ttl)
        await self._quiet_moment(0.3)
        _, vip_task = self._tasks
        vip_task.cancel()
        await asyncio.gather(vip_task, return_exceptions=True)
        await self.vip.release()
        await self.election.resign()
        self._tasks[1] = asyncio.create_task(self.vip.run())
        log.info("switchover: VIP removed and lease resigned; standby for a while")
        return "VIP removed and lease resigned: another node takes over"

    async def _quiet_moment(self, limit: float) -> None:
        """Wait (up to ``limit``) for a moment when no request is being read or served,
        so removing the VIP cuts as few exchanges short as possible. A SYN that arrives
        after the removal is retransmitted by the client and reaches the new holder; an
        exchange that straddles the removal can still be lost."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            connections = [c for lst in self.plane.listeners.values() for c in lst.connections]
            if all(c.phase == IDLE for c in connections):
                return
            await asyncio.sleep(0.001)

    async def hand_over(self) -> None:
        """SIGTERM: stop accepting, remove the VIP, resign, (then the caller drains)."""
        election_task, vip_task = self._tasks
        self.plane.stop_accepting()
        vip_task.cancel()
        await asyncio.gather(vip_task, return_exceptions=True)
        try:
            await self.vip.release()
        except Exception as exc:  # the kernel lifetime still fences it
            log.error("could not remove the VIP on shutdown: %s", exc)
        election_task.cancel()
        await asyncio.gather(election_task, return_exceptions=True)  # resigns if leading
        await self.election.close()
        log.info("handed over: VIP removed, lease resigned")
