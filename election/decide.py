"""The election's decision logic: pure, clock passed in, a reason sentence out.

``decide(state, observation, me)`` returns the next state and what to do. The caller
performs the action against etcd and feeds the outcome back as the next observation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from election.lease import LeaseClock

Action = Literal["campaign", "renew", "resign", "step_down", "wait", "follow"]
MAX_PRIORITY = 1000


@dataclass(frozen=True, slots=True)
class Me:
    name: str
    priority: int = 100
    nopreempt: bool = True


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    healthy: bool  # the data plane can serve (listeners, config, enough backends)
    leader_known: bool  # False when etcd could not be read: unknown means not active
    leader: str | None = None  # the name in the leader key, None if the key is absent


@dataclass(frozen=True, slots=True)
class ElectionState:
    lease: LeaseClock
    leading: bool = False
    vacant_since: float | None = None  # when we first saw no leader


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str


def campaign_delay(priority: int, ttl: float) -> float:
    """Higher priority campaigns sooner after the seat falls vacant: 0 for the highest,
    up to min(0.2 s, TTL/10) for priority 0. Enough to order candidates that see the
    vacancy together (followers poll every 50 ms), small enough not to lengthen a
    takeover much."""
    clamped = min(max(priority, 0), MAX_PRIORITY)
    return (1 - clamped / MAX_PRIORITY) * min(0.2, ttl / 10)


def decide(state: ElectionState, seen: Observation, me: Me) -> tuple[ElectionState, Decision]:
    now = seen.now
    if state.leading:
        if not state.lease.valid(now):
            return _follower(state), Decision(
                "step_down", "leadership deadline passed without a successful keepalive"
            )
        if seen.leader_known and seen.leader is not None and seen.leader != me.name:
            return _follower(state), Decision("step_down", f"etcd names {seen.leader} as leader")
        if not seen.healthy:
            return _follower(state), Decision(
                "resign", "data plane unhealthy: resigning so a healthy node can take over"
            )
        left = state.lease.remaining(now)
        return state, Decision("renew", f"holding the lease ({left:.2f}s before the deadline)")
    if not seen.leader_known:
        return replace(state, vacant_since=None), Decision(
            "wait", "leader unknown (etcd unreachable): not campaigning"
        )
    if seen.leader is not None:
        return replace(state, vacant_since=None), Decision("follow", f"following {seen.leader}")
    if not seen.healthy:
        return replace(state, vacant_since=None), Decision(
            "wait", "no leader, but the data plane is unhealthy: not campaigning"
        )
    vacant_since = state.vacant_since if state.vacant_since is not None else now
    delay = campaign_delay(me.priority, state.lease.ttl)
    waited = replace(state, vacant_since=vacant_since)
    if now - vacant_since < delay:
        left = delay - (now - vacant_since)
        reason = f"no leader: campaigning in {left:.2f}s (priority {me.priority})"
        return waited, Decision("wait", reason)
    return waited, Decision("campaign", "no leader: campaigning")


def _follower(state: ElectionState) -> ElectionState:
    return ElectionState(LeaseClock(state.lease.ttl, state.lease.margin), leading=False)


def won(state: ElectionState, sent_at: float) -> ElectionState:
    """The campaign transaction (sent at ``sent_at``) created the leader key."""
    return ElectionState(state.lease.renewed(sent_at), leading=True)


def renewed(state: ElectionState, sent_at: float) -> ElectionState:
    return replace(state, lease=state.lease.renewed(sent_at))
