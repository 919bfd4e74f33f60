"""Election decisions with a fake clock."""

from __future__ import annotations

from election.decide import (
    Candidate,
    ElectionState,
    Me,
    Observation,
    campaign_grace,
    decide,
    outranks,
    renewed,
    won,
)
from election.lease import LeaseClock, lead_ttl
from election.view import ClusterView, Entry, Keys, snapshot

ME = Me("n1", priority=100)


def fresh(ttl: float = 2.0, margin: float = 0.5) -> ElectionState:
    """A node that has been reading etcd for a while."""
    return ElectionState(LeaseClock(ttl, margin), known_since=-100.0)


def test_a_starting_node_lets_others_register_before_campaigning() -> None:
    state = ElectionState(LeaseClock(2.0, 0.5))
    state, d = decide(state, Observation(10.0, True, True, None), ME)
    assert d.action == "wait" and "register first" in d.reason
    state, d = decide(state, Observation(10.49, True, True, None), ME)
    assert d.action == "wait"
    state, d = decide(state, Observation(10.5, True, True, None), ME)
    assert d.action == "campaign"
    state, d = decide(state, Observation(11.0, True, False, None), ME)  # etcd lost
    state, d = decide(state, Observation(11.1, True, True, None), ME)
    assert d.action == "wait" and "register first" in d.reason  # settles again


def test_lease_deadline_moves_only_forward_on_success() -> None:
    clock = LeaseClock(2.0, 0.5)
    assert clock.deadline is None and not clock.valid(0.0)
    clock = clock.renewed(10.0)
    assert clock.deadline == 11.5 and clock.valid(11.49) and not clock.valid(11.5)
    assert clock.renewed(9.0) is clock  # an older send never moves the deadline
    assert clock.renewed(11.0).deadline == 12.5


def test_vacant_seat_alone_campaigns_at_once() -> None:
    members = (Candidate("n1", 100, True), Candidate("n2", 500, False))  # n2 unhealthy
    _, d = decide(fresh(), Observation(100.0, True, True, None, members), ME)
    assert (d.action, d.reason) == ("campaign", "no leader: campaigning")


def test_vacant_seat_waits_for_a_better_healthy_member_then_campaigns() -> None:
    members = (Candidate("n1", 100, True), Candidate("n2", 500, True))
    grace = campaign_grace(2.0)
    assert grace == 1.0
    state, d = decide(fresh(), Observation(100.0, True, True, None, members), ME)
    assert d.action == "wait"
    assert "n2 (priority 500) outranks this node (priority 100)" in d.reason
    state, d = decide(state, Observation(100.9, True, True, None, members), ME)
    assert d.action == "wait" and "campaigning in 0.10s" in d.reason
    state, d = decide(state, Observation(101.0, True, True, None, members), ME)
    assert d.action == "campaign" and "n2 did not campaign within 1.0s" in d.reason


def test_rank_is_priority_then_name() -> None:
    assert outranks(Candidate("b", 200, True), Me("a", 100))
    assert outranks(Candidate("a", 100, True), Me("b", 100))
    assert not outranks(Candidate("b", 100, True), Me("a", 100))
    # equal priority: the lower name campaigns first, the other waits
    members = (Candidate("a", 100, True), Candidate("b", 100, True))
    _, da = decide(fresh(), Observation(1.0, True, True, None, members), Me("a"))
    _, db = decide(fresh(), Observation(1.0, True, True, None, members), Me("b"))
    assert (da.action, db.action) == ("campaign", "wait")


def test_handover_names_who_campaigns() -> None:
    members = (Candidate("n1", 100, True), Candidate("n2", 900, True), Candidate("n3", 100, True))
    seen = Observation(1.0, True, True, None, members, handover_to="n3")
    _, d1 = decide(fresh(), seen, ME)
    _, d2 = decide(fresh(), seen, Me("n2", 900))
    _, d3 = decide(fresh(), seen, Me("n3", 100))
    assert (d1.action, d1.reason) == ("wait", "switchover to n3 in progress: not campaigning")
    assert d2.action == "wait"  # even the highest priority waits for the named node
    assert (d3.action, d3.reason) == ("campaign", "switchover names this node: campaigning")


def test_preemption_only_when_nopreempt_is_off() -> None:
    state = won(fresh(), sent_at=0.0)
    members = (Candidate("n1", 100, True), Candidate("n2", 200, True), Candidate("n3", 900, False))
    seen = Observation(0.1, True, True, "n1", members)
    _, d = decide(state, seen, Me("n1", 100, nopreempt=True))
    assert d.action == "renew"
    _, d = decide(state, seen, Me("n1", 100, nopreempt=False))
    assert d.action == "yield" and d.target == "n2"  # n3 outranks but is unhealthy
    assert "nopreempt is off" in d.reason
    equal = (Candidate("n1", 100, True), Candidate("a0", 100, True))
    _, d = decide(state, Observation(0.1, True, True, "n1", equal), Me("n1", 100, False))
    assert d.action == "renew"  # equal priority never preempts


def test_view_follows_events_and_ignores_older_ones() -> None:
    keys = Keys.of("edge")
    view = snapshot([
        (keys.leader, b'{"name": "n1", "admin": "10.0.0.1:9100"}', 7, 7),
        (keys.member("n1"), b'{"priority": 100, "healthy": true}', 5, 6),
        (keys.member("n2"), b'{"priority": 50, "healthy": false}', 4, 4),
    ])  # fmt: skip
    leader = view.leader(keys)
    assert leader is not None and (leader.name, leader.fencing_token) == ("n1", 7)
    assert [(m.name, m.priority, m.healthy) for m in view.members(keys)] == [
        ("n1", 100, True), ("n2", 50, False)]  # fmt: skip
    gone = view.applied(keys.leader, Entry(None, 0, 9))
    assert gone.leader(keys) is None
    assert gone.applied(keys.leader, Entry(b'{"name": "old"}', 3, 8)) is gone  # stale event
    handover = gone.applied(keys.handover, Entry(b'{"to": "n2"}', 10, 10))
    assert handover.handover_to(keys) == "n2"
    assert ClusterView().leader(keys) is None
    garbage = snapshot([(keys.leader, b"not json", 3, 3)]).leader(keys)
    assert garbage is not None and garbage.name == "?"


def test_down_records_list_vanished_members_until_they_run_again() -> None:
    keys = Keys.of("edge")
    view = snapshot([
        (keys.member("n1"), b'{"priority": 100, "healthy": true}', 5, 6),
        (keys.down_member("n2"), b'{"priority": 50, "last_seen": "2026-12-02T01:00:00+00:00"}',
         8, 8),
    ])  # fmt: skip
    assert view.down(keys) == (
        {"name": "n2", "priority": 50, "last_seen": "2026-12-02T01:00:00+00:00"},)  # fmt: skip
    back = view.applied(keys.member("n2"), Entry(b'{"priority": 50}', 9, 9))
    assert back.down(keys) == ()  # running again: not DOWN, even before its record goes
    assert view.applied(keys.down_member("n2"), Entry(None, 0, 10)).down(keys) == ()


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


def test_a_stale_node_leaves_the_seat_to_an_up_to_date_one() -> None:
    members = (Candidate("n1", 900, True, uptodate=False), Candidate("n2", 100, True))
    _, d = decide(
        fresh(), Observation(1.0, True, True, None, members, uptodate=False), Me("n1", 900)
    )
    assert d.action == "wait" and "leaving the seat to n2" in d.reason
    # n2 does not wait for the higher-priority but stale n1
    _, d = decide(fresh(), Observation(1.0, True, True, None, members), Me("n2", 100))
    assert (d.action, d.reason) == ("campaign", "no leader: campaigning")


def test_a_stale_node_alone_campaigns_after_one_extra_ttl_with_an_alarm() -> None:
    members = (Candidate("n1", 100, True, uptodate=False), Candidate("n2", 100, False))
    state, d = decide(fresh(), Observation(10.0, True, True, None, members, uptodate=False), ME)
    assert d.action == "wait" and "stale configuration in 2.00s" in d.reason
    state, d = decide(state, Observation(11.9, True, True, None, members, uptodate=False), ME)
    assert d.action == "wait"
    state, d = decide(state, Observation(12.0, True, True, None, members, uptodate=False), ME)
    assert d.action == "campaign" and "STALE" in d.reason and "alarm" in d.reason


def test_preemption_never_yields_to_a_stale_node() -> None:
    """A higher-priority node that does not serve the cluster's current configuration
    is no successor: the leader keeps the seat (nopreempt off)."""
    state = won(fresh(), 10.0)
    stale = (Candidate("n1", 100, True), Candidate("n2", 900, True, uptodate=False))
    _, d = decide(state, Observation(10.5, True, True, "n1", stale), Me("n1", 100, False))
    assert d.action == "renew"
    fresh_too = (*stale, Candidate("n3", 500, True))
    _, d = decide(state, Observation(10.5, True, True, "n1", fresh_too), Me("n1", 100, False))
    assert d.action == "yield" and d.target == "n3"


def test_a_stale_leader_hands_over_to_an_up_to_date_standby() -> None:
    """The leader's own new bundle was refused (uptodate false for a whole TTL; applying
    one takes far less): it hands over to the best healthy up-to-date member, nopreempt
    or not; with none it keeps the seat and says STALE in every renewal."""
    state = won(fresh(), 10.0)
    members = (Candidate("n1", 900, True, uptodate=False), Candidate("n2", 100, True),
               Candidate("n3", 50, False))  # fmt: skip
    me = Me("n1", 900, nopreempt=True)
    state, d = decide(state, Observation(10.2, True, True, "n1", members, uptodate=False), me)
    assert d.action == "renew" and "handing over to n2 in 2.00s unless it catches up" in d.reason
    state = renewed(state, 11.0)
    state, d = decide(state, Observation(12.1, True, True, "n1", members, uptodate=False), me)
    assert d.action == "renew"  # 1.9 s: an apply may still be under way
    state = renewed(state, 12.1)
    state, d = decide(state, Observation(12.2, True, True, "n1", members, uptodate=False), me)
    assert d.action == "yield" and d.target == "n2"
    assert "not the cluster's current one" in d.reason
    state, d = decide(state, Observation(12.3, True, True, "n1", members), me)  # caught up
    assert d.action == "renew" and state.stale_since is None
    alone = Observation(12.4, True, True, "n1", members[:1], uptodate=False)
    _, d = decide(state, alone, me)
    assert d.action == "renew" and "STALE" in d.reason


def test_the_failsafe_list_as_read() -> None:
    """No key: no list (anyone may campaign). A readable key: the names and admin
    addresses. A key that cannot be read lists nobody (no node may campaign on it),
    and a deleted key is no list again, with revision 0 for the campaign's compare."""
    keys = Keys.of("c")
    assert snapshot([]).failsafe(keys) is None
    assert snapshot([]).failsafe_revision(keys) == 0
    listed = b'{"leader": "a", "members": {"a": "https://10.0.0.1:9100", "b": null}}'
    view = snapshot([(keys.failsafe, listed, 7, 9)])
    assert view.failsafe(keys) == {"a": "https://10.0.0.1:9100", "b": None}
    assert view.failsafe_revision(keys) == 9
    assert snapshot([(keys.failsafe, b"{broken", 7, 9)]).failsafe(keys) == {}
    assert snapshot([(keys.failsafe, b'{"members": [1]}', 7, 9)]).failsafe(keys) == {}
    deleted = view.applied(keys.failsafe, Entry(None, 0, 12))
    assert deleted.failsafe(keys) is None and deleted.failsafe_revision(keys) == 0


def test_the_ttl_a_reign_leads_on() -> None:
    """What etcd granted, when it is what was asked or more (with a note that says so
    and what to change); a shorter grant is never led on: etcd would end the key before
    the deadline computed from the asked TTL."""
    assert lead_ttl(2, 2) == (2.0, None)
    assert lead_ttl(2, 0) == (2.0, None)  # no TTL in the reply: the one asked for
    longer, note = lead_ttl(1, 2)
    assert longer == 2.0 and note is not None and "election.lease_ttl: 2s" in note
    shorter, why = lead_ttl(3, 2)
    assert shorter is None and why is not None and "not leading on it" in why
