"""The crash guard's decisions (node.cluster.guard) and how a standby names a reign the
guard ended (election.view.Succession): pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from election.view import LeaderRecord, Succession
from node.cluster.errors import ClusterConfigError
from node.cluster.guard import RecordKeeper, RunningRecord, read_record, what_to_do

RECORD = RunningRecord(4242, "boot-a", "edge", "eth0", "10.0.0.100/24", lease=0x1F)


def test_a_dead_node_that_did_not_hand_over_is_released() -> None:
    assert what_to_do(RECORD, 4242, "boot-a", alive=False) is None
    assert what_to_do(RECORD, None, "boot-a", alive=False) is None  # ExecStopPost


@pytest.mark.parametrize(
    ("record", "dead", "boot", "alive", "why"),
    [
        (None, 4242, "boot-a", False, "no running record"),
        (RunningRecord(4242, "boot-a", "edge", "eth0", "10.0.0.100/24", released=True),
         4242, "boot-a", False, "handed over cleanly"),
        (RECORD, 4242, "boot-b", False, "earlier boot"),
        (RECORD, 999, "boot-a", False, "another floatgate process (pid 4242)"),
        (RECORD, None, "boot-a", True, "still running"),
    ],
)  # fmt: skip
def test_nothing_is_touched_unless_the_recorded_process_is_dead(
    record: RunningRecord | None, dead: int | None, boot: str, alive: bool, why: str
) -> None:
    said = what_to_do(record, dead, boot, alive)
    assert said is not None and why in said


def test_the_record_survives_a_round_trip_and_each_change(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "running-edge.json"
    keeper = RecordKeeper(path, RECORD)
    keeper.write(lease=None)
    assert read_record(path) == RunningRecord(4242, "boot-a", "edge", "eth0", "10.0.0.100/24")
    keeper.write(lease=7, released=True)
    again = read_record(path)
    assert again is not None and again.lease == 7 and again.released
    assert not list(path.parent.glob("*.tmp"))  # written whole, renamed over


def test_a_damaged_record_is_an_error_not_a_guess(tmp_path: Path) -> None:
    path = tmp_path / "running-edge.json"
    assert read_record(path) is None
    for text in ("{", '{"pid": 1}', '{"pid": 1, "boot_id": "b", "cluster": "c", '
                 '"interface": "eth0", "vip": "not an address"}'):  # fmt: skip
        path.write_text(text)
        with pytest.raises(ClusterConfigError, match="running record unreadable"):
            read_record(path)


def test_a_reign_ended_by_the_guard_is_a_crash_not_a_handover() -> None:
    def ended(payload: dict[str, object]) -> str:
        seen = Succession().observed(LeaderRecord("n1", 5, payload), 1.0)
        vacancy = seen.observed(None, 2.0).vacancy
        assert vacancy is not None
        return vacancy.kind

    assert ended({"leaving": True, "crashed": True}) == "crash"
    crashed = Succession().observed(LeaderRecord("n1", 5, {"crashed": True}), 1.0)
    vacancy = crashed.observed(None, 2.0).vacancy
    assert vacancy is not None and vacancy.last_sign_of_life(3.0) == 2.0  # timed from then
    assert ended({"leaving": True}) == "handover"
    assert ended({}) == "expiry"
