"""Cluster nodes with ``workers: 2`` in the lab: a worker killed on the active is
replaced without a failover (the VIP stays, the reign goes on), and a switchover holds
new connections on the shared sockets and moves the VIP with no refused connection and
never two holders."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab.netlab import SwitchedLab, wait_for
from tests.cluster.labkit import Monitor, probe, probed_switchover, running_cluster
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.fixture
def cluster() -> Iterator[SwitchedLab]:
    with running_cluster(workers=2) as lab:
        yield lab


def _workers(lab: SwitchedLab, node: str) -> list[int]:
    """The node's worker processes (its crash guard is a child too, not a worker)."""
    out = subprocess.run(["ps", "--ppid", str(lab.procs[node].pid), "-o", "pid="],
                         capture_output=True, text=True)  # fmt: skip
    pids = []
    for pid in (int(p) for p in out.stdout.split()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"node.app.worker" in command:
            pids.append(pid)
    return pids


def _token(lab: SwitchedLab) -> object:
    return lab.admin_status("n1").get("fencing_token")


def test_a_worker_killed_on_the_active_is_no_failover(cluster: SwitchedLab) -> None:
    workers = _workers(cluster, "n1")
    assert len(workers) == 3, workers  # two serve, one spare
    token = _token(cluster)
    monitor = Monitor(cluster)
    result: dict[str, dict[str, float]] = {}
    client = threading.Thread(target=lambda: result.update(r=probe(cluster, 4.0, timeout=1.0)))
    client.start()
    time.sleep(1.5)
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    client.join(30)
    monitor.stop()
    print(f"worker {victim} killed on the active; client: {result['r']}")
    assert cluster.holders() == ["n1"]  # no failover
    assert _token(cluster) == token  # the same reign
    assert monitor.double_holders() == []
    assert result["r"]["failures"] <= 1, result["r"]  # at most the one in flight on it
    wait_for(lambda: len(_workers(cluster, "n1")) == 3, 10, "a new spare")
    assert victim not in _workers(cluster, "n1")
    assert "serves in place of pid" in cluster.log("n1")


def test_a_switchover_with_workers_refuses_no_connection(cluster: SwitchedLab) -> None:
    moved, probed, monitor = probed_switchover(cluster)
    print(f"switchover with workers: n2 held the VIP {moved:.2f}s after the request; "
          f"client: {probed}")  # fmt: skip
    assert monitor.double_holders() == []
    assert probed["failures"] <= 1, probed  # as test_failover_lab's switchover
    assert len(_workers(cluster, "n1")) == 3  # the old active serves on, as standby
