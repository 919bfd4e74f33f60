"""Leader election on etcd v3 with aetcd.

- campaign: grant a lease, then one transaction: put the leader key with the lease if
  its create_revision is 0 (absent). The key's create revision is the fencing token.
- keepalive every TTL/3; leadership is the deadline of :mod:`election.lease`: any etcd
  error or silence counts against it, never for it.
- observe: read the leader key every tick (a lost answer means "leader unknown").
- resign: revoke the lease (etcd deletes the key at once).

Knows nothing of proxies or IPs; callers ask ``is_leader()`` (a deadline check on the
monotonic clock) and may register ``on_change``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aetcd

from election.decide import Decision, ElectionState, Me, Observation, decide, renewed, won
from election.errors import EtcdUnavailable
from election.lease import LeaseClock, default_margin

log = logging.getLogger("floatgate.election")


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """What the leader key holds."""

    name: str
    fencing_token: int  # the key's create revision: one value per reign
    payload: dict[str, Any]


class EtcdElection:
    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        cluster: str,
        me: Me,
        ttl: int = 2,
        margin: float | None = None,
        payload: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if ttl < 1:
            raise ValueError("lease TTL must be at least 1 s")
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = list(endpoints)
        self.me = me
        self.ttl = ttl
        self.key = f"/floatgate/{cluster}/leader".encode()
        self.request_timeout = max(0.2, ttl / 3)
        self.state = ElectionState(LeaseClock(float(ttl), margin or default_margin(ttl)))
        self.leader: LeaderRecord | None = None
        self.fencing_token: int | None = None
        self.last_decision = Decision("wait", "not started")
        self._payload = payload or (lambda: {})
        self._endpoint = 0
        self._client = self._connect()
        self._closing: set[asyncio.Future[None]] = set()
        self._lease_id: int | None = None
        self._listeners: list[Callable[[bool, str], None]] = []

    # -- what callers ask -------------------------------------------------------------

    def is_leader(self, now: float | None = None) -> bool:
        """Leader only until the deadline, whatever the loop is doing right now."""
        moment = time.monotonic() if now is None else now
        return self.state.leading and self.state.lease.valid(moment)

    def deadline(self) -> float | None:
        return self.state.lease.deadline if self.state.leading else None

    def on_change(self, callback: Callable[[bool, str], None]) -> None:
        self._listeners.append(callback)

    # -- the loop ----------------------------------------------------------------------

    async def run(self, healthy: Callable[[], bool]) -> None:
        try:
            while True:
                decision = await self.step(healthy())
                await asyncio.sleep(self.ttl / 3 if decision.action == "renew" else 0.05)
        finally:
            if self.state.leading:
                await self.resign()

    async def step(self, healthy: bool) -> Decision:
        """One tick: observe etcd, decide, act. Returns the decision (for logs/tests)."""
        was_leading = self.is_leader()
        observation = await self._observe(healthy)
        self.state, decision = decide(self.state, observation, self.me)
        if decision.action == "campaign":
            decision = await self._campaign()
        elif decision.action == "renew":
            await self._renew()
        elif decision.action in ("resign", "step_down"):
            await self._revoke()
        if decision != self.last_decision:
            log.info("%s: %s", self.me.name, decision.reason)
        self.last_decision = decision
        now_leading = self.is_leader()
        if now_leading != was_leading:
            for callback in self._listeners:
                callback(now_leading, decision.reason)
        return decision

    async def resign(self) -> None:
        """Give up leadership now: the lease is revoked, so another node can win at once."""
        self.state, _ = decide(
            self.state, Observation(time.monotonic(), False, True, self.me.name), self.me
        )
        await self._revoke()

    async def close(self) -> None:
        await self._client.close()

    # -- etcd --------------------------------------------------------------------------

    def _connect(self) -> aetcd.Client:
        host, port = self.endpoints[self._endpoint]
        return aetcd.Client(host=host, port=port, timeout=self.request_timeout)

    async def _call(self, what: str, request: Callable[[aetcd.Client], Any]) -> Any:
        """One etcd request. On failure the next call goes to the next endpoint (etcd
        members share one state, so any of them may answer); the failure itself still
        counts against leadership."""
        try:
            async with asyncio.timeout(self.request_timeout):
                return await request(self._client)
        except (TimeoutError, aetcd.ClientError, OSError) as exc:
            if len(self.endpoints) > 1:
                old, self._endpoint = self._client, (self._endpoint + 1) % len(self.endpoints)
                self._client = self._connect()
                closing = asyncio.ensure_future(old.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
            raise EtcdUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def _observe(self, healthy: bool) -> Observation:
        now = time.monotonic()
        try:
            found = await self._call("read leader key", lambda c: c.get(self.key))
        except EtcdUnavailable as exc:
            log.debug("%s", exc)
            return Observation(now, healthy, leader_known=False)
        if found is None:
            self.leader = None
            return Observation(now, healthy, leader_known=True, leader=None)
        try:
            payload = json.loads(found.value)
            name = str(payload["name"])
        except (ValueError, KeyError, TypeError):
            name, payload = "?", {}
        self.leader = LeaderRecord(name, int(found.create_revision), payload)
        return Observation(now, healthy, leader_known=True, leader=name)

    async def _campaign(self) -> Decision:
        sent = time.monotonic()  # the lease's TTL cannot start before this instant
        try:
            lease = await self._call("grant lease", lambda c: c.lease(self.ttl))
            value = json.dumps({"name": self.me.name, "priority": self.me.priority,
                                **self._payload()}).encode()  # fmt: skip
            succeeded, _ = await self._call(
                "campaign",
                lambda c: c.transaction(
                    compare=[c.transactions.create(self.key) == 0],
                    success=[c.transactions.put(self.key, value, lease.id)],
                    failure=[],
                ),
            )
        except EtcdUnavailable as exc:
            return Decision("wait", f"campaign failed: {exc}")
        if not succeeded:
            await self._revoke_lease(lease.id)
            return Decision("follow", "campaign lost: another node created the leader key first")
        self._lease_id = lease.id
        self.state = won(self.state, sent)
        try:
            found = await self._call("read fencing token", lambda c: c.get(self.key))
            self.fencing_token = int(found.create_revision) if found is not None else None
        except EtcdUnavailable:
            self.fencing_token = None
        return Decision(
            "campaign", f"acquired the lease as leader (fencing token {self.fencing_token})"
        )

    async def _renew(self) -> None:
        lease_id = self._lease_id
        if lease_id is None:
            return
        sent = time.monotonic()
        try:
            reply = await self._call("keepalive", lambda c: c.refresh_lease(lease_id))
        except EtcdUnavailable as exc:
            log.warning("%s: keepalive failed, deadline unchanged: %s", self.me.name, exc)
            return
        if reply is None or reply.TTL <= 0:
            log.warning("%s: lease %x expired in etcd", self.me.name, self._lease_id)
            self.state = ElectionState(LeaseClock(self.state.lease.ttl, self.state.lease.margin))
            self._lease_id = None
            return
        self.state = renewed(self.state, sent)

    async def _revoke(self) -> None:
        lease_id, self._lease_id = self._lease_id, None
        self.fencing_token = None
        if lease_id is not None:
            await self._revoke_lease(lease_id)

    async def _revoke_lease(self, lease_id: int) -> None:
        try:
            await self._call("revoke lease", lambda c: c.revoke_lease(lease_id))
        except EtcdUnavailable as exc:
            log.warning("%s: could not revoke lease (it will expire): %s", self.me.name, exc)
