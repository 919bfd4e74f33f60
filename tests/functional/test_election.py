"""Leader election against a real etcd process: one leader, fencing tokens, resign,
unhealthy leaders stepping aside, priorities, and the deadline when etcd goes silent."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop

from election.decide import Me
from election.elector import EtcdElection
from election.errors import ElectionError
from election.etcdclient import EtcdAccess, EtcdTlsFiles
from election.view import Member
from node.tls.devca import cert_pem, issue, key_pem
from tests.delayline import DelayLine
from tests.etcd import EtcdProcess, EtcdTlsSetup
from tests.faultline import FaultLine

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

    async def start(
        name: str, priority: int = 100, nopreempt: bool = True, **options: Any
    ) -> EtcdElection:
        access = EtcdAccess((("127.0.0.1", etcd.client_port),))
        election = EtcdElection(access, "test", Me(name, priority, nopreempt), ttl=2, **options)
        health[name] = True
        made.append((election, asyncio.create_task(election.run(lambda: health[name]))))
        return election

    start.health = health  # type: ignore[attr-defined]
    yield start
    async with asyncio.timeout(20):  # a stop that hangs fails the test, not CI
        for election, task in made:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await election.close()


async def _stop(tasks: list[asyncio.Task[None]], elections: tuple[EtcdElection, ...]) -> None:
    """Cancel the election loops, then close every election."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for election in elections:
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


async def _deadlines_until_it_steps_down(node: EtcdElection) -> float:
    """The latest deadline ``node`` had, sampled every 5 ms while it leads (a request
    in flight may still move it after the fault)."""
    latest = float("-inf")
    while node.is_leader():
        deadline = node.deadline()
        latest = max(latest, deadline if deadline is not None else latest)
        await asyncio.sleep(0.005)
    return latest


def _won_at(node: EtcdElection) -> list[float]:
    """Send time of ``node``'s winning campaign, recorded as it wins."""
    won: list[float] = []
    node.on_change(lambda leading, _: won.append(node.state.lease.renewed_at or 0.0)
                   if leading else None)  # fmt: skip
    return won


async def test_a_silent_leader_is_replaced_after_its_window_not_its_lease(
    nodes: Any, etcd: EtcdProcess
) -> None:
    """A leader that stops writing (here: cut off from etcd) is replaced once its window
    (TTL - margin) has passed since its last write was seen -- after its deadline, so
    never two leaders, and before etcd expires its lease. While it writes, it is never
    replaced. Margin 1 s at TTL 2 s: takeover ~1 s after the last write, the lease lives
    at least 1.33 s after the cut."""
    a = await nodes("a", priority=900, margin=1.0, fence_slack=0.0)
    b = await nodes("b", priority=100, margin=1.0, fence_slack=0.0)
    won = _won_at(b)
    await _until(a.is_leader)
    token = a.fencing_token
    for _ in range(40):  # 2 s, two windows: beats keep the seat
        assert a.is_leader() and not b.is_leader() and a.fencing_token == token
        await asyncio.sleep(0.05)
    old_lease = a._lease_id
    assert old_lease is not None
    reasons: list[str] = []
    b.on_change(lambda leading, reason: reasons.append(reason) if leading else None)
    a.isolate(5.0)  # every request fails from now on, as when cut off from etcd
    cut_at = time.monotonic()
    a_deadline = await _deadlines_until_it_steps_down(a)
    await _until(b.is_leader, timeout=5)
    assert won and won[0] > a_deadline  # b's campaign went out after a's reign ended
    assert not a.is_leader()
    assert "went silent" in reasons[0] and "deleted the silent leader's key" in reasons[0]
    assert b.succession.vacancy is not None and b.succession.vacancy.kind == "silence"
    assert time.monotonic() - cut_at < 1.5
    lease = await b._client.get_lease_info(old_lease)  # etcd had not expired it yet
    assert lease.TTL >= 0  # -1: expired or unknown; 0: under a second left
    assert b.fencing_token is not None and token is not None and b.fencing_token > token


async def test_a_leader_whose_key_write_is_refused_steps_down_at_once(
    nodes: Any, etcd: EtcdProcess
) -> None:
    """Its key deleted behind its back (as a standby's takeover does): the next write
    under its fencing token is refused, and it steps down then, not at its deadline."""
    a = await nodes("a", margin=0.5)
    await _until(a.is_leader)
    ended: list[tuple[float, str]] = []
    a.on_change(lambda leading, reason: ended.append((time.monotonic(), reason))
                if not leading else None)  # fmt: skip
    deadline = a.deadline()
    await a._client.delete(a.keys.leader)
    await _until(lambda: bool(ended), timeout=3)
    assert "refused a write" in ended[0][1], ended
    assert deadline is not None and ended[0][0] < deadline  # on the refusal, not the deadline


async def test_a_standby_behind_on_the_leader_key_reads_again_instead_of_insisting(
    nodes: Any, etcd: EtcdProcess
) -> None:
    """A standby whose view stopped moving (a stuck watch) judges the leader silent; the
    takeover's compare fails (the leader wrote since), and the standby reads again
    rather than sending a transaction every tick."""
    a = await nodes("a", priority=900, margin=1.0, fence_slack=0.0)
    tries: list[float] = []
    b = await nodes("b", priority=100, margin=1.0, fence_slack=0.0,
                    on_request=lambda what, _: tries.append(time.monotonic())
                    if what.startswith("take the seat") else None)  # fmt: skip
    await _until(lambda: a.is_leader() and b.leader is not None)
    watch = b._watch_task
    assert watch is not None
    watch.cancel()  # the view stays as it is; nothing moves it forward
    await asyncio.sleep(3.0)
    assert a.is_leader() and not b.is_leader()
    assert 1 <= len(tries) <= 2, tries
    assert b.leader is not None and b.leader.name == "a"


async def test_a_longer_ttl_granted_by_etcd_is_what_the_leader_leads_on() -> None:
    """etcd grants at least ceil(1.5 x its election timeout): 3 s with
    --election-timeout 2000 for a lease_ttl of 2 s. The leader's deadline (and so the
    VIP's lifetime) follows the granted TTL, which is what etcd holds the seat for, and
    the election says so."""
    etcd = EtcdProcess(election_timeout_ms=2000)
    access = EtcdAccess((("127.0.0.1", etcd.client_port),))
    election = EtcdElection(access, "test", Me("n1", 100, True), ttl=2)
    task = asyncio.create_task(election.run(lambda: True))
    try:
        await _until(election.is_leader, 20)
        assert election.granted_ttl == 3
        assert election.state.lease.ttl == 3.0
        assert election.ttl_note is not None and "etcd grants 3 s leases" in election.ttl_note
        assert "election.lease_ttl: 3s" in election.ttl_note
        lease = election.state.lease
        assert lease.deadline is not None and lease.last_sent is not None
        assert lease.deadline - lease.last_sent > 2.0  # 3 s - margin, not 2 s - margin
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await election.close()
        etcd.stop()


@pytest.mark.parametrize(("one_way", "ttl"), [(0.1, 2), (0.25, 3)])
async def test_a_slow_round_trip_to_etcd_keeps_a_steady_leader(
    etcd: EtcdProcess, one_way: float, ttl: int
) -> None:
    """100 ms each way at TTL 2 s, 250 ms each way at TTL 3 s: the node becomes leader
    and keeps the same reign. (gRPC's connect deadline was tied to its 100 ms minimum
    reconnect backoff: no connection to etcd ever completed over such a link. The
    keepalive timeout was TTL/6, 500 ms at TTL 3 s: at a 500 ms round trip (a keepalive
    takes ~1.4 of them) every renewal failed; it is now 3 measured round trips.)"""
    line = DelayLine(etcd.client_port, one_way)
    await line.start()
    access = EtcdAccess((("127.0.0.1", line.port),))
    election = EtcdElection(access, "slow", Me("n1", 100, True), ttl=ttl)
    task = asyncio.create_task(election.run(lambda: True))
    try:
        await _until(election.is_leader, 15)
        token = election.fencing_token
        started = time.monotonic()
        while time.monotonic() - started < 5.0:  # several keepalives at 200 ms RTT
            assert election.is_leader(), election.last_decision.reason
            await asyncio.sleep(0.02)
        assert election.fencing_token == token
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await election.close()
        await line.close()


async def test_one_etcd_member_down_is_no_failover() -> None:
    """e) In a 3-member etcd, killing the member the leader talks to changes nothing:
    the next requests go to another member, leadership never lapses, same token."""
    from tests.etcd import EtcdCluster

    cluster = await asyncio.to_thread(EtcdCluster)
    election = EtcdElection(EtcdAccess(tuple(cluster.endpoints)), "test", Me("a"), ttl=2)
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


async def test_members_register_with_health_and_leave_on_close(nodes: Any) -> None:
    a, b = await nodes("a", priority=900), await nodes("b", priority=100)
    await _until(lambda: {m.name for m in b.members()} == {"a", "b"})
    assert {m.name: m.priority for m in b.members()} == {"a": 900, "b": 100}
    nodes.health["b"] = False
    await _until(lambda: [m.healthy for m in a.members() if m.name == "b"] == [False])
    await b.close()  # revokes its member lease: gone at once, not after a TTL
    await _until(lambda: {m.name for m in a.members()} == {"a"}, timeout=1.0)


async def test_switchover_to_a_named_node(nodes: Any) -> None:
    a = await nodes("a", priority=900)
    b, c = await nodes("b", priority=500), await nodes("c", priority=100)
    await _until(a.is_leader)
    await _until(lambda: len(a.members()) == 3)
    with pytest.raises(ElectionError, match="not a running member"):
        await a.name_successor("zz")
    nodes.health["b"] = False
    await _until(lambda: [m.healthy for m in a.members() if m.name == "b"] == [False])
    with pytest.raises(ElectionError, match="not healthy"):
        await a.name_successor("b")
    nodes.health["b"] = True
    await _until(lambda: all(m.healthy for m in a.members()))
    await a.name_successor("c")  # c has the lowest priority: only the handover makes it win
    await a.resign()
    nodes.health["a"] = False
    took = await _until(lambda: b.is_leader() or c.is_leader())
    assert c.is_leader() and not b.is_leader(), b.last_decision.reason
    assert took < 0.5  # c campaigns as soon as it sees the seat free
    await _until(lambda: b.view is not None and b.view.handover_to(b.keys) is None)


async def test_preemption_when_nopreempt_is_off(nodes: Any) -> None:
    low = await nodes("low", priority=100, nopreempt=False)
    await _until(low.is_leader)

    async def hand_over(target: str) -> None:
        await low.name_successor(target)
        await low.resign()

    low.on_yield(hand_over)
    high = await nodes("high", priority=900, nopreempt=False)
    await _until(high.is_leader)
    assert not low.is_leader()
    assert "nopreempt is off" in low.last_decision.reason or low.last_decision.action == "follow"


async def test_a_preemption_that_fails_is_tried_again(nodes: Any) -> None:
    """The first handover to the higher-priority node does not happen (refused: the
    role logs a SwitchoverError and returns): the leader tries again a TTL later,
    instead of never again."""
    low = await nodes("low", priority=100, nopreempt=False)
    await _until(low.is_leader)
    tries: list[float] = []

    async def hand_over(target: str) -> None:
        tries.append(time.monotonic())
        if len(tries) == 1:
            return  # refused
        await low.name_successor(target)
        await low.resign()

    low.on_yield(hand_over)
    high = await nodes("high", priority=900, nopreempt=False)
    await _until(high.is_leader, timeout=10)
    assert len(tries) == 2 and tries[1] - tries[0] >= 1.9  # one TTL (2 s) apart


async def test_nopreempt_keeps_the_recovered_node_standby(nodes: Any) -> None:
    low = await nodes("low", priority=100)
    await _until(low.is_leader)
    high = await nodes("high", priority=900)
    await _until(lambda: len(low.members()) == 2)
    await asyncio.sleep(1.0)
    assert low.is_leader() and not high.is_leader()
    assert high.last_decision.reason == "following low"


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory) -> EtcdTlsSetup:
    out = tmp_path_factory.mktemp("etcd-pki")
    ca = issue("etcd test CA", None, ca=True)
    server = issue("etcd", ca, names=("127.0.0.1", "localhost"))
    client = issue("floatgate-node", ca, client=True)
    files = {"ca.pem": cert_pem(ca.cert), "server.pem": cert_pem(server.cert),
             "server.key": key_pem(server.key), "client.pem": cert_pem(client.cert),
             "client.key": key_pem(client.key)}  # fmt: skip
    for name, data in files.items():
        (out / name).write_bytes(data)
    paths = {name: str(out / name) for name in files}
    return EtcdTlsSetup(paths["ca.pem"], paths["server.pem"], paths["server.key"],
                        paths["client.pem"], paths["client.key"])  # fmt: skip


async def test_etcd_with_client_tls_and_password(etcd_tls: EtcdTlsSetup) -> None:
    etcd = await asyncio.to_thread(EtcdProcess, "tls", etcd_tls, "s3cret")
    tls = EtcdTlsFiles.load(etcd_tls.ca, etcd_tls.client_cert, etcd_tls.client_key)
    endpoint = (("127.0.0.1", etcd.client_port),)
    good = EtcdElection(EtcdAccess(endpoint, tls, "root", "s3cret"), "t", Me("good"), ttl=2)
    bad = EtcdElection(EtcdAccess(endpoint, tls, "root", "wrong"), "t", Me("bad"), ttl=2)
    no_cert = EtcdElection(EtcdAccess(endpoint, EtcdTlsFiles(tls.ca), "root", "s3cret"),
                           "t", Me("no-cert"), ttl=2)  # fmt: skip
    tasks = [asyncio.create_task(e.run(lambda: True)) for e in (good, bad, no_cert)]
    try:
        await _until(good.is_leader)
        assert good.fencing_token is not None
        await asyncio.sleep(1.0)
        for refused in (bad, no_cert):
            assert not refused.is_leader() and refused.view is None
            assert "etcd unreachable" in refused.last_decision.reason
        assert "good" in await asyncio.to_thread(
            etcd.etcdctl, "get", "--prefix", "/floatgate/t/election/leader"
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for election in (good, bad, no_cert):
            await election.close()
        await asyncio.to_thread(etcd.stop)


async def test_failsafe_keeps_the_seat_only_with_every_promise(etcd: EtcdProcess) -> None:
    """etcd_loss: failsafe, against a real etcd that goes silent (SIGSTOP): the leader
    keeps its seat past the deadline while the peer promises; a peer that can still
    reach etcd refuses; when etcd is back the leader takes a new lease at once and the
    peer does not campaign while its promise lasts."""
    access = EtcdAccess((("127.0.0.1", etcd.client_port),))
    b = EtcdElection(access, "fs", Me("b", 100), ttl=2)

    asked: list[list[str]] = []

    async def ask_b(peers: tuple[Member, ...], seconds: float) -> bool:
        asked.append([m.name for m in peers])  # (an assert here would be a refusal)
        return await b.promise("a", seconds) is None

    a = EtcdElection(access, "fs", Me("a", 900), ttl=2, failsafe=ask_b)
    tasks = [asyncio.create_task(e.run(lambda: True)) for e in (a, b)]
    try:
        await _until(a.is_leader)
        await _until(lambda: b.last_decision.reason == "following a")
        await _until(lambda: a.failsafe_members == {"a": None, "b": None})
        assert await b.promise("a", 2.0) is not None  # b reaches etcd: no promise
        first_token = a.fencing_token
        etcd.freeze()
        frozen = time.monotonic()
        try:
            while time.monotonic() - frozen < 4.0:  # twice the TTL
                assert a.is_leader() and not b.is_leader()
                await asyncio.sleep(0.05)
            assert a.failsafe_active and b.promised_to == "a"
            assert asked and all(p == ["b"] for p in asked)  # the list a wrote: a and b
        finally:
            etcd.thaw()
        await _until(lambda: not a.failsafe_active, timeout=5)
        for _ in range(40):  # 2 s after etcd is back: a keeps (or retakes) the seat
            assert a.is_leader() and not b.is_leader()
            await asyncio.sleep(0.05)
        # the same lease if etcd kept it through the freeze, else a new reign
        assert a.fencing_token is not None and a.fencing_token >= (first_token or 0)
    finally:
        await _stop(tasks, (a, b))


async def test_a_failsafe_promise_outlives_a_restart(etcd: EtcdProcess, tmp_path: Path) -> None:
    """A standby that promised a leader (which lost etcd) not to campaign, and then
    restarts, must still keep that promise: the leader holds the VIP on it. Forgotten,
    the restarted standby would campaign as soon as etcd answers and claim the VIP
    while the old leader still holds it on the promise."""
    promises = tmp_path / "failsafe-promise.json"
    nowhere = EtcdAccess((("127.0.0.1", 1),))  # etcd unreachable for the promising node
    before = EtcdElection(nowhere, "fs3", Me("b", 100), ttl=2, promise_file=promises)
    try:
        assert await before.promise("a", 2.5) is None  # granted
    finally:
        await before.close()
    assert promises.stat().st_mode & 0o777 == 0o600
    # the restarted node, with etcd back and the seat vacant
    access = EtcdAccess((("127.0.0.1", etcd.client_port),))
    after = EtcdElection(access, "fs3", Me("b", 100), ttl=2, promise_file=promises)
    assert after.promised_to == "a"
    task = asyncio.create_task(after.run(lambda: True))
    restarted = time.monotonic()
    try:
        await _until(after.is_leader, timeout=10)
        assert time.monotonic() - restarted > 1.5, "campaigned inside its promise"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await after.close()
    broken = tmp_path / "garbage.json"
    broken.write_text("{not json")
    assert EtcdElection(access, "fs3", Me("b"), ttl=2, promise_file=broken).promised_to is None


async def test_without_failsafe_the_deadline_ends_leadership(etcd: EtcdProcess) -> None:
    access = EtcdAccess((("127.0.0.1", etcd.client_port),))
    refused = 0

    async def nobody_agrees(peers: tuple[Member, ...], seconds: float) -> bool:
        nonlocal refused
        refused += 1
        return False

    a = EtcdElection(access, "fs2", Me("a"), ttl=2, failsafe=nobody_agrees)
    task = asyncio.create_task(a.run(lambda: True))
    try:
        await _until(a.is_leader)
        await _until(lambda: a.failsafe_members == {"a": None})
        etcd.freeze()
        try:
            await _until(lambda: not a.is_leader(), timeout=3)
        finally:
            etcd.thaw()
        assert refused >= 1 and not a.failsafe_active
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await a.close()


async def test_a_node_missing_from_the_failsafe_list_never_campaigns(etcd: EtcdProcess) -> None:
    """etcd_loss: failsafe. a leads and keeps the failsafe list in etcd: a and b. Then a
    and b lose etcd (each behind a relay that goes silent); b promises, so a keeps its
    seat past its lease. c starts meanwhile and reaches etcd: the seat is vacant there,
    but c is not on the list a's reign rests on, so it must not campaign (before, the
    leader asked the members it last saw and c took the seat: two leaders). Once etcd is
    back for a, a lists c and c may campaign again; a leader without failsafe deletes
    the list."""
    lines = [FaultLine(etcd.client_port) for _ in range(2)]
    for line in lines:
        await line.start()
    behind = [EtcdAccess((("127.0.0.1", line.port),)) for line in lines]
    direct = EtcdAccess((("127.0.0.1", etcd.client_port),))
    asked: list[list[str]] = []
    b = EtcdElection(behind[1], "fs4", Me("b", 100), ttl=2)

    async def ask(peers: tuple[Member, ...], seconds: float) -> bool:
        asked.append([m.name for m in peers])
        return asked[-1] == ["b"] and await b.promise("a", seconds) is None

    a = EtcdElection(behind[0], "fs4", Me("a", 900), ttl=2, failsafe=ask)
    c = EtcdElection(direct, "fs4", Me("c", 950, nopreempt=True), ttl=2)
    elections = [a, b]
    tasks = [asyncio.create_task(e.run(lambda: True)) for e in elections]
    try:
        await _until(a.is_leader)
        await _until(lambda: a.failsafe_members == {"a": None, "b": None})
        for line in lines:
            line.blackhole()
        cut = time.monotonic()
        await asyncio.sleep(0.5)
        elections.append(c)
        tasks.append(asyncio.create_task(c.run(lambda: True)))
        both = 0
        while time.monotonic() - cut < 5.0:  # 2.5 x the TTL: a's lease is long gone
            assert not c.is_leader(), "c campaigned while a kept the seat on b's promise"
            both += a.is_leader()
            await asyncio.sleep(0.05)
        assert a.failsafe_active and both > 0 and asked and all(p == ["b"] for p in asked)
        assert "not in the failsafe member list" in c.last_decision.reason
        for line in lines:
            line.restore()
        await _until(lambda: a.failsafe_members is not None and "c" in a.failsafe_members,
                     timeout=8)  # fmt: skip
        assert a.is_leader() and not c.is_leader()
        tasks[0].cancel()  # a resigns: b or c leads, without failsafe: the list goes
        await _until(lambda: b.is_leader() or c.is_leader(), timeout=8)
        await _until(lambda: c.view is not None and c.view.failsafe(c.keys) is None)
    finally:
        await _stop(tasks, (a, b, c))
        for line in lines:
            await line.close()


async def test_a_leader_whose_entry_went_first_is_listed_down_by_its_successor(
    etcd: EtcdProcess,
) -> None:
    """The active dies and its member entry goes before its leader key (as the crash
    guard ends them): the standby was not leading when the entry vanished, yet once it
    leads it lists the old active DOWN with when it was last seen, for
    ``down_visible_for``. (Before, only a node leading at that moment recorded it: a
    killed active was never shown DOWN.)"""
    line = FaultLine(etcd.client_port)
    await line.start()
    a = EtcdElection(EtcdAccess((("127.0.0.1", line.port),)), "dn", Me("a", 900), ttl=2)
    b = EtcdElection(EtcdAccess((("127.0.0.1", etcd.client_port),)), "dn", Me("b", 100), ttl=2,
                     down_visible_for=3)  # fmt: skip
    tasks = [asyncio.create_task(e.run(lambda: True)) for e in (a, b)]
    try:
        await _until(a.is_leader)
        await _until(lambda: {m.name for m in b.known_members} == {"a", "b"})
        member, leader = a._member_lease, a._lease_id
        assert member is not None and leader is not None
        line.blackhole()  # a is gone from the network; its leases end as the guard ends them
        etcd.etcdctl("lease", "revoke", f"{member:x}")
        await _until(lambda: {m.name for m in b.known_members} == {"b"})
        assert not b.is_leader()
        etcd.etcdctl("lease", "revoke", f"{leader:x}")
        await _until(b.is_leader)
        await _until(lambda: b.view is not None and [d["name"] for d in b.view.down(b.keys)]
                     == ["a"])  # fmt: skip
        assert b.view is not None
        assert str(b.view.down(b.keys)[0]["last_seen"]).startswith("20")
        listed = time.monotonic()
        # election.down_visible_for later the record is gone
        await _until(lambda: b.view is not None and not b.view.down(b.keys), timeout=6)
        assert time.monotonic() - listed > 1.5
    finally:
        await _stop(tasks, (a, b))
        await line.close()


async def test_the_failsafe_list_is_written_again_after_a_delete_and_a_lone_name_bars_nobody(
    etcd: EtcdProcess, tmp_path: Path
) -> None:
    """An operator's etcdctl del of the list while a failsafe leader runs: the leader
    writes it again (and leads on no list meanwhile). A list naming one node only backs
    no failsafe reign (nobody to promise), so it keeps no other node from campaigning.
    A node campaigning promises nothing."""
    access = EtcdAccess((("127.0.0.1", etcd.client_port),))

    async def nobody(peers: tuple[Member, ...], seconds: float) -> bool:
        return False

    a = EtcdElection(access, "fs5", Me("a", 900), ttl=2, failsafe=nobody)
    b = EtcdElection(access, "fs5", Me("b", 100), ttl=2)
    tasks = [asyncio.create_task(e.run(lambda: True)) for e in (a, b)]
    try:
        await _until(lambda: a.failsafe_members == {"a": None, "b": None})
        etcd.etcdctl("del", a.keys.failsafe.decode())
        await _until(lambda: b.view is not None and b.view.failsafe(b.keys) is None)
        await _until(lambda: b.view is not None
                     and b.view.failsafe(b.keys) == {"a": None, "b": None})  # fmt: skip
        assert a.failsafe_members == {"a": None, "b": None} and a.is_leader()
    finally:
        await _stop(tasks, (a, b))
    lone = json.dumps({"leader": "x", "members": {"x": None}})
    etcd.etcdctl("put", "/floatgate/fs6/election/failsafe", lone)
    c = EtcdElection(access, "fs6", Me("c", 100), ttl=2)
    task = asyncio.create_task(c.run(lambda: True))
    try:
        await _until(c.is_leader)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await c.close()
    nowhere = EtcdAccess((("127.0.0.1", 1),))
    d = EtcdElection(nowhere, "fs7", Me("d"), ttl=2, promise_file=tmp_path / "p.json")
    try:
        d._campaigning = True  # its grant or transaction on the way
        assert "campaigning" in str(await d.promise("x", 2.0))
        d._campaigning = False
        assert await d.promise("x", 2.0) is None
    finally:
        await d.close()


@asynccontextmanager
async def _leader_behind_relays(
    on_request: Any = None,
) -> AsyncIterator[tuple[EtcdElection, list[FaultLine]]]:
    """A 3-member etcd, each member behind a FaultLine, and one election (TTL 2 s)
    running through them; all torn down however the test ends."""
    from tests.etcd import EtcdCluster

    cluster = await asyncio.to_thread(EtcdCluster)
    lines: list[FaultLine] = []
    try:
        for _, port in cluster.endpoints:
            lines.append(FaultLine(port))
            await lines[-1].start()
        access = EtcdAccess(tuple(("127.0.0.1", line.port) for line in lines))
        election = EtcdElection(access, "test", Me("a"), ttl=2, on_request=on_request)
        task = asyncio.create_task(election.run(lambda: True))
        try:
            yield election, lines
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await election.close()
    finally:
        for line in lines:
            await line.close()
        await asyncio.to_thread(cluster.stop)


async def _steady_reign(election: EtcdElection, seconds: float = 3.0) -> int:
    """How many 20 ms samples over ``seconds`` found ``election`` not leading."""
    lapses = 0
    for _ in range(int(seconds / 0.02)):
        lapses += not election.is_leader()
        await asyncio.sleep(0.02)
    return lapses


async def test_a_member_going_silent_with_only_a_beat_unanswered_is_no_failover() -> None:
    """e) 3 members, each behind a relay. Right after a keepalive was answered, while
    the beat sent with it is still being committed, the member in use goes silent. The
    beat is given up on that member in time and sent to another: leadership never lapses,
    same reign. (Before, the beat waited out a long budget on the silent member, and the
    failure of the next keepalive, TTL/3 later plus its timeout, came after the deadline
    set by the previous beat.)"""
    armed = False
    lines: list[FaultLine] = []

    def on_request(what: str, _: float) -> None:
        nonlocal armed
        if armed and what == "keepalive":
            armed = False
            max(lines, key=lambda line: line.last_passed).blackhole()  # the member in use

    async with _leader_behind_relays(on_request) as (election, relays):
        lines.extend(relays)
        await _until(election.is_leader, timeout=10)
        token = election.fencing_token
        await asyncio.sleep(1.0)
        armed = True
        await _until(lambda: not armed, 3.0)
        assert await _steady_reign(election) == 0, election.last_decision.reason
        assert election.fencing_token == token


@pytest.mark.parametrize("offset", [0.0, 0.2, 0.4, 0.6])
async def test_losing_two_etcd_members_in_turn_is_no_failover(offset: float) -> None:
    """e) 3 members, each behind a relay. The member in use dies (its connections reset);
    once the leader moved to another, that one is cut off too, ``offset`` seconds later
    (swept over a renewal interval, TTL/3). Leadership never lapses and the reign is the
    same: the third member answers in time."""
    async with _leader_behind_relays() as (election, lines):
        await _until(election.is_leader, timeout=10)
        token = election.fencing_token
        await asyncio.sleep(1.0)
        dead = max(lines, key=lambda line: line.last_passed)  # the member in use
        dead.refuse()
        killed = time.monotonic()
        others = [line for line in lines if line is not dead]
        await _until(lambda: max(line.last_passed for line in others) > killed + 0.01, 3.0)
        await asyncio.sleep(offset)
        max(others, key=lambda line: line.last_passed).blackhole()
        assert await _steady_reign(election) == 0, election.last_decision.reason
        assert election.fencing_token == token


def test_a_link_to_etcd_that_turns_slow_keeps_the_deadline_a_second_ahead(
    etcd: EtcdProcess,
) -> None:
    """TTL 2 s: once the link to etcd turns slow (100 ms each way, on the connections
    already open), every renewal still puts the deadline at least a second ahead,
    within each second: the VIP's whole-second address lifetime is re-armed before it
    runs out. Run on uvloop, as the node runs. (Its exact timers woke the loop for the
    keepalive a fraction of a millisecond before the beat was due; the beat went out on
    the next step, after the member keepalive had been awaited: half a second behind at
    this round trip. The deadline rests on the older of the two, so it never came a
    second ahead again, and the lab's VIP lapsed.)"""
    uvloop.run(_slow_link_deadlines(etcd))


def test_a_link_to_etcd_that_turns_very_slow_settles_on_the_new_connection(
    etcd: EtcdProcess,
) -> None:
    """TTL 2 s, the link turns slow: 250 ms each way. The first keepalive times out
    (TTL/6) and the client is replaced; on the new connection every request first pays
    for the connection (HTTP/2 settings: a round trip more). Once settled, the leader
    is leader all the time and renews every TTL/3. (The first read on the new client
    timed out at 3 x the estimated round trip, which replaced the client again: a new
    connection each second, every renewal a second apart, the deadline passed.)"""
    uvloop.run(_very_slow_link(etcd))


async def _very_slow_link(etcd: EtcdProcess) -> None:
    line = DelayLine(etcd.client_port, 0.0)
    await line.start()
    election = EtcdElection(EtcdAccess((("127.0.0.1", line.port),)), "slower", Me("n1"), ttl=2)
    task = asyncio.create_task(election.run(lambda: True))
    try:
        await _until(election.is_leader, 10)
        token = election.fencing_token
        await asyncio.sleep(1.0)
        line.one_way = 0.25
        await asyncio.sleep(3.0)  # the timeout, the new connection, settling
        lapses, renewals = 0, []
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            lapses += not election.is_leader()
            sent = election.state.lease.last_sent
            if sent is not None and (not renewals or renewals[-1] != sent):
                renewals.append(sent)
            await asyncio.sleep(0.02)
        gaps = [round(b - a, 2) for a, b in itertools.pairwise(renewals)]
        assert lapses == 0
        assert gaps and max(gaps) < 2 / 3 + 0.15, gaps
        assert election.fencing_token == token
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await election.close()
        await line.close()


async def _slow_link_deadlines(etcd: EtcdProcess) -> None:
    line = DelayLine(etcd.client_port, 0.0)
    await line.start()
    election = EtcdElection(EtcdAccess((("127.0.0.1", line.port),)), "slow", Me("n1"), ttl=2)
    task = asyncio.create_task(election.run(lambda: True))
    try:
        await _until(election.is_leader, 10)
        token = election.fencing_token
        await asyncio.sleep(1.0)
        line.one_way = 0.1
        armable, gaps = time.monotonic(), []
        end = armable + 5.0
        while time.monotonic() < end:
            now = time.monotonic()
            deadline = election.deadline()
            if deadline is not None and deadline - now >= 1.0:
                gaps.append(now - armable)
                armable = now
            await asyncio.sleep(0.02)
        gaps.append(time.monotonic() - armable)
        assert max(gaps) < 0.95, [round(g, 2) for g in gaps if g > 0.1]
        assert election.fencing_token == token
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await election.close()
        await line.close()
