"""e) A 3-member etcd cluster, client TLS with client certificates, in the lab: losing
the etcd member the active talks to -- killed, or cut off by the network -- is no
failover and no failed request; the CLI reads the cluster over TLS."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from deploy.lab.netlab import HOSTS, SwitchedLab, run
from tests.cluster.labkit import Monitor, cli, probe, running_cluster
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.fixture
def cluster3() -> Iterator[SwitchedLab]:
    with running_cluster(etcd_members=3, etcd_tls=True) as lab:
        yield lab


def _leader_token(lab: SwitchedLab) -> tuple[str, int]:
    status = cli(lab, "status", "--json")
    assert status.returncode == 0, status.stderr
    leader = json.loads(status.stdout)["leader"]
    return leader["name"], leader["fencing_token"]


def test_losing_etcd_members_is_no_failover(cluster3: SwitchedLab) -> None:
    assert "https://" in (cluster3.workdir / "n1.yaml").read_text()
    before = _leader_token(cluster3)
    assert before[0] == "n1"
    monitor = Monitor(cluster3)
    result: dict[str, dict[str, float]] = {}
    client = threading.Thread(target=lambda: result.update(r=probe(cluster3, 9.0, 3.0)))
    client.start()
    time.sleep(1.0)
    cluster3.signal("etcd", signal.SIGKILL)  # the member n1 talks to first
    time.sleep(3.0)
    # the member n1 moved to is now unreachable from n1 only (packets dropped: timeouts)
    run("ip", "-n", cluster3.ns["n1"], "route", "add", "blackhole", f"{HOSTS['etcd2']}/32")
    time.sleep(4.0)
    client.join(30)
    monitor.stop()
    print(f"3-member etcd, one killed then one cut off: client {result['r']}")
    moved = [(round(t - monitor.samples[0][0], 2), h) for t, h in monitor.samples if h != ["n1"]]
    assert not moved, f"{moved[:10]}\n{cluster3.events('n1')}"  # never moved
    assert result["r"]["failures"] == 0
    assert monitor.arp_macs(0.0) == {cluster3.mac("n1")}
    assert _leader_token(cluster3) == before  # the same reign throughout
