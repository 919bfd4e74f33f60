"""Taking the seat of a silent leader (election.view.Silence) and the two-source deadline
it relies on (election.lease.LeaseClock): pure logic, fake clock."""

from __future__ import annotations

from election.decide import Candidate, ElectionState, Me, Observation, decide, won
from election.lease import LeaseClock
from election.view import CLOCK_RATE, SCHEDULING, LeaderRecord, Silence, Succession


def test_the_deadline_follows_the_older_of_keepalive_and_write() -> None:
    clock = LeaseClock(1.0, 0.25).renewed(10.0)
    assert clock.deadline == 10.75
    assert clock.kept_alive(10.3).deadline == 10.75  # a keepalive alone moves nothing
    assert clock.beaten(10.3).deadline == 10.75  # nor a write alone
    assert clock.kept_alive(10.3).beaten(10.4).deadline == 11.05
    assert clock.kept_alive(9.0) is clock and clock.beaten(9.0) is clock


def test_no_write_no_leadership() -> None:
    assert LeaseClock(1.0, 0.25, last_sent=5.0).deadline is None


def test_silent_after_the_window_from_when_the_write_was_seen() -> None:
    silence = Silence().observed(token=7, revision=20, window=0.75, now=100.0)
    until = 100.0 + 0.75 * (1 + CLOCK_RATE) + SCHEDULING
    assert silence.quiet_until(0.0) == until
    assert not silence.silent(until - 0.001, 0.0)
    assert silence.silent(until, 0.0)
    assert not silence.silent(until, 0.45)  # a lifetime fence lags: wait for it
    assert not silence.silent(1000.0, None)  # no fence slack known: leave it to etcd


def test_seeing_the_same_write_again_does_not_restart_the_clock() -> None:
    silence = Silence().observed(7, 20, 0.75, now=100.0)
    assert silence.observed(7, 20, 0.75, now=100.5) is silence
    assert silence.observed(7, 19, 0.75, now=100.5) is silence  # an older write: ignored
    later = silence.observed(7, 21, 0.75, now=100.5)  # a new write: the clock restarts
    assert later.beat is not None and later.beat.seen_at == 100.5


def test_a_new_reign_restarts_the_clock() -> None:
    silence = Silence().observed(7, 20, 0.75, now=100.0).observed(30, 30, 0.75, now=101.0)
    assert silence.beat is not None and silence.beat.token == 30
    assert silence.beat.seen_at == 101.0


def test_the_longest_window_a_reign_stated_holds() -> None:
    silence = Silence().observed(7, 20, 2.25, now=100.0).observed(7, 21, 0.75, now=100.2)
    assert silence.beat is not None and silence.beat.window == 2.25


def test_a_leader_that_states_no_window_is_never_taken_early() -> None:
    silence = Silence().observed(7, 20, None, now=100.0)
    assert silence.quiet_until(0.0) is None
    assert not silence.silent(10_000.0, 0.0)


def test_a_silence_is_a_vacancy_timed_from_the_last_write_seen() -> None:
    leader = LeaderRecord("n1", 7, {"name": "n1"})
    succession = Succession().observed(leader, 100.0).silenced(leader, 100.2)
    assert succession.vacancy is not None
    assert succession.vacancy.kind == "silence"
    assert succession.vacancy.last_sign_of_life(ttl=1.0) == 100.2
    following = succession.observed(None, 101.0)  # the key deleted by the takeover
    assert following.vacancy == succession.vacancy
    new = following.observed(LeaderRecord("n2", 40, {"name": "n2"}), 101.1)
    assert new.present and new.changes == 1


def _seen(now: float, **fields: object) -> Observation:
    members = (Candidate("n1", 200, True), Candidate("n2", 100, True))
    return Observation(now, True, True, members=members, **fields)  # type: ignore[arg-type]


def test_a_silent_higher_priority_leader_is_not_waited_for() -> None:
    state = ElectionState(LeaseClock(1.0, 0.25), known_since=0.0)
    _, decision = decide(state, _seen(10.0, silent_leader="n1"), Me("n2", 100))
    assert decision.action == "campaign"
    assert "n1 went silent" in decision.reason
    # An empty seat with n1 alive in the member list: n2 gives n1 the grace first.
    _, decision = decide(state, _seen(10.0), Me("n2", 100))
    assert decision.action == "wait"


def test_a_leader_whose_write_was_refused_steps_down_at_once() -> None:
    state = won(ElectionState(LeaseClock(1.0, 0.25)), sent_at=10.0)
    _, decision = decide(state, _seen(10.2, leader=None, key_lost=True), Me("n1", 200))
    assert decision.action == "step_down"
    assert "refused a write" in decision.reason
