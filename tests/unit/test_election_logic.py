"""Election decisions with a fake clock."""

from __future__ import annotations

import pytest

from election.decide import ElectionState, Me, Observation, campaign_delay, decide, renewed, won
from election.lease import LeaseClock

ME = Me("n1", priority=100)


def fresh(ttl: float = 2.0, margin: float = 0.5) -> ElectionState:
    return ElectionState(LeaseClock(ttl, margin))


def test_lease_deadline_moves_only_forward_on_success() -> None:
    clock = LeaseClock(2.0, 0.5)
    assert clock.deadline is None and not clock.valid(0.0)
    clock = clock.renewed(10.0)
    assert clock.deadline == 11.5 and clock.valid(11.49) and not clock.valid(11.5)
    assert clock.renewed(9.0) is clock  # an older send never moves the deadline
    assert clock.renewed(11.0).deadline == 12.5


def test_vacant_seat_campaign_after_priority_delay() -> None:
    state = fresh()
    delay = campaign_delay(100, 2.0)
    assert delay == pytest.approx(0.18)
    assert campaign_delay(900, 2.0) < campaign_delay(100, 2.0)
    state, d = decide(state, Observation(100.0, True, True, None), ME)
    assert d.action == "wait" and "campaigning in 0.18s" in d.reason
    state, d = decide(state, Observation(100.1, True, True, None), ME)
    assert d.action == "wait"
    state, d = decide(state, Observation(100.19, True, True, None), ME)
    assert (d.action, d.reason) == ("campaign", "no leader: campaigning")


def test_followers_and_unknowns_never_campaign() -> None:
    state = fresh()
    _, d = decide(state, Observation(1.0, True, True, "n2"), ME)
    assert (d.action, d.reason) == ("follow", "following n2")
    _, d = decide(state, Observation(1.0, True, False, None), ME)
    assert d.action == "wait" and "etcd unreachable" in d.reason
    _, d = decide(state, Observation(1.0, False, True, None), ME)
    assert d.action == "wait" and "unhealthy" in d.reason


def test_leader_renews_until_the_deadline_then_steps_down() -> None:
    state = won(fresh(), sent_at=50.0)  # deadline 51.5
    state, d = decide(state, Observation(51.0, True, True, "n1"), ME)
    assert d.action == "renew" and "0.50s before the deadline" in d.reason
    state = renewed(state, 51.0)  # deadline 52.5
    state, d = decide(state, Observation(52.4, True, False, None), ME)
    assert d.action == "renew"  # etcd unreadable, but the deadline still holds
    state, d = decide(state, Observation(52.5, True, False, None), ME)
    assert d.action == "step_down" and not state.leading
    assert "deadline passed" in d.reason


def test_leader_resigns_when_unhealthy_or_superseded() -> None:
    state = won(fresh(), sent_at=0.0)
    _, d = decide(state, Observation(0.1, False, True, "n1"), ME)
    assert d.action == "resign"
    after, d = decide(state, Observation(0.1, True, True, "n9"), ME)
    assert (d.action, d.reason) == ("step_down", "etcd names n9 as leader")
    assert not after.leading
