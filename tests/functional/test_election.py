"""Leader election against a real etcd process: one leader, fencing tokens, resign,
unhealthy leaders stepping aside, priorities, and the deadline when etcd goes silent."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from election.decide import Me
from election.etcd import EtcdElection
from tests.etcd import EtcdProcess

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd not installed")


@pytest.fixture
def etcd() -> Iterator[EtcdProcess]:
    process = EtcdProcess()
    yield process
    process.stop()


@pytest.fixture
async def nodes(etcd: EtcdProcess) -> AsyncIterator[Any]:
    made: list[tuple[EtcdElection, asyncio.Task[None]]] = []
    health: dict[str, bool] = {}

    async def start(name: str, priority: int = 100) -> EtcdElection:
        endpoint = ("127.0.0.1", etcd.client_port)
        election = EtcdElection([endpoint], "test", Me(name, priority), ttl=2)
        health[name] = True
        made.append((election, asyncio.create_task(election.run(lambda: health[name]))))
        return election

    start.health = health  # type: ignore[attr-defined]
    yield start
    for election, task in made:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await election.close()


async def _until(predicate: Any, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_exactly_one_leader_with_fencing_token(nodes: Any) -> None:
    a, b = await nodes("a"), await nodes("b")
    await _until(lambda: a.is_leader() or b.is_leader())
    for _ in range(30):  # never two, sampled over a second
        assert not (a.is_leader() and b.is_leader())
        await asyncio.sleep(0.03)
    leader, follower = (a, b) if a.is_leader() else (b, a)
    await _until(lambda: follower.leader is not None)
    assert follower.leader.name == leader.me.name
    assert leader.fencing_token == follower.leader.fencing_token > 0


async def test_resign_hands_over_at_once_with_a_new_token(nodes: Any) -> None:
    a, b = await nodes("a", priority=900), await nodes("b", priority=100)
    await _until(a.is_leader)
    first_token = a.fencing_token
    await a.resign()
    nodes.health["a"] = False  # keep it from campaigning again
    took = await _until(b.is_leader)
    assert took < 1.5  # no TTL wait: the revoked lease deleted the key at once
    assert b.fencing_token is not None and b.fencing_token > (first_token or 0)


async def test_unhealthy_leader_steps_aside(nodes: Any) -> None:
    a, b = await nodes("a", priority=900), await nodes("b", priority=100)
    await _until(a.is_leader)
    nodes.health["a"] = False
    await _until(b.is_leader)
    assert not a.is_leader()
    assert "unhealthy" in a.last_decision.reason or a.last_decision.action == "follow"


async def test_higher_priority_wins_a_vacant_seat(nodes: Any) -> None:
    low = await nodes("low", priority=100)
    high = await nodes("high", priority=900)
    await _until(lambda: low.is_leader() or high.is_leader())
    assert high.is_leader() and not low.is_leader()


async def test_silent_etcd_ends_leadership_by_the_deadline(nodes: Any, etcd: EtcdProcess) -> None:
    a = await nodes("a")
    await _until(a.is_leader)
    etcd.freeze()  # no keepalive can succeed from now on
    frozen_at = time.monotonic()
    try:
        await _until(lambda: not a.is_leader(), timeout=5)
        gone_after = time.monotonic() - frozen_at
        deadline = a.state.lease.deadline
        assert (
            deadline is None or deadline <= frozen_at + a.ttl
        )  # never past TTL after the last success
        assert gone_after < a.ttl  # well before etcd itself could expire the lease
    finally:
        etcd.thaw()


async def test_one_etcd_member_down_is_no_failover() -> None:
    """e) In a 3-member etcd, killing the member the leader talks to changes nothing:
    the next requests go to another member, leadership never lapses, same token."""
    from tests.etcd import EtcdCluster

    cluster = await asyncio.to_thread(EtcdCluster)
    election = EtcdElection(cluster.endpoints, "test", Me("a"), ttl=2)
    task = asyncio.create_task(election.run(lambda: True))
    try:
        await _until(election.is_leader, timeout=10)
        token = election.fencing_token
        await asyncio.to_thread(cluster.kill, 0)  # the first endpoint: the one in use
        lapses = 0
        for _ in range(150):  # 3 s, sampled every 20 ms
            lapses += not election.is_leader()
            await asyncio.sleep(0.02)
        assert lapses == 0
        assert election.fencing_token == token
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await election.close()
        await asyncio.to_thread(cluster.stop)
