"""The crash guard's decisions (node.cluster.guard) and how a standby names a reign the
guard ended (election.view.Succession): pure logic."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from election.etcdclient import EtcdAccess
from election.view import LeaderRecord, Succession
from node.cluster.errors import ClusterConfigError
from node.cluster.guard import (
    RecordKeeper,
    RunningRecord,
    pid_alive,
    read_record,
    release,
    what_to_do,
)
from vip.errors import VipError

NS = "net:1 pid:2"
RECORD = RunningRecord(4242, "boot-a", "edge", "eth0", "10.0.0.100/24", NS, lease=0x1F)


def test_a_dead_node_that_did_not_hand_over_is_released() -> None:
    assert what_to_do(RECORD, 4242, "boot-a", NS, alive=False) is None
    assert what_to_do(RECORD, None, "boot-a", NS, alive=False) is None  # ExecStopPost


@pytest.mark.parametrize(
    ("record", "dead", "boot", "where", "alive", "why"),
    [
        (None, 4242, "boot-a", NS, False, "no running record"),
        (RunningRecord(4242, "boot-a", "edge", "eth0", "10.0.0.100/24", NS, released=True),
         4242, "boot-a", NS, False, "handed over cleanly"),
        (RECORD, 4242, "boot-b", NS, False, "not from this boot"),
        (RunningRecord(4242, "unknown", "edge", "eth0", "10.0.0.100/24", NS),
         4242, "unknown", NS, False, "boot is unknown"),
        (RECORD, 4242, "boot-a", "net:9 pid:2", False, "other network/PID namespaces"),
        (RECORD, 999, "boot-a", NS, False, "another floatgate process (pid 4242)"),
        (RECORD, None, "boot-a", NS, True, "still running"),
    ],
)  # fmt: skip
def test_nothing_is_touched_unless_the_recorded_process_is_dead(
    record: RunningRecord | None,
    dead: int | None,
    boot: str,
    where: str,
    alive: bool,
    why: str,
) -> None:
    said = what_to_do(record, dead, boot, where, alive)
    assert said is not None and why in said


def test_the_record_survives_a_round_trip_and_each_change(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "running-edge.json"
    keeper = RecordKeeper(path, RECORD)
    keeper.write(replace(RECORD, lease=None))
    assert read_record(path) == RunningRecord(4242, "boot-a", "edge", "eth0", "10.0.0.100/24", NS)
    keeper.write(replace(RECORD, lease=7, released=True))
    again = read_record(path)
    assert again is not None and again.lease == 7 and again.released
    assert not list(path.parent.glob("*.tmp"))  # written whole, renamed over


def test_a_damaged_record_is_an_error_not_a_guess(tmp_path: Path) -> None:
    path = tmp_path / "running-edge.json"
    assert read_record(path) is None
    for text in ("{", '{"pid": 1}', '{"pid": 1, "boot_id": "b", "cluster": "c", '
                 '"interface": "eth0", "vip": "not an address", "namespaces": ""}'):  # fmt: skip
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


def test_a_process_counts_as_dead_only_once_it_has_exited() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped
    assert not pid_alive(child.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    assert not pid_alive(zombie.pid)  # a zombie serves nothing
    zombie.wait()


class _Interfaces:
    """A VIP backend whose address removal may not take (``stays``)."""

    def __init__(self, stays: bool) -> None:
        self.stays = stays
        self.calls: list[str] = []

    async def remove(self, vip: ipaddress.IPv4Interface) -> None:
        self.calls.append(f"remove {vip}")

    async def links_with(self, ip: ipaddress.IPv4Address) -> list[str]:
        self.calls.append(f"look for {ip}")
        return ["eth0"] if self.stays else []


class _Etcd(EtcdAccess):
    def __init__(self, calls: list[str]) -> None:
        super().__init__(endpoints=(("127.0.0.1", 1),))
        object.__setattr__(self, "calls", calls)

    async def first_answer(self, what: str, work: object, timeout: float) -> object:
        self.calls.append(f"etcd: {what}")  # type: ignore[attr-defined]
        return "lease revoked"


def test_the_lease_is_ended_only_after_the_vip_is_verifiably_gone() -> None:
    gone = _Interfaces(stays=False)
    said = asyncio.run(release(RECORD, _Etcd(gone.calls), gone))
    assert gone.calls == ["remove 10.0.0.100/24", "look for 10.0.0.100",
                          "etcd: end the dead reign"]  # fmt: skip
    assert said == ["VIP 10.0.0.100/24 removed from eth0", "lease revoked"]
    stays = _Interfaces(stays=True)
    with pytest.raises(VipError, match="still on eth0"):
        asyncio.run(release(RECORD, _Etcd(stays.calls), stays))
    assert not any(call.startswith("etcd") for call in stays.calls)  # the lease left alone
