"""Leader election on etcd v3 with aetcd.

- membership: every node keeps ``members/<name>`` alive on a lease of its own (priority,
  health, admin address), so candidates know who else could take the seat.
- observe: one range read of the election keys, then a watch from the next revision;
  when the watch breaks (or any request fails) the view is unknown until a fresh read
  and a new watch (events may have been missed).
- campaign: grant a lease, then one transaction: put the leader key with it if the key's
  create_revision is 0 (absent). The key's create revision is the fencing token.
- renew every TTL/3: a lease keepalive and a *beat* (the leader key written again under
  the fencing token, pipelined); leadership is the deadline of :mod:`election.lease`:
  any etcd error or silence counts against it, never for it.
- takeover of a silent leader (``fence_slack`` set): a standby that saw no write of the
  leader key for the leader's whole window, plus the time its fence may lag, deletes the
  key if its mod revision is still the one seen, then campaigns -- without waiting for
  etcd to expire and reap the lease (up to TTL + 0.5 s). See :class:`election.view.Silence`.
- resign: revoke the lease (etcd deletes the key at once). A planned handover to a named
  node first writes ``handover`` under the fencing token.

Knows nothing of proxies or IPs; callers ask ``is_leader()`` (a deadline check on the
monotonic clock) and may register ``on_change`` / ``on_yield``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import aetcd

from election.decide import (
    Candidate,
    Decision,
    ElectionState,
    Me,
    Observation,
    decide,
    renewed,
    won,
)
from election.errors import ElectionError, EtcdUnavailable
from election.etcdclient import ETCD_ERRORS, EtcdAccess, close_client
from election.lease import LeaseClock, default_margin, lead_ttl
from election.view import (
    ClusterView,
    Entry,
    Keys,
    LeaderRecord,
    Member,
    Silence,
    Succession,
    snapshot,
)

log = logging.getLogger("floatgate.election")
# The requests whose time is a round trip (keepalives are leader-local in etcd, reads are
# a ReadIndex): raft writes (grants, txns) also wait for fsync and are not samples.
LeaseKind = Literal["leader", "member"]  # which lease on_lease tells of

RTT_SAMPLES = frozenset({"keepalive", "read election keys", "member keepalive"})

_DIGITS = re.compile(r"[0-9.]+")
PROMISE_CHECK = 0.25  # how long a peer tries etcd before promising (failsafe)


class EtcdElection:
    def __init__(
        self,
        access: EtcdAccess,
        cluster: str,
        me: Me,
        ttl: int = 2,
        margin: float | None = None,
        payload: Callable[[], dict[str, Any]] | None = None,
        failsafe: Callable[[tuple[Member, ...], float], Awaitable[bool]] | None = None,
        uptodate: Callable[[], bool] | None = None,
        on_request: Callable[[str, float], None] | None = None,
        down_visible_for: int = 600,
        promise_file: Path | None = None,
        fence_slack: float | None = None,
    ) -> None:
        """``failsafe``: when etcd cannot be reached, ask it whether every peer of the
        failsafe list (the ``failsafe`` key this leader keeps: every node that could
        campaign) promised, for the given seconds, not to campaign; if so the leader
        keeps its seat past the deadline (etcd_loss: failsafe). None: leadership ends at
        the deadline (etcd_loss: release), and the leader deletes a failsafe list.
        ``fence_slack``: how long after its deadline a holder's fence may still pass
        frames (bpf: none; an address lifetime: the kernel's lag); with it, a silent
        leader's seat is taken once its fence is shut for sure; None: only when etcd
        deletes the key."""
        if ttl < 1:
            raise ValueError("lease TTL must be at least 1 s")
        if not access.endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.access = access
        self.me = me
        self.ttl = ttl
        self.keys = Keys.of(cluster)
        self.request_timeout = max(0.2, ttl / 3)  # before any round trip was measured
        self.rtt: float | None = None  # etcd round trips: rises at once, decays slowly
        self._margin = margin
        self.state = ElectionState(LeaseClock(float(ttl), margin or default_margin(ttl)))
        self.granted_ttl: int | None = None  # what etcd granted for the last leader lease
        self.ttl_note: str | None = None  # set when etcd grants more than ``ttl``
        self.fencing_token: int | None = None
        self.last_token: int | None = None  # this node's last reign, kept after it ends
        self.last_decision = Decision("wait", "not started")
        self.view: ClusterView | None = None  # None: unknown (no read+watch in place)
        self._payload = payload or (lambda: {})
        self._endpoint = 0
        self._client = self.access.client(0, float(ttl))  # calls have their own timeouts
        self._background: set[asyncio.Future[None]] = set()
        self.down_visible_for = down_visible_for  # seconds a vanished member stays listed
        # Members seen vanishing, with when (monotonic, UTC): recorded DOWN by whichever
        # reign comes first (a killed active's entry goes before a successor leads).
        self._vanished: dict[str, tuple[Member, float, str]] = {}
        self._lease_id: int | None = None
        self._member_lease: int | None = None
        self._member_written: bytes | None = None
        self._member_renewed = 0.0
        self._member_task: asyncio.Future[None] | None = None  # a round of _keep_membership
        self._last_contact = float("-inf")  # last successful etcd round trip
        self._wake = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[bool, str], None]] = []
        self._lease_listeners: list[Callable[[LeaseKind, int | None], None]] = []
        self._on_yield: Callable[[str], Awaitable[None]] | None = None
        self._yielding = False
        self._failsafe = failsafe
        self._uptodate = uptodate or (lambda: True)
        self.failsafe_active = False  # leading on peers' promises while etcd is away
        self.known_members: tuple[Member, ...] = ()  # as last seen while etcd answered
        # Whom a failsafe reign must ask: a superset of the failsafe list etcd holds (as
        # found at the campaign, and every write since, in flight or done); None: unknown.
        self.failsafe_members: dict[str, str | None] | None = None
        self._failsafe_writing = False
        self._failsafe_confirmed: dict[str, str | None] | None = None  # etcd holds it
        self._failsafe_revision = 0  # ... as of this revision (0: no list there)
        self._campaigning = False  # a campaign is under way: no promise meanwhile
        self._campaign_unknown_until = 0.0  # a campaign txn went unanswered: it may have won
        self._short_grant_until = 0.0  # etcd granted less than asked: no campaign till then
        self._short_grant_note = ""
        self.promised_to: str | None = None
        self._no_campaign_until = 0.0
        self.promise_file = promise_file  # failsafe promises, kept across restarts
        self._load_promise()
        self.succession = Succession()  # leader changes and the last vacancy, as seen
        self._on_request = on_request  # (operation, seconds) of each etcd request
        self._isolated_until = 0.0
        self.fence_slack = fence_slack
        self.silence = Silence()  # the leader key's last write, as this node saw it
        self._evict: tuple[int, int] | None = None  # (token, mod revision) of a silent leader
        self._beats = 0  # beats in flight on the client in use
        self._beat_tried = float("-inf")  # send time of the latest beat
        self._beat_failed = False  # the latest beat failed (or its client was replaced)
        self._beat_seq = 0  # numbers the beats: which one is the latest
        self._beat_pending = False  # the latest beat has no answer yet
        self._beat_hedge_at = float("inf")  # when an unanswered beat is given up on
        self._client_gen = 0  # counts client replacements: which client a beat went to
        self._client_answered_at = float("inf")  # the first answer from the client in use
        self._beat_gen = 0  # the client generation the latest beat went to
        self._key_lost = False  # a beat was refused: the leader key is not ours

    # -- what callers ask -------------------------------------------------------------

    def is_leader(self, now: float | None = None) -> bool:
        """Leader only until the deadline, whatever the loop is doing right now."""
        moment = time.monotonic() if now is None else now
        return self.state.leading and self.state.lease.valid(moment)

    def deadline(self) -> float | None:
        return self.state.lease.deadline if self.state.leading else None

    @property
    def leader(self) -> LeaderRecord | None:
        return self.view.leader(self.keys) if self.view is not None else None

    def _leader_token(self) -> int | None:
        leader = self.leader
        return leader.fencing_token if leader is not None else None

    def members(self) -> tuple[Member, ...]:
        return self.view.members(self.keys) if self.view is not None else ()

    def on_change(self, callback: Callable[[bool, str], None]) -> None:
        self._listeners.append(callback)

    def on_lease(self, callback: Callable[[LeaseKind, int | None], None]) -> None:
        """Called as ``callback("leader", id)`` with each lease granted for a campaign
        (before the campaign is sent: no reign starts on a lease not yet told), with
        ``("leader", None)`` once it is revoked, and ``("member", id)`` with each lease
        granted for the member entry (before the entry is written)."""
        self._lease_listeners.append(callback)

    def _tell_lease(self, which: LeaseKind, lease_id: int | None) -> None:
        for callback in self._lease_listeners:
            callback(which, lease_id)

    def on_yield(self, handler: Callable[[str], Awaitable[None]]) -> None:
        """Called (as a task) when this leader should hand over to a better node
        (nopreempt off); without a handler the leader keeps the seat."""
        self._on_yield = handler

    # -- the loop ----------------------------------------------------------------------

    async def run(self, healthy: Callable[[], bool]) -> None:
        self._restart_watch()
        guard = asyncio.create_task(self._failsafe_guard()) if self._failsafe else None
        try:
            while True:
                try:
                    decision = await self.step(healthy())
                except Exception:  # never let a surprise end the election loop
                    log.exception("%s: election step failed; continuing", self.me.name)
                    decision = Decision("wait", "election step failed")
                pause = 0.05
                if decision.action in ("renew", "yield"):  # wake when a renewal is due
                    due = min((self.state.lease.last_sent or 0.0) + self.ttl / 3,
                              self._beat_due_at())  # fmt: skip
                    pause = min(self.ttl / 3, max(0.01, due - time.monotonic()))
                self._wake.clear()
                try:
                    async with asyncio.timeout(pause):
                        await self._wake.wait()  # a watch event ends the pause early
                except TimeoutError:
                    pass
        finally:
            if guard is not None:
                guard.cancel()
            if self._watch_task is not None:
                self._watch_task.cancel()
            if self.state.leading:
                try:  # bounded: stopping must not wait on etcd
                    async with asyncio.timeout(3.0):
                        await self.resign(leaving=True)
                except TimeoutError:
                    log.warning("%s: resign timed out; the lease will expire", self.me.name)

    async def step(self, healthy: bool) -> Decision:
        """One tick: observe, decide, act. Returns the decision (for logs/tests)."""
        was_leading = self.is_leader()
        observation = self._observe(healthy)
        self.state, decision = decide(self.state, observation, self.me)
        promised = time.monotonic() < self._no_campaign_until
        if decision.action == "campaign" and promised:
            decision = Decision("wait", f"promised {self.promised_to} (failsafe) not to "
                                "campaign yet: it kept the seat while etcd was away")  # fmt: skip
        elif decision.action == "campaign":
            why = decision.reason  # why it campaigns (e.g. the STALE alarm), then the result
            decision = await self._campaign()
            decision = Decision(decision.action, f"{why}: {decision.reason}", decision.target)
        elif decision.action in ("renew", "yield"):
            # A failed keepalive is retried at once: the failure moved the client to
            # the next endpoint, and waiting a whole interval could let the deadline
            # pass while another etcd member would have answered.
            if self._beat_stuck():
                # the member in use is silent: the keepalive may not be due for a while
                # (after a failure the two no longer go out together), and the deadline
                # rests on this beat too
                waited = time.monotonic() - self._beat_tried
                log.warning("%s: beat unanswered after %.2fs; trying the next etcd member",
                            self.me.name, waited)  # fmt: skip
                # as a keepalive's timeout does: raise the estimate, so a cluster that is
                # only slow to commit (fsync) is not left member after member each beat
                self._sample_rtt(waited)
                self._reconnect(self._client)
            # The deadline rests on the older of the two: they go out together. One that
            # is due takes the other along once half its interval has passed (a timer
            # that woke for one a moment before the other was due left that one to the
            # next step, after this one's round trips: half a second at a 200 ms RTT).
            now = time.monotonic()
            since_keepalive = now - (self.state.lease.last_sent or 0.0)
            beat_due = now >= self._beat_due_at()
            due = since_keepalive >= self.ttl / 3
            if due and not beat_due and not self._beat_pending:
                beat_due = now >= self._beat_due_at() - self.ttl / 6
            if beat_due and not due:
                due = since_keepalive >= self.ttl / 6
            if beat_due:
                self._send_beat()
            if due and not await self._renew() and len(self.access.endpoints) > 1:
                self._beat_failed = True  # its client may be the dead one too: beat anew
                self._send_beat()
                await self._renew()
            if decision.action == "yield" and decision.target:
                self._yield_to(decision.target)
        elif decision.action in ("resign", "step_down"):
            await self._revoke()
        if self.view is not None:  # etcd answers: keep the member entry (else skip the
            self._tend_membership(healthy)  # timeouts; re-registered once back)
            if self.is_leader():
                self._tend_failsafe_list()
        left = self._no_campaign_until - time.monotonic()
        if decision.action == "wait" and left > 0 and not observation.leader_known:
            reason = f"etcd unreachable; promised {self.promised_to} (failsafe) not to campaign"
            decision = Decision("wait", f"{reason} for {left:.1f}s")
        if _worth_logging(decision, self.last_decision):
            token = self.fencing_token if self.is_leader() else self._leader_token()
            log.info("%s: %s [fencing token %s]", self.me.name, decision.reason, token,
                     extra={"event": "election", "action": decision.action,
                            "fencing_token": token, "reason": decision.reason})  # fmt: skip
        self.last_decision = decision
        now_leading = self.is_leader()
        if now_leading != was_leading:
            for callback in self._listeners:
                callback(now_leading, decision.reason)
        return decision

    async def resign(self, leaving: bool = False) -> None:
        """Give up leadership now: the lease is revoked, so another node can win at once.
        Before that, the member entry says "unhealthy" (or is removed when ``leaving``),
        so no follower waits for this node to take the seat back. First of all the leader
        key says "leaving" (under the fencing token), so followers can tell a handover
        from an expiry when they time the takeover."""
        if self.is_leader():
            await self.update_leader(leaving=True)
        self.state, _ = decide(
            self.state, Observation(time.monotonic(), False, True, self.me.name), self.me
        )
        await self._membership_settled()  # its writes must not land after these
        if leaving:
            await self._leave()
        else:
            await self._keep_membership(False)
        await self._revoke()

    async def name_successor(self, target: str) -> None:
        """Before a planned handover: write ``handover`` naming ``target`` (a live,
        healthy member), under the fencing token, with a lease of 2 x TTL so a target
        that never campaigns does not block the others for long."""
        token = self.fencing_token
        if not self.is_leader() or token is None:
            raise ElectionError("not the leader: only the active node can name a successor")
        if target == self.me.name:
            raise ElectionError(f"{target} is this node")
        known = {m.name: m for m in self.members()}
        if target not in known:
            raise ElectionError(f"{target} is not a running member of the cluster")
        if not known[target].healthy:
            raise ElectionError(f"{target} is not healthy: it cannot take over")
        value = json.dumps({"to": target, "from": self.me.name}).encode()
        lease = await self._call("grant handover lease", lambda c: c.lease(2 * self.ttl))
        succeeded, _ = await self._call(
            "write handover",
            lambda c: c.transaction(
                compare=[c.transactions.create(self.keys.leader) == token],
                success=[c.transactions.put(self.keys.handover, value, lease.id)],
                failure=[],
            ),
        )
        if not succeeded:
            raise ElectionError("the leader key changed (fencing token mismatch): not leader")

    async def update_leader(self, leaving: bool = False) -> bool:
        """Rewrite the leader key's value (payload changed, e.g. a new configuration
        revision) -- a transaction under the fencing token, on the same lease. False
        when not leader or the token no longer matches."""
        token, lease_id = self.fencing_token, self._lease_id
        if not self.is_leader() or token is None or lease_id is None:
            return False
        value = self._leader_value(leaving)
        try:
            return await self._write_leader("update leader key", token, lease_id, value)
        except EtcdUnavailable:
            return False

    async def _write_leader(
        self, what: str, token: int, lease_id: int, value: bytes, timeout: float | None = None
    ) -> bool:
        """Put the leader key's value under the fencing token, on the reign's lease:
        False when the key is no longer this reign's."""
        ok, _ = await self._call(what, lambda c: c.transaction(
            compare=[c.transactions.create(self.keys.leader) == token],
            success=[c.transactions.put(self.keys.leader, value, lease_id)],
            failure=[],
        ), timeout=timeout)  # fmt: skip
        return bool(ok)

    def _leader_value(self, leaving: bool = False, window: float | None = None) -> bytes:
        """The leader key's value. ``window``: what this reign leads on (TTL - margin),
        stated so a standby knows how long after a write this node may still hold the
        seat; ``fence_lag``: how long after that its fence may still pass frames."""
        extra: dict[str, Any] = {"leaving": True} if leaving else {}
        if self.fence_slack is not None:
            extra["fence_lag"] = self.fence_slack
        stated = self.state.lease.window if window is None else window
        return json.dumps({"name": self.me.name, "priority": self.me.priority,
                           **self._payload(), "window": round(stated, 6),
                           **extra}).encode()  # fmt: skip

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.wait([self._watch_task], timeout=2.0)
        if self._member_task is not None:  # it could re-register after the leave
            self._member_task.cancel()
            await asyncio.wait([self._member_task])
        await self._leave()
        if self._background:  # bounded: shutting down must never hang on etcd
            _, late = await asyncio.wait(set(self._background), timeout=3.0)
            for task in late:
                task.cancel()
        await close_client(self._client)

    # -- etcd --------------------------------------------------------------------------

    async def _call(
        self, what: str, request: Callable[[aetcd.Client], Any], timeout: float | None = None
    ) -> Any:
        """One etcd request. A failure replaces the client (the next endpoint when there
        are several: members share one state) and restarts the watch; it still counts
        against leadership."""
        client = self._client
        started = time.monotonic()
        if started < self._isolated_until:
            raise EtcdUnavailable(f"{what}: etcd traffic dropped (drill: isolate)")
        try:
            async with asyncio.timeout(timeout or self._request_timeout()):
                result = await request(client)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task is being cancelled: let it go
            # gRPC reports a call on a channel closed under it as CancelledError
            self._reconnect(client)
            raise EtcdUnavailable(f"{what}: the connection was closed") from exc
        except ETCD_ERRORS as exc:
            self._reconnect(client)
            raise EtcdUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        self._last_contact = time.monotonic()
        elapsed = self._last_contact - started
        if client is self._client:
            # samples: not raft writes, nor requests that waited for the connection
            # (unless none was measured yet: too high a first estimate is the safe one)
            fresh = started < self._client_answered_at and self.rtt is not None
            if what in RTT_SAMPLES and not fresh:
                self._sample_rtt(elapsed)
            self._client_answered_at = min(self._client_answered_at, self._last_contact)
        if self._on_request is not None:
            self._on_request(what, elapsed)
        return result

    def _sample_rtt(self, seconds: float) -> None:
        """Round trips of keepalives and reads (no fsync behind them): the estimate
        rises at once and decays slowly."""
        if self.rtt is None or seconds > self.rtt:
            self.rtt = seconds
        else:
            self.rtt = 0.8 * self.rtt + 0.2 * seconds

    def _request_timeout(self) -> float:
        """TTL/3 (at least 200 ms), or 3 measured round trips if longer, at most a TTL;
        a whole TTL until a round trip was measured (the first request also pays for
        the connection: TCP, TLS, HTTP/2 settings, several round trips on a slow link)."""
        if self.rtt is None:
            return max(self.request_timeout, float(self.ttl))
        return min(float(self.ttl), max(self.request_timeout, self._round_trips() * self.rtt))

    def _round_trips(self) -> int:
        """How many round trips a request may take: 3, or 6 on a client that has not
        answered yet (its requests wait for the connection first: TCP, TLS, HTTP/2
        settings). Without that allowance, a slow link replaced each new client before
        its first answer: a new connection every timeout, the deadline passed."""
        return 3 if self._client_answered_at < float("inf") else 6

    def keepalive_timeout(self) -> float:
        """How long a keepalive may take before it is retried on the next endpoint: TTL/6
        (at least 200 ms), or 3 measured round trips if longer (a 500 ms round trip
        failed every renewal against TTL/6 at TTL 3 s). Never more than TTL - margin
        (an answer later than that renews nothing); with more than one endpoint, never
        more than half the time left before the deadline, so a retry on the next one
        still fits."""
        measured = self._round_trips() * self.rtt if self.rtt is not None else 0.0
        ceiling = self.state.lease.ttl - self.state.lease.margin
        deadline = self.state.lease.deadline
        if len(self.access.endpoints) > 1 and deadline is not None:
            ceiling = min(ceiling, max(0.2, (deadline - time.monotonic()) / 2))
        return min(ceiling, max(0.2, self.ttl / 6, measured))

    def _reconnect(self, failed: aetcd.Client) -> None:
        """Replace ``failed`` (unless another failure already did). The old client is
        closed a little later, so calls still running on it end on their own."""
        if failed is not self._client:
            return
        if self._beat_pending and self._beat_gen == self._client_gen:
            self._beat_failed = True  # the latest beat went to this client: send anew
        self._client_gen += 1
        self._client_answered_at = float("inf")
        self._beats = 0  # beats on the old client end with it; they no longer count
        self._endpoint = (self._endpoint + 1) % len(self.access.endpoints)
        self._client = self.access.client(self._endpoint, float(self.ttl))
        self._spawn(self._close_later(failed))
        if self._watch_task is not None:
            self._restart_watch()

    async def _close_later(self, client: aetcd.Client) -> None:
        await asyncio.sleep(self.request_timeout)
        await close_client(client)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _restart_watch(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        self.view = None
        self._watch_task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Read the election keys, then follow them with a watch from the next
        revision. Any break leaves the view unknown and starts over with a fresh read."""
        while True:
            try:
                found = await self._call(
                    "read election keys", lambda c: c.get_prefix(self.keys.prefix)
                )
                self.view = snapshot(
                    (kv.key, kv.value, kv.create_revision, kv.mod_revision) for kv in found.kvs
                )
                self._wake.set()
                client = self._client
                async with asyncio.timeout(self._request_timeout()):
                    watch = await client.watch_prefix(
                        self.keys.prefix, start_revision=found.header.revision + 1
                    )
                async for event in watch:
                    kv = event.kv
                    gone = event.kind == "DELETE"
                    entry = Entry(None if gone else kv.value, kv.create_revision, kv.mod_revision)
                    if self.view is not None:
                        self.view = self.view.applied(kv.key, entry)
                    self._wake.set()
                raise EtcdUnavailable("the watch ended")
            except (*ETCD_ERRORS, EtcdUnavailable) as exc:
                log.debug("%s: election watch broke (%s); reading again", self.me.name, exc)
                self.view = None
                self._wake.set()
                await asyncio.sleep(0.1)

    def _observe(self, healthy: bool) -> Observation:
        now = time.monotonic()
        view = self.view
        if view is None or now - self._last_contact > self.ttl:
            return Observation(now, healthy, leader_known=False, key_lost=self._key_lost)
        leader = view.leader(self.keys)
        silent = self._silent(view, leader, now)
        if silent and leader is not None:
            assert self.silence.beat is not None
            self.succession = self.succession.silenced(leader, self.silence.beat.seen_at)
            leader = None
        else:
            self.succession = self.succession.observed(leader, now)
        before = {m.name: m for m in self.known_members}
        self.known_members = view.members(self.keys)
        vanished = set(before) - {m.name for m in self.known_members} - {self.me.name}
        if self.down_visible_for > 0:
            self._note_vanished([before[name] for name in sorted(vanished)], now)
        members = tuple(Candidate(m.name, m.priority, m.healthy, m.payload.get("uptodate", True)
                                  is not False) for m in self.known_members)  # fmt: skip
        return Observation(
            now, healthy, leader_known=True, leader=leader.name if leader else None,
            members=members, handover_to=view.handover_to(self.keys), uptodate=self._uptodate(),
            silent_leader=self.succession.seen.name if silent and self.succession.seen else None,
            key_lost=self._key_lost,
        )  # fmt: skip

    def _silent(self, view: ClusterView, leader: LeaderRecord | None, now: float) -> bool:
        """Whether the leader key's holder went silent (see election.view.Silence);
        records the write to take away in ``_evict``."""
        self._evict = None
        entry = view.entries.get(self.keys.leader)
        if leader is None or entry is None or self.state.leading:
            return False
        window, lag = leader.payload.get("window"), leader.payload.get("fence_lag")
        stated = float(window) if isinstance(window, (int, float)) and window > 0 else None
        self.silence = self.silence.observed(leader.fencing_token, entry.mod_revision, stated,
                                             now)  # fmt: skip
        slack = self.fence_slack
        if slack is not None and isinstance(lag, (int, float)) and lag > slack:
            slack = float(lag)  # the leader's fence lags more than this node's would
        if not self.silence.silent(now, slack):
            return False
        self._evict = (leader.fencing_token, entry.mod_revision)
        return True

    def _tend_membership(self, healthy: bool) -> None:
        """Keep the member entry in the background, one round at a time: its round
        trips must not hold back the next step (on a 250 ms link the member keepalive,
        awaited in the step, put every leader renewal a round trip late)."""
        if self._member_task is None or self._member_task.done():
            self._member_task = asyncio.ensure_future(self._keep_membership(healthy))
            self._background.add(self._member_task)
            self._member_task.add_done_callback(self._background.discard)

    async def _membership_settled(self) -> None:
        """Wait for a background round of the member entry: a write after this must
        not be overtaken by an older one."""
        if self._member_task is not None and not self._member_task.done():
            await asyncio.wait([self._member_task])

    async def _keep_membership(self, healthy: bool) -> None:
        """Keep ``members/<name>`` alive and current: re-written when what it says
        changes, its lease renewed every TTL/3, re-created if the lease was lost."""
        value = json.dumps({"name": self.me.name, "priority": self.me.priority,
                            "healthy": healthy, "uptodate": self._uptodate(),
                            **self._payload()}).encode()  # fmt: skip
        now = time.monotonic()
        try:
            if self._member_lease is not None and now - self._member_renewed >= self.ttl / 3:
                lease_id = self._member_lease
                reply = await self._call("member keepalive", lambda c: c.refresh_lease(lease_id))
                if reply is None:  # no answer: not a verdict on the lease
                    raise EtcdUnavailable("member keepalive: no answer")
                self._member_renewed = now
                if reply.TTL <= 0:
                    self._member_lease = None
            if self._member_lease is None:
                lease = await self._call("grant member lease", lambda c: c.lease(self.ttl))
                self._member_lease, self._member_written = lease.id, None
                self._tell_lease("member", int(lease.id))
                self._member_renewed = now
            if value != self._member_written:
                lease_id = self._member_lease
                key = self.keys.member(self.me.name)
                first = self._member_written is None
                await self._call("register member", lambda c: c.put(key, value, lease_id))
                self._member_written = value
                if first:  # back: no longer DOWN
                    down = self.keys.down_member(self.me.name)
                    await self._call("clear own down record", lambda c: c.delete(down))
        except EtcdUnavailable as exc:
            log.debug("%s: membership: %s", self.me.name, exc)

    def _tend_failsafe_list(self) -> None:
        """The active keeps the failsafe list equal to the members in etcd (itself
        included), one write at a time; without failsafe it deletes a list left over."""
        view, token = self.view, self.fencing_token
        if self._failsafe_writing or view is None or token is None:
            return
        held = view.failsafe(self.keys)
        if self._failsafe is None:
            if held is not None:
                self._failsafe_writing = True
                self._spawn(self._write_failsafe_list(token, None))
            return
        desired: dict[str, str | None] = {
            m.name: m.payload.get("admin") if isinstance(m.payload.get("admin"), str) else None
            for m in self.known_members
        }
        admin = self._payload().get("admin")
        desired[self.me.name] = admin if isinstance(admin, str) else None
        if held == desired and view.failsafe_revision(self.keys) == self._failsafe_revision:
            return
        changed_at = view.failsafe_changed_at(self.keys)
        if (held != desired and self._failsafe_confirmed == desired
                and 0 < changed_at < self._failsafe_revision):  # fmt: skip
            return  # the view does not show this reign's last write yet
        # Otherwise write: each write compares the revision this reign last confirmed,
        # so one that lands late cannot roll the list back, and a list changed by
        # someone else (etcdctl del) is read again and then rewritten.
        self._failsafe_writing = True
        self._spawn(self._write_failsafe_list(token, desired))

    async def _write_failsafe_list(self, token: int, members: dict[str, str | None] | None) -> None:
        """Write (or with None delete) the failsafe list under the fencing token. Until
        the write is answered etcd may hold the old list or the new one: a failsafe reign
        asks both."""
        known = self.failsafe_members
        if members is not None:
            self.failsafe_members = None if known is None else {**known, **members}
        key = self.keys.failsafe
        value = json.dumps({"leader": self.me.name, "fencing_token": token,
                            "members": members or {}}).encode()  # fmt: skip
        expected = self._failsafe_revision
        try:
            done, responses = await self._call("write the failsafe list", lambda c: c.transaction(
                compare=[c.transactions.create(self.keys.leader) == token,
                         c.transactions.mod(key) == expected],
                success=[c.transactions.delete(key) if members is None
                         else c.transactions.put(key, value)],
                failure=[],
            ))  # fmt: skip
            if done and members is not None and self.fencing_token == token:
                self.failsafe_members = self._failsafe_confirmed = members
                self._failsafe_revision = int(responses[0].response_put.header.revision)
                log.info("%s: failsafe list in etcd: %s", self.me.name,
                         ", ".join(sorted(members)))  # fmt: skip
            elif done:  # deleted (etcd_loss: release)
                self.failsafe_members = self._failsafe_confirmed = None
                self._failsafe_revision = 0
            elif self.fencing_token == token:  # not the list this reign wrote: read it
                found = await self._call("read the failsafe list",
                                         lambda c: c.get(key))  # fmt: skip
                entries = (
                    {}
                    if found is None
                    else {key: Entry(found.value, found.create_revision, found.mod_revision)}
                )
                fresh = ClusterView(entries)  # fmt: skip
                now_held = fresh.failsafe(self.keys)
                # a write of this reign still unanswered could land on that revision:
                # keep asking its members too until a write is confirmed
                self.failsafe_members = None if now_held is None else {
                    **(self.failsafe_members or {}), **now_held}  # fmt: skip
                self._failsafe_confirmed = now_held
                self._failsafe_revision = fresh.failsafe_revision(self.keys)
        except EtcdUnavailable as exc:
            log.debug("%s: failsafe list: %s", self.me.name, exc)
        finally:
            self._failsafe_writing = False

    def failsafe_peers(self) -> tuple[Member, ...] | None:
        """The other nodes of the failsafe list, to ask for promises; None: unknown."""
        if self.failsafe_members is None:
            return None
        return tuple(Member(name, 0, False, {"admin": admin})
                     for name, admin in sorted(self.failsafe_members.items())
                     if name != self.me.name)  # fmt: skip

    def _note_vanished(self, members: list[Member], now: float) -> None:
        """Members whose entry vanished wait here until this node leads (at once if it
        does): the active records them DOWN. A member back, or one gone longer than it
        would stay listed, is dropped."""
        seen = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        for member in members:
            self._vanished[member.name] = (member, now, seen)
        running = {m.name for m in self.known_members}
        self._vanished = {
            name: held for name, held in self._vanished.items()
            if name not in running and now - held[1] < self.down_visible_for
        }  # fmt: skip
        if self._vanished and self.is_leader(now):
            pending = [(member, seen) for member, _, seen in self._vanished.values()]
            self._vanished = {}
            self._spawn(self._record_down(pending))

    async def _record_down(self, members: list[tuple[Member, str]]) -> None:
        """The active writes ``down/<name>`` for members whose entry vanished (with
        when it was seen going, in UTC), on a lease of ``down_visible_for`` seconds:
        they stay listed as DOWN that long."""
        try:
            lease = await self._call("grant down-record lease",
                                     lambda c: c.lease(self.down_visible_for))  # fmt: skip
            for member, seen in members:
                record = json.dumps({"priority": member.priority, "last_seen": seen,
                                     "admin": member.payload.get("admin")}).encode()  # fmt: skip
                await self._put_down(self.keys.down_member(member.name), record, lease)
                log.warning("%s: member %s is gone (its entry expired or it stopped); listed "
                            "as DOWN for %d s", self.me.name, member.name, self.down_visible_for,
                            extra={"event": "member_down", "member": member.name})  # fmt: skip
        except EtcdUnavailable as exc:
            log.debug("%s: recording members down: %s", self.me.name, exc)

    async def _put_down(self, key: bytes, record: bytes, lease: Any) -> None:
        await self._call("record a member down", lambda c: c.put(key, record, lease))

    async def _leave(self) -> None:
        """Leave the member list at once rather than after a TTL."""
        member_lease, self._member_lease = self._member_lease, None
        if member_lease is not None:
            try:
                await self._call("revoke member lease", lambda c: c.revoke_lease(member_lease))
            except EtcdUnavailable:
                pass

    async def _failsafe_list_now(self) -> tuple[dict[str, str | None] | None, int]:
        """The failsafe list and its revision: from the view, or read when there is none
        (a leader whose lease expired in etcd campaigns again before its watch is back)."""
        view = self.view
        if view is None:
            found = await self._call("read the failsafe list", lambda c: c.get(self.keys.failsafe))
            entries = {} if found is None else {
                self.keys.failsafe: Entry(found.value, found.create_revision, found.mod_revision)
            }  # fmt: skip
            view = ClusterView(entries)
        return view.failsafe(self.keys), view.failsafe_revision(self.keys)

    async def _campaign(self) -> Decision:
        """While a campaign runs (and for a TTL after one whose outcome is unknown) this
        node promises nothing: a promise given while its own grant or transaction is
        on its way could be followed by a win."""
        if time.monotonic() < self._short_grant_until:
            return Decision("wait", self._short_grant_note)
        self._campaigning = True
        try:
            return await self._campaign_steps()
        finally:
            self._campaigning = False

    async def _campaign_steps(self) -> Decision:
        try:
            listed, listed_at = await self._failsafe_list_now()
        except EtcdUnavailable as exc:
            return Decision("wait", f"reading the failsafe list failed: {exc}")
        # A list naming only its writer backs no failsafe reign (nobody to promise):
        # it restricts nothing (else a lone survivor's list would bar everyone for good).
        if listed is not None and len(listed) > 1 and self.me.name not in listed:
            names = ", ".join(sorted(listed)) or "nobody"
            return Decision("wait", (
                f"not in the failsafe member list in etcd ({names}): only those may campaign, "
                "since a leader that lost etcd may be keeping its seat on their promises; the "
                "active adds this node within a step (if none of them will come back, delete "
                f"the key: etcdctl del {self.keys.failsafe.decode()})"))  # fmt: skip
        evicted = ""
        evict, self._evict = self._evict, None
        if evict is not None:
            token, revision = evict
            try:
                gone, _ = await self._call("take the seat of a silent leader", lambda c:
                    c.transaction(
                        compare=[c.transactions.create(self.keys.leader) == token,
                                 c.transactions.mod(self.keys.leader) == revision,
                                 c.transactions.mod(self.keys.failsafe) == listed_at],
                        success=[c.transactions.delete(self.keys.leader)],
                        failure=[],
                    ))  # fmt: skip
            except EtcdUnavailable as exc:
                return Decision("wait", f"taking the seat of a silent leader failed: {exc}")
            if not gone:  # this node's view is behind: read again, and no vacancy after all
                self._restart_watch()
                vacancy = self.succession.vacancy
                if (
                    vacancy is not None
                    and vacancy.kind == "silence"
                    and (vacancy.fencing_token == token)
                ):
                    self.succession = replace(self.succession, vacancy=None)
                return Decision("follow", (
                    "the silent leader's key changed before it could be taken (it wrote "
                    "again, or another node took it): not campaigning"))  # fmt: skip
            evicted = f"deleted the silent leader's key (fencing token {token}); "
        sent = time.monotonic()  # the lease's TTL cannot start before this instant
        asked = False
        try:
            lease = await self._call("grant lease", lambda c: c.lease(self.ttl))
            self._tell_lease("leader", int(lease.id))
            # The window written is the one the new reign leads on (the granted TTL);
            # the state takes it only once won (a reign still running keeps its own).
            granted = int(getattr(lease, "ttl", 0) or self.ttl)
            ttl, note = lead_ttl(self.ttl, granted)
            if ttl is None:
                if note != self._short_grant_note:
                    log.error("%s: %s", self.me.name, note)
                self._short_grant_note = f"not campaigning for a TTL: {note}"
                self._short_grant_until = time.monotonic() + self.ttl
                if await self._revoke_lease(lease.id):
                    self._tell_lease("leader", None)
                return Decision("wait", f"{evicted}{self._short_grant_note}")
            value = self._leader_value(window=ttl - (self._margin or default_margin(ttl)))
            asked = True
            succeeded, responses = await self._call(
                "campaign",
                lambda c: c.transaction(
                    # the failsafe list as read: it named this node (or there is none)
                    compare=[
                        c.transactions.create(self.keys.leader) == 0,
                        c.transactions.mod(self.keys.failsafe) == listed_at,
                    ],
                    success=[
                        c.transactions.put(self.keys.leader, value, lease.id),
                        c.transactions.delete(self.keys.handover),
                    ],
                    failure=[],
                ),
            )
        except EtcdUnavailable as exc:
            if asked:  # the transaction may have won: promise nothing for a TTL
                self._campaign_unknown_until = time.monotonic() + self.ttl
            return Decision("wait", f"{evicted}campaign failed: {exc}")
        if not succeeded:
            await self._revoke_lease(lease.id)
            return Decision("follow", f"{evicted}campaign lost: another node created the "
                            "leader key first (or the failsafe list changed)")  # fmt: skip
        self._lease_id = lease.id
        self.failsafe_members = listed  # what etcd held when the campaign compared it
        self._failsafe_confirmed, self._failsafe_revision = listed, listed_at
        self._lead_on_granted(granted)
        self.state = won(self.state, sent)
        self._yielding = False
        self._key_lost = False
        # The put's revision is the key's create revision (it did not exist): the token.
        self.fencing_token = int(responses[0].response_put.header.revision) or None
        self.last_token = self.fencing_token
        return Decision(
            "campaign",
            f"{evicted}acquired the lease as leader (fencing token {self.fencing_token})",
        )

    def _lead_on_granted(self, granted: int) -> None:
        """Lead on the TTL etcd granted, not the one asked for: etcd grants at least its
        minimum, ceil(1.5 x election timeout), and holds the key that long after the
        last keepalive, so a deadline computed from it is still before anyone else can
        win (and the VIP's lifetime follows the deadline). Said once in the log and in
        ``ttl_note``."""
        self.granted_ttl = granted
        ttl, note = lead_ttl(self.ttl, granted)
        assert ttl is not None  # a shorter grant was refused before the campaign
        if ttl != self.state.lease.ttl:
            margin = self._margin or default_margin(ttl)
            self.state = replace(self.state, lease=replace(self.state.lease, ttl=ttl,
                                                           margin=margin))  # fmt: skip
        if note is not None and self.ttl_note is None:
            self.ttl_note = note
            log.warning("%s: %s", self.me.name, self.ttl_note)

    async def _renew(self, timeout: float | None = None) -> bool:
        """One keepalive of the leader lease; True when etcd renewed it. ``timeout``:
        shorter than ``keepalive_timeout()`` when something else must still fit."""
        lease_id = self._lease_id
        if lease_id is None:
            return False
        sent = time.monotonic()
        try:
            # A short timeout: a keepalive that fails is retried on the next endpoint,
            # and that retry must still be sent well before the deadline.
            reply = await self._call("keepalive", lambda c: c.refresh_lease(lease_id),
                                     timeout=timeout or self.keepalive_timeout())  # fmt: skip
            if reply is None:  # the stream ended unanswered (its channel was closed)
                raise EtcdUnavailable("keepalive: no answer")
        except EtcdUnavailable as exc:
            if "TimeoutError" in str(exc):  # slower than the estimate: raise it
                self._sample_rtt(time.monotonic() - sent)
            log.warning("%s: keepalive failed, deadline unchanged: %s", self.me.name, exc)
            return False
        if reply.TTL <= 0:
            log.warning("%s: lease %x expired in etcd", self.me.name, lease_id)
            self._lease_id = None
            if self.is_leader():
                # Still inside our deadline (e.g. etcd is back after a failsafe reign, or
                # it revoked the lease on resuming): the seat is free, so campaign at
                # once; if another node already holds it, the txn fails: step down.
                self.failsafe_active = False
                outcome = await self._campaign()
                log.warning("%s: lease gone while leading: %s", self.me.name, outcome.reason)
                if self._lease_id is not None:
                    return True
            self.state = ElectionState(LeaseClock(self.state.lease.ttl, self.state.lease.margin))
            return True  # an answer: the lease is gone, nothing to retry
        self.state = replace(self.state, lease=self.state.lease.kept_alive(sent))
        self.failsafe_active = False
        return True

    def _beat_due_at(self) -> float:
        """When the next beat should go out: TTL/3 after the latest one was sent (the
        keepalive has its own clock), or 50 ms after a failed one -- retried on the
        client in use, which a failure may have just replaced -- or, while the latest
        one is unanswered, when it is given up on that member (``_beat_stuck``)."""
        if self._beats >= 2:
            return float("inf")
        latest = max(self.state.lease.beat_sent or float("-inf"), self._beat_tried)
        if self._beat_failed:
            return min(latest + self.ttl / 3, self._beat_tried + 0.05)
        if self._beat_pending and len(self.access.endpoints) > 1:
            return min(latest + self.ttl / 3, self._beat_hedge_at)
        return latest + self.ttl / 3

    def _beat_stuck(self) -> bool:
        """The latest beat, sent to the client still in use, is unanswered past the
        keepalive timeout it was sent with: with more than one endpoint, that member
        is given up on (as a keepalive that times out is) and the beat sent to the
        next one."""
        return (
            self._beat_pending
            and len(self.access.endpoints) > 1
            and self._beat_gen == self._client_gen
            and time.monotonic() >= self._beat_hedge_at
        )

    def _send_beat(self) -> None:
        """Write the leader key again under the fencing token, in the background, so a
        keepalive retried on the next endpoint is not held up by a write stuck on the
        dead one (two may be in flight on the client in use; those on a replaced
        client end when it is closed). Its success moves the deadline from its send
        time; it may take what is left of the window after the TTL/3 between beats,
        but past the keepalive timeout the next member is asked too."""
        token, lease_id = self.fencing_token, self._lease_id
        if token is None or lease_id is None or self._beats >= 2 or not self.is_leader():
            return
        self._beats += 1
        self._beat_seq += 1
        self._beat_tried = time.monotonic()
        self._beat_failed = False
        self._beat_pending = True
        self._beat_gen = self._client_gen
        self._beat_hedge_at = self._beat_tried + self.keepalive_timeout()
        self._spawn(self._beat(token, lease_id, self._beat_seq, self._client_gen))

    async def _beat(self, token: int, lease_id: int, seq: int, gen: int) -> None:
        sent = time.monotonic()
        value = self._leader_value()
        budget = max(self.keepalive_timeout(), self.state.lease.window - self.ttl / 3)
        try:
            ok = await self._write_leader("beat", token, lease_id, value, budget)
        except EtcdUnavailable as exc:
            if self.fencing_token == token and seq == self._beat_seq:
                self._beat_failed = True
            log.warning("%s: beat failed, deadline unchanged: %s", self.me.name, exc)
            return
        finally:
            if gen == self._client_gen:
                self._beats -= 1
            if seq == self._beat_seq:
                self._beat_pending = False
        if self.fencing_token != token:
            return  # that reign is over
        if ok:
            self.state = replace(self.state, lease=self.state.lease.beaten(sent))
        else:
            self._key_lost = True
            self._wake.set()

    async def _failsafe_guard(self) -> None:
        """etcd_loss: failsafe. Beside the election loop (whose keepalive may be stuck
        in a timeout): when the leader's keepalive is overdue, ask the peers."""
        normal_low = self.ttl - self.state.lease.margin - self.ttl / 3  # just before a renew
        threshold = max(0.3, normal_low - 0.1)
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            kept = self.state.lease.last_sent
            left = kept + self.state.lease.window - now if kept is not None else 0.0
            if self.is_leader(now) and left < threshold:  # the keepalive is overdue
                # etcd first (the loop's own keepalive may be stuck on a dead client;
                # this one goes out on the current, fresh one), the peers only if that fails
                # ... and briefly: asking the peers (up to 0.45 s) must still fit before the
                # deadline, however long a keepalive may take on a slow link.
                left = self.state.lease.remaining(now)
                quick = max(0.1, min(self.keepalive_timeout(), (left - 0.5) / 2))
                try:
                    if self._lease_id is not None and await self._renew(quick):
                        continue
                    await self._failsafe_extend()
                except Exception:  # the guard must outlive any surprise
                    log.exception("%s: failsafe guard step failed; continuing", self.me.name)

    async def _failsafe_extend(self) -> None:
        """etcd did not answer the keepalive: leadership goes on only if every peer
        promises not to campaign for a TTL (they cannot reach etcd either)."""
        assert self._failsafe is not None
        sent = time.monotonic()
        peers = self.failsafe_peers()
        try:
            if peers is None:  # who could campaign is not known: nobody to lean on
                log.warning("%s: failsafe: no failsafe list in etcd from this reign: no "
                            "promises to ask for", self.me.name)  # fmt: skip
                agreed = False
            else:
                # For as long as this node may lead on it: the granted TTL, if etcd granted more.
                agreed = await self._failsafe(peers, max(float(self.ttl), self.state.lease.ttl))
        except Exception as exc:  # a failure to ask is a refusal
            log.warning("%s: failsafe: asking peers failed: %s", self.me.name, exc)
            agreed = False
        if agreed and self.is_leader():
            if not self.failsafe_active:
                log.warning("%s: etcd unreachable; every peer promised not to campaign: "
                            "keeping the seat (failsafe)", self.me.name)  # fmt: skip
            self.failsafe_active = True
            self.state = renewed(self.state, sent)
        elif self.failsafe_active:
            log.warning("%s: failsafe: a peer refused or did not answer: leadership "
                        "ends at the deadline", self.me.name)  # fmt: skip
            self.failsafe_active = False

    async def promise(self, leader: str, seconds: float) -> str | None:
        """A leader that lost etcd asks this node not to campaign for ``seconds``.
        Granted (None) only if this node is not leading and cannot reach etcd either
        (checked now, with a short read); otherwise the reason for refusing."""
        if self.is_leader():
            return "this node is the leader"
        if self._campaigning or time.monotonic() < self._campaign_unknown_until:
            return "this node is campaigning (or its last campaign may have won)"
        try:
            async with asyncio.timeout(PROMISE_CHECK):
                await self._client.get(self.keys.leader)
        except ETCD_ERRORS:
            until = max(self._no_campaign_until, time.monotonic() + seconds)
            problem = self._save_promise(leader, until)
            if problem is not None:  # a promise a restart would forget is no promise
                log.warning("%s: failsafe: refusing %s a promise: %s", self.me.name, leader,
                            problem)  # fmt: skip
                return problem
            self._no_campaign_until = until
            self.promised_to = leader
            return None
        self._last_contact = time.monotonic()
        return "this node can reach etcd: the election decides, not a promise"

    def _load_promise(self) -> None:
        """A promise given before a restart still binds: same boot, not yet expired."""
        if self.promise_file is None:
            return
        try:
            data = json.loads(self.promise_file.read_text())
            until, boot = float(data["until_monotonic"]), str(data["boot_id"])
            leader = str(data["leader"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: ignoring unreadable failsafe promise file %s: %s", self.me.name,
                        self.promise_file, exc)  # fmt: skip
            return
        if boot != "unknown" and boot == boot_id() and until > time.monotonic():
            self._no_campaign_until = until
            self.promised_to = leader
            log.warning("%s: keeping the failsafe promise to %s made before a restart "
                        "(%.1fs left): not campaigning until then", self.me.name, leader,
                        until - time.monotonic())  # fmt: skip

    def _save_promise(self, leader: str, until: float) -> str | None:
        """Written before the promise is given (0600, atomically); the reason if not."""
        if self.promise_file is None:
            return None
        boot = boot_id()
        if boot == "unknown":
            return "cannot read this boot's id (/proc/sys/kernel/random/boot_id)"
        record = {"leader": leader, "until_monotonic": until, "boot_id": boot}
        temporary = self.promise_file.with_name(self.promise_file.name + ".tmp")
        try:
            self.promise_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.promise_file)
        except OSError as exc:
            return f"cannot record the promise in {self.promise_file}: {exc}"
        return None

    def isolate(self, seconds: float) -> None:
        """A drill: behave as if etcd were unreachable for ``seconds`` (every request
        fails, the watch breaks); leadership then ends at the deadline as in a real
        partition (or is kept on peers' promises with etcd_loss: failsafe)."""
        self._isolated_until = time.monotonic() + seconds
        log.warning("%s: drill: dropping all etcd traffic for %.1fs", self.me.name, seconds)
        self._restart_watch()

    def _yield_to(self, target: str) -> None:
        if self._yielding or self._on_yield is None:
            return
        self._yielding = True
        self._spawn(self._yield_once(self._on_yield, target))

    async def _yield_once(self, handler: Callable[[str], Awaitable[None]], target: str) -> None:
        """Hand over once; if this node is still leader afterwards (the handover was
        refused or failed), the next attempt may come a TTL later, not never."""
        try:
            await handler(target)
        except Exception:
            log.exception("%s: handing over to %s failed", self.me.name, target)
        if self.is_leader():
            await asyncio.sleep(float(self.ttl))
        self._yielding = False

    async def _revoke(self) -> None:
        lease_id, self._lease_id = self._lease_id, None
        self.fencing_token = None
        if lease_id is not None and await self._revoke_lease(lease_id):
            self._tell_lease("leader", None)  # a lease still live stays told

    async def _revoke_lease(self, lease_id: int) -> bool:
        try:
            await self._call("revoke lease", lambda c: c.revoke_lease(lease_id))
        except EtcdUnavailable as exc:
            log.warning("%s: could not revoke lease (it will expire): %s", self.me.name, exc)
            return False
        return True


def _worth_logging(new: Decision, old: Decision) -> bool:
    """A new action, or a new reason once counters and timings are left out (a leader
    renewing or a countdown says nothing new each tick)."""
    if new.action != old.action:
        return True
    return new.action != "renew" and _DIGITS.sub("", new.reason) != _DIGITS.sub("", old.reason)


def boot_id() -> str:
    """This boot's identity: CLOCK_MONOTONIC is comparable only within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"
