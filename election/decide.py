"""The election's decision logic: pure, clock passed in, a reason sentence out.

``decide(state, observation, me)`` returns the next state and what to do. The caller
performs the action against etcd and feeds the outcome back as the next observation.

Who campaigns for a vacant seat (after etcd has been readable for half the grace, so
nodes that start together see each other first): the best healthy live member (higher
priority first, then the lower name), or the node named by a planned handover. Any
other waits ``grace`` for the better one to take the seat, then campaigns anyway (the
better one may be alive in etcd but stuck). A node whose configuration is not the
cluster's current one (``uptodate`` false) leaves the seat to any healthy up-to-date
member, and campaigns alone only after a whole TTL of vacancy (an alarm). A leader
that stays not up to date for a whole TTL (its new bundle was refused; applying one
takes far less) hands over to the best healthy up-to-date member, nopreempt or not;
with none it keeps the seat and says STALE. A leader with ``nopreempt`` off yields to a
healthy, up-to-date member of strictly higher priority (never to a stale one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from election.lease import LeaseClock

Action = Literal["campaign", "renew", "resign", "step_down", "wait", "follow", "yield"]


@dataclass(frozen=True, slots=True)
class Me:
    name: str
    priority: int = 100
    nopreempt: bool = True


@dataclass(frozen=True, slots=True)
class Candidate:
    """A live member as registered in etcd."""

    name: str
    priority: int
    healthy: bool
    uptodate: bool = True  # serves the cluster's current configuration


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    healthy: bool  # the data plane can serve (listeners, config, enough backends)
    leader_known: bool  # False when etcd could not be read: unknown means not active
    leader: str | None = None  # the name in the leader key, None if the key is absent
    members: tuple[Candidate, ...] = ()  # live members (this node's own entry included)
    handover_to: str | None = None  # a planned switchover names this node
    uptodate: bool = True  # this node serves the cluster's current configuration
    silent_leader: str | None = None  # the leader key names it, but it went silent
    key_lost: bool = False  # a write of our leader key was refused: the seat is not ours


@dataclass(frozen=True, slots=True)
class ElectionState:
    lease: LeaseClock
    leading: bool = False
    vacant_since: float | None = None  # when we first saw no leader
    known_since: float | None = None  # since when etcd has been readable without a break
    stale_since: float | None = None  # leading while not up to date, since then


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    target: str | None = None  # for "yield": the node to hand over to


def outranks(a: Candidate | Me, b: Candidate | Me) -> bool:
    """Higher priority first; equal priorities are ordered by name (lower wins)."""
    return a.priority > b.priority or (a.priority == b.priority and a.name < b.name)


def campaign_grace(ttl: float) -> float:
    """How long a node waits for a better-ranked healthy member to take a vacant seat."""
    return min(1.0, ttl / 2)


def decide(state: ElectionState, seen: Observation, me: Me) -> tuple[ElectionState, Decision]:
    if state.leading:
        return _as_leader(state, seen, me)
    if not seen.leader_known:
        return replace(state, vacant_since=None, known_since=None), Decision(
            "wait", "leader unknown (etcd unreachable): not campaigning"
        )
    if state.known_since is None:
        state = replace(state, known_since=seen.now)
    if seen.leader is not None:
        return replace(state, vacant_since=None), Decision("follow", f"following {seen.leader}")
    seat = (
        "no leader"
        if seen.silent_leader is None
        else (
            f"{seen.silent_leader} went silent (no write for its whole window: its fence is shut)"
        )
    )
    if not seen.healthy:
        return replace(state, vacant_since=None), Decision(
            "wait", f"{seat}, but the data plane is unhealthy: not campaigning"
        )
    now = seen.now
    vacant_since = state.vacant_since if state.vacant_since is not None else now
    waited = replace(state, vacant_since=vacant_since)
    if seen.handover_to is not None:
        if seen.handover_to == me.name:
            return waited, Decision("campaign", "switchover names this node: campaigning")
        return waited, Decision(
            "wait", f"switchover to {seen.handover_to} in progress: not campaigning"
        )
    settle = campaign_grace(state.lease.ttl) / 2
    if state.known_since is not None and now - state.known_since < settle:
        return waited, Decision(
            "wait", f"{seat}: letting members that start together register first"
        )
    others = [m for m in seen.members
              if m.name not in (me.name, seen.silent_leader) and m.healthy]  # fmt: skip
    if not seen.uptodate:
        fresh = [m for m in others if m.uptodate]
        if fresh:
            return waited, Decision("wait", (
                f"{seat}, but this node's configuration is not the cluster's current "
                f"one: leaving the seat to {fresh[0].name}"))  # fmt: skip
        if now - vacant_since < state.lease.ttl:
            left = state.lease.ttl - (now - vacant_since)
            return waited, Decision("wait", (
                f"{seat} and no up-to-date node: campaigning with a stale "
                f"configuration in {left:.2f}s"))  # fmt: skip
        return waited, Decision("campaign", (
            f"{seat} and no up-to-date node for a whole TTL: campaigning with a STALE "
            "configuration (alarm)"))  # fmt: skip
    better = sorted(
        (m for m in others if m.uptodate and outranks(m, me)),
        key=lambda m: (-m.priority, m.name),
    )
    if not better:
        return waited, Decision("campaign", f"{seat}: campaigning")
    grace = campaign_grace(state.lease.ttl)
    best = better[0]
    if now - vacant_since < grace:
        left = grace - (now - vacant_since)
        return waited, Decision("wait", (
            f"{seat}: {best.name} (priority {best.priority}) outranks this node "
            f"(priority {me.priority}); campaigning in {left:.2f}s if it does not"))  # fmt: skip
    return waited, Decision(
        "campaign", f"{seat} and {best.name} did not campaign within {grace:.1f}s: campaigning"
    )


def _as_leader(state: ElectionState, seen: Observation, me: Me) -> tuple[ElectionState, Decision]:
    now = seen.now
    if not state.lease.valid(now):
        return _follower(state), Decision(
            "step_down", "leadership deadline passed without a successful keepalive"
        )
    if seen.leader_known and seen.leader is not None and seen.leader != me.name:
        return _follower(state), Decision("step_down", f"etcd names {seen.leader} as leader")
    if seen.key_lost:
        return _follower(state), Decision("step_down", (
            "etcd refused a write of this node's leader key (a standby took the seat "
            "after this node went silent for its whole window)"))  # fmt: skip
    if not seen.healthy:
        return _follower(state), Decision(
            "resign", "data plane unhealthy: resigning so a healthy node can take over"
        )
    successors = sorted(
        (m for m in seen.members if m.name != me.name and m.healthy and m.uptodate),
        key=lambda m: (-m.priority, m.name),
    )
    if not seen.uptodate:
        since = state.stale_since if state.stale_since is not None else now
        state = replace(state, stale_since=since)
        left = state.lease.remaining(now)
        if not successors:
            return state, Decision("renew", (
                f"holding the lease ({left:.2f}s before the deadline) with a STALE "
                "configuration: no healthy up-to-date member to hand over to (alarm)"))  # fmt: skip
        best = successors[0]
        wait = state.lease.ttl - (now - since)
        if wait > 0:
            return state, Decision("renew", (
                f"holding the lease ({left:.2f}s before the deadline); this node's "
                "configuration is not the cluster's current one: handing over to "
                f"{best.name} in {wait:.2f}s unless it catches up"))  # fmt: skip
        return state, Decision("yield", (
            "this node's configuration is not the cluster's current one (a bundle was "
            f"refused): handing over to {best.name}, which is up to date"), best.name)  # fmt: skip
    if state.stale_since is not None:
        state = replace(state, stale_since=None)
    if not me.nopreempt:
        higher = [m for m in successors if m.priority > me.priority]
        if higher:
            best = higher[0]
            return state, Decision("yield", (
                f"{best.name} (priority {best.priority}) outranks this node "
                f"(priority {me.priority}) and nopreempt is off: handing over to it"),
                best.name)  # fmt: skip
    left = state.lease.remaining(now)
    return state, Decision("renew", f"holding the lease ({left:.2f}s before the deadline)")


def _follower(state: ElectionState) -> ElectionState:
    return ElectionState(
        LeaseClock(state.lease.ttl, state.lease.margin), known_since=state.known_since
    )


def won(state: ElectionState, sent_at: float) -> ElectionState:
    """The campaign transaction (sent at ``sent_at``) created the leader key."""
    return ElectionState(state.lease.renewed(sent_at), leading=True)


def renewed(state: ElectionState, sent_at: float) -> ElectionState:
    """Keepalive and leader-key write both renewed by requests sent at ``sent_at``."""
    return replace(state, lease=state.lease.renewed(sent_at))
