"""Two floatgate nodes, etcd, a backend and a client in a namespace lab: exactly one node
holds the VIP; killing or stopping the active hands the VIP to the standby; never two
holders at any sampled instant."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from deploy.lab.netlab import (
    HOSTS,
    SwitchedLab,
    admin_url,
    wait_for,
)
from tests.cluster.labkit import Monitor, cli, probe, probed_switchover, running_cluster
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.fixture
def cluster() -> Iterator[SwitchedLab]:
    with running_cluster() as lab:
        yield lab


def _signal_active(
    cluster: SwitchedLab, sig: signal.Signals, probe_seconds: float, timeout: float = 0.5
) -> tuple[float, dict[str, float], Monitor]:
    """With a client probing the VIP and a monitor sampling holders: signal n1 after
    1.5 s; returns (seconds until n2 alone holds the VIP, probe result, monitor)."""
    monitor = Monitor(cluster)
    result: dict[str, dict[str, float]] = {}
    client = threading.Thread(
        target=lambda: result.update(r=probe(cluster, probe_seconds, timeout))
    )
    client.start()
    time.sleep(1.5)
    cluster.signal("n1", sig)
    fault = time.monotonic()
    takeover = wait_for(lambda: cluster.holders() == ["n2"], 10, "n2 to take the VIP")
    client.join(30)
    monitor.stop()
    monitor.assert_one_arp_answer(fault, fault + takeover + 0.3, "n2")
    print(f"{sig.name}: standby held the VIP {takeover:.2f}s after the signal; "
          f"client: {result['r']}")  # fmt: skip
    return takeover, result["r"], monitor


def test_kill_9_of_the_active(cluster: SwitchedLab) -> None:
    takeover, client, monitor = _signal_active(cluster, signal.SIGKILL, 7.0)
    assert monitor.double_holders() == []
    assert takeover <= 2.0 + 1.0  # TTL + 1 s
    assert client["longest_outage"] <= 3.5


def test_sigterm_hands_over_quickly(cluster: SwitchedLab) -> None:
    takeover, client, monitor = _signal_active(cluster, signal.SIGTERM, 5.0, timeout=3.0)
    assert monitor.double_holders() == []
    assert takeover < 0.5
    assert client["failures"] == 0, client  # held SYNs are retransmitted, never refused
    assert cluster.procs["n1"].wait(10) == 0


def _first(samples: list[tuple[float, list[str]]], node: str) -> float:
    return min(t for t, holders in samples if node in holders)


def _last(samples: list[tuple[float, list[str]]], node: str) -> float:
    return max(t for t, holders in samples if node in holders)


def test_sigstop_of_the_active_then_resume(cluster: SwitchedLab) -> None:
    """b) A frozen active loses the VIP by the kernel lifetime before the standby adds
    it, and after SIGCONT does not take it back."""
    monitor = Monitor(cluster)
    time.sleep(0.5)
    cluster.signal("n1", signal.SIGSTOP)
    stopped = time.monotonic()
    takeover = wait_for(lambda: cluster.holders() == ["n2"], 10, "n2 to take the VIP")
    time.sleep(max(0.0, 3 * 2.0 - (time.monotonic() - stopped)))  # frozen for 3 x TTL
    cluster.signal("n1", signal.SIGCONT)
    time.sleep(2.0)
    monitor.stop()
    monitor.assert_one_arp_answer(stopped, stopped + takeover + 0.3, "n2")
    print(f"SIGSTOP: standby held the VIP {takeover:.2f}s after the freeze")
    assert monitor.double_holders() == []
    assert _last(monitor.samples, "n1") < _first(monitor.samples, "n2")
    assert cluster.holders() == ["n2"]  # the resumed node stayed standby


def test_active_cut_off_from_etcd(cluster: SwitchedLab) -> None:
    """d) The active cannot reach etcd: it drops the VIP before its lease can expire in
    etcd, and the standby takes over."""
    from deploy.lab.netlab import run

    monitor = Monitor(cluster)
    time.sleep(0.5)
    run("ip", "-n", cluster.ns["n1"], "route", "add", "blackhole", f"{HOSTS['etcd']}/32")
    cut = time.monotonic()
    dropped = wait_for(lambda: "n1" not in cluster.holders(), 10, "n1 to drop the VIP")
    wait_for(lambda: cluster.holders() == ["n2"], 10, "n2 to take the VIP")
    took = time.monotonic() - cut
    run("ip", "-n", cluster.ns["n1"], "route", "del", "blackhole", f"{HOSTS['etcd']}/32")
    time.sleep(1.5)
    monitor.stop()
    monitor.assert_one_arp_answer(cut, cut + took + 0.3, "n2")
    print(f"cut from etcd: n1 dropped the VIP after {dropped:.2f}s, n2 held it after {took:.2f}s")
    assert dropped < 2.0  # before the 2 s lease could expire in etcd
    assert monitor.double_holders() == []
    assert cluster.holders() == ["n2"]


def test_all_etcd_down_means_no_active(cluster: SwitchedLab) -> None:
    """f) Default policy: without etcd the active keeps the VIP only until its deadline,
    then every node is standby (no VIP anywhere) until etcd is back."""
    monitor = Monitor(cluster)
    cluster.signal("etcd", signal.SIGKILL)
    killed = time.monotonic()
    gone = wait_for(lambda: cluster.holders() == [], 5, "the VIP to be released")
    time.sleep(2.0)
    monitor.stop()
    monitor.assert_one_arp_answer(killed, killed + gone + 0.3, None)
    print(f"etcd down: the VIP was released {gone:.2f}s after etcd died")
    assert gone < 2.0
    assert all(not holders for t, holders in monitor.samples if t > killed + gone + 0.1)


def test_switchover_without_failed_requests(cluster: SwitchedLab) -> None:
    """g) Planned switchover: a wrong token changes nothing; the right one moves the VIP
    to the standby. A SYN retransmit is allowed (3 s client timeout). Known gap: an
    exchange that straddles the VIP removal can be lost; it is rare (one run in about
    six on a loaded 2-core machine lost one request, a 3 s timeout, at the switchover)
    and at most one is tolerated here, the lost exchange printed, until it is found."""
    # --admin given bare (host:port) or with its scheme names the member that
    # advertises it (https://...): two nodes, not a third "unreachable" one
    bare = admin_url("n2").removeprefix("https://")
    status = cli(cluster, "status", "--admin", admin_url("n1"), "--admin", bare, "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["leader"]["name"] == "n1"
    assert sorted(n["role"] for n in document["nodes"]) == ["active", "standby"]
    assert "active n1" in cli(cluster, "status").stdout

    bad = cluster.workdir / "wrong.token"
    bad.write_text("nope\n")
    refused = cli(cluster, "switchover", "--token-file", str(bad))
    assert refused.returncode == 1 and "refused" in refused.stderr
    time.sleep(0.5)
    assert cluster.holders() == ["n1"]  # nothing changed

    moved, probed, monitor = probed_switchover(cluster)
    print(f"switchover: standby held the VIP {moved:.2f}s after the request; client: {probed}")
    assert monitor.double_holders() == []
    assert probed["failures"] <= 1, probed
    assert cluster.procs["n1"].poll() is None  # the old active keeps running, as standby
    # n2 timed the takeover from n1's "leaving" mark (a handover, not a lease expiry)
    code, n2 = _admin(cluster, "n2", "/status")
    assert code == 200
    takeovers = n2["takeovers"]
    assert isinstance(takeovers, list) and len(takeovers) == 1, takeovers
    assert takeovers[0]["kind"] == "handover" and takeovers[0]["from"] == "n1"
    assert takeovers[0]["takeover_seconds"] < 1.0, takeovers


def test_switchover_without_failed_requests_for_http2_clients(cluster: SwitchedLab) -> None:
    """The handover sequence for a client on one kept HTTP/2 connection: the old active
    closes it with GOAWAY once it is between streams, a request the GOAWAY did not
    cover is retried on a new connection (held SYN, then the new active), none fails."""
    moved, probed, monitor = probed_switchover(cluster, h2=True)
    print(f"switchover, h2 client: n2 held the VIP {moved:.2f}s after the request; {probed}")
    assert monitor.double_holders() == []
    assert probed["failures"] == 0, probed
    assert probed["ok"] > 100, probed


def test_switchovers_without_arp_probe_never_have_two_holders() -> None:
    """With vip.arp_probe: 0s (no second line of defence), planned switchovers back and
    forth once left the VIP on both nodes for ~300 ms each time: the election revoked the
    lease while the VIP was still up, and the VIP task restarted before the resign. The
    handover order alone must keep one holder, and one MAC answering ARP."""
    with running_cluster(arp_probe="0s") as lab:
        monitor = Monitor(lab)
        started = time.monotonic()
        for to in ("n2", "n1", "n2", "n1"):
            done = cli(lab, "switchover", "--to", to)
            assert done.returncode == 0, done.stderr
            wait_for(lambda t=to: lab.holders() == [t], 10, f"{to} to take the VIP")
            time.sleep(4.5)  # the old active holds off 2 x TTL before it may lead again
        monitor.stop()
        print(f"4 switchovers in {time.monotonic() - started:.1f}s, "
              f"{len(monitor.samples)} samples")  # fmt: skip
        assert monitor.double_holders() == []
        # the MAC answering ARP for the VIP changes once per switchover: two MACs
        # answering at once would show as alternations
        macs = [mac for _, mac in sorted(monitor.claims)]
        changes = sum(1 for a, b in itertools.pairwise(macs) if a != b)
        assert changes <= 4, monitor.claims


def _admin(lab: SwitchedLab, node: str, path: str, *curl: str) -> tuple[int, dict[str, object]]:
    """curl a node's admin API over HTTPS (the lab CA): (HTTP status, JSON body)."""
    out = subprocess.run(
        ["ip", "netns", "exec", lab.ns["client"], *lab.admin_curl(), "-s", "-m", "3",
         "-w", "\n%{http_code}", *curl, admin_url(node, path)],
        capture_output=True, text=True, timeout=10,
    ).stdout.rsplit("\n", 1)  # fmt: skip
    return int(out[1]), json.loads(out[0] or "{}")


def test_all_etcd_down_with_failsafe_keeps_serving() -> None:
    """f) etcd_loss: failsafe. With every etcd member down, the active keeps the VIP
    past its deadline because the standby (which cannot reach etcd either) promised not
    to campaign; clients see nothing. When etcd returns, the active takes a new lease
    at once and keeps the VIP; never two holders. A promise needs the admin token."""
    with running_cluster(etcd_loss="failsafe") as lab:
        code, _ = _admin(lab, "n2", "/failsafe?leader=n1&seconds=2", "-X", "POST")
        assert code == 401  # no token: refused, nothing promised
        # the active lists every node that could campaign, in etcd, before it needs them
        wait_for(lambda: _admin(lab, "n1", "/status")[1].get("failsafe_members")
                 == ["n1", "n2"], 10, "the failsafe list n1, n2")  # fmt: skip
        monitor = Monitor(lab)
        result: dict[str, dict[str, float]] = {}
        client = threading.Thread(target=lambda: result.update(r=probe(lab, 10.0)))
        client.start()
        time.sleep(1.5)
        lab.signal("etcd", signal.SIGKILL)
        lab.procs["etcd"].wait(5)
        time.sleep(4.0)  # twice the lease TTL: without failsafe the VIP would be gone
        _, n1 = _admin(lab, "n1", "/status")
        _, n2 = _admin(lab, "n2", "/status")
        assert n1["role"] == "active" and n1["failsafe_active"] is True, n1
        assert n2["role"] == "standby" and n2["promised_to"] == "n1", n2
        lab.start_etcd()  # same data directory: etcd comes back
        back = time.monotonic()
        wait_for(lambda: _admin(lab, "n1", "/status")[1].get("failsafe_active") is False, 10,
                 "n1 to leave failsafe")  # fmt: skip
        client.join(30)
        monitor.stop()
        print(f"etcd down with failsafe: client {result['r']}; "
              f"n1 back on a lease {time.monotonic() - back:.2f}s after etcd returned")  # fmt: skip
        odd = [(round(t - monitor.samples[0][0], 2), h) for t, h in monitor.samples if h != ["n1"]]
        assert not odd, f"{odd[:8]}\n{lab.events('n1')}"  # never moved, never gone
        assert result["r"]["failures"] == 0, result["r"]
        assert monitor.arp_macs(0.0) == {lab.mac("n1")}
        status = cli(lab, "status", "--json")
        assert json.loads(status.stdout)["leader"]["name"] == "n1", status.stdout


def test_a_dead_member_stays_listed_as_down_with_last_seen(cluster: SwitchedLab) -> None:
    """kill -9 of the standby: its member entry vanishes after one TTL; the active
    records it, and `floatgate status`, /status and /cluster show it DOWN with the time it
    was last seen, instead of dropping it. Once it runs again it is no longer DOWN."""
    cluster.signal("n2", signal.SIGKILL)
    cluster.procs["n2"].wait(10)
    wait_for(lambda: cluster.admin_status("n1")["down_members"], 10, "n1 to list n2 as down")
    down = cluster.admin_status("n1")["down_members"]
    assert isinstance(down, list) and [d["name"] for d in down] == ["n2"], down
    assert down[0]["priority"] == 100 and str(down[0]["last_seen"]).startswith("20"), down
    shown = cli(cluster, "status")
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.strip().startswith("n2"))
    assert "DOWN" in row and "last seen" in row, shown.stdout
    assert json.loads(cli(cluster, "status", "--json").stdout)["down"][0]["name"] == "n2"
    code, page = _admin(cluster, "n1", "/cluster")
    assert code == 200 and page["nodes"]["n2"]["down"] is True, page  # type: ignore[index]
    cluster.restart_node("n2")
    wait_for(lambda: not cluster.admin_status("n1")["down_members"], 20, "n2 to be back")
    assert "DOWN" not in cli(cluster, "status").stdout
    # kill -9 of the active: its crash guard ends its member entry before n2 leads;
    # the new active still lists it DOWN
    wait_for(lambda: cluster.admin_status("n2").get("role") == "standby", 10, "n2 standby")
    cluster.signal("n1", signal.SIGKILL)
    cluster.procs["n1"].wait(10)
    wait_for(lambda: [d["name"] for d in cluster.admin_status("n2")["down_members"]] == ["n1"],
             10, "n2 to list the killed active n1 as down")  # fmt: skip
    assert cluster.admin_status("n2")["role"] == "active"


def test_the_successor_dying_during_the_hold_off_is_covered_at_once() -> None:
    """Found by the nemesis: after a switchover the old active holds off (2 x TTL) so the
    successor can take the seat. If the successor then dies, the old active must take
    over as soon as the successor's lease expires, not only after the hold-off: the
    hold-off has done its job once a successor led."""
    with running_cluster(lease_ttl="3s") as lab:
        done = cli(lab, "switchover", "--to", "n2")
        assert done.returncode == 0, done.stderr
        wait_for(lambda: lab.holders() == ["n2"], 10, "n2 to take the VIP")
        lab.signal("n2", signal.SIGKILL)
        killed = time.monotonic()
        back = wait_for(lambda: lab.holders() == ["n1"], 15, "n1 to take the VIP back")
        print(f"successor killed during the hold-off: n1 held the VIP {back:.2f}s later")
        assert time.monotonic() - killed < 3.0 + 1.2  # one TTL, reaping and a campaign
