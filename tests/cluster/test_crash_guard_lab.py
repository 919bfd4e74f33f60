"""The crash guard in the namespace lab: a node process killed without handing over has
its VIP removed and its lease ended by the guard beside it (or by ``floatgate
release-crashed``, systemd's ExecStopPost=, when the guard died too), so the standby
takes over at once -- reported as kind ``crash`` -- and never two holders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.lab.netlab import REPO, VIP, SwitchedLab, wait_for
from tests.cluster.labkit import Monitor, probe, running_cluster
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.fixture
def cluster() -> Iterator[SwitchedLab]:
    with running_cluster() as lab:
        yield lab


def _armed(lab: SwitchedLab, node: str) -> bool:
    try:
        return bool(lab.admin_status(node)["crash_guard"]["armed"])  # type: ignore[index]
    except (RuntimeError, ValueError):  # not answering yet (starting)
        return False


def _guard(lab: SwitchedLab, node: str) -> dict[str, Any]:
    wait_for(lambda: _armed(lab, node), 30, f"{node}'s crash guard to be armed")
    guard = lab.admin_status(node)["crash_guard"]
    assert isinstance(guard, dict)
    return guard


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _crash(lab: SwitchedLab, *, with_guard: bool) -> tuple[float, dict[str, float], Monitor]:
    """kill -9 of n1 (and of its guard first, when ``with_guard``) under a probing
    client; returns (seconds until n2 alone held the VIP, probe result, monitor)."""
    guard = _guard(lab, "n1")
    monitor = Monitor(lab)
    result: dict[str, dict[str, float]] = {}
    client = threading.Thread(target=lambda: result.update(r=probe(lab, 5.0, 0.5)))
    client.start()
    time.sleep(1.5)
    if with_guard:
        os.kill(int(guard["pid"]), signal.SIGKILL)
    lab.signal("n1", signal.SIGKILL)
    fault = time.monotonic()
    lab.procs["n1"].wait(10)
    if with_guard:
        wait_for(lambda: _gone(int(guard["pid"])), 10, "the guard to be gone")
        released = subprocess.run(
            ["ip", "netns", "exec", lab.ns["n1"], sys.executable, "-m", "node.cli",
             "release-crashed", "--node", str(lab.workdir / "n1.yaml")],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert released.returncode == 0, released.stderr
        assert "died without handing over" in released.stdout, released.stdout
        assert f"VIP {VIP}/24 removed from eth0" in released.stdout, released.stdout
        assert "revoked" in released.stdout, released.stdout
    wait_for(lambda: lab.holders() == ["n2"], 15, "n2 to take the VIP")
    took = time.monotonic() - fault
    client.join(30)
    monitor.stop()
    monitor.assert_one_arp_answer(fault, fault + took + 0.3, "n2")
    assert monitor.double_holders() == []
    if not with_guard:
        wait_for(lambda: _gone(int(guard["pid"])), 10, "the guard to exit when done")
    return took, result["r"], monitor


def _last_takeover(lab: SwitchedLab, node: str) -> dict[str, Any]:
    """The takeover ``node`` recorded last (recorded once its gratuitous ARPs are out)."""
    wait_for(lambda: lab.admin_status(node)["takeovers"], 10, f"{node} to record a takeover")
    takeovers = lab.admin_status(node)["takeovers"]
    assert isinstance(takeovers, list) and takeovers
    last = takeovers[-1]
    assert isinstance(last, dict)
    return last


def test_kill_9_of_the_active_is_released_by_its_guard(cluster: SwitchedLab) -> None:
    took, client, _ = _crash(cluster, with_guard=False)
    log = cluster.log("n1")
    assert "crash guard: floatgate pid" in log and "died without handing over" in log, log
    assert "its leader key marked crashed, member entry lease" in log, log
    takeover = _last_takeover(cluster, "n2")
    assert takeover["kind"] == "crash" and takeover["from"] == "n1", takeover
    print(f"kill -9 with the guard: n2 alone held the VIP {took:.3f}s after the kill; "
          f"takeover {takeover['takeover_seconds']}s; client: {client}")  # fmt: skip
    # n1 comes back as a standby (its record is its own now) and n2 keeps the seat.
    cluster.restart_node("n1")
    _guard(cluster, "n1")
    assert cluster.holders() == ["n2"]


def test_release_crashed_ends_the_reign_when_the_guard_died_too() -> None:
    """As after a crash under systemd's KillMode=control-group: the whole unit is gone;
    ExecStopPost= runs ``floatgate release-crashed``. A 6 s lease: the command (a fresh
    Python, ~1 s to start) ends the reign well before the lease could run out."""
    with running_cluster(lease_ttl="6s") as cluster:
        _release_crashed(cluster)


def _release_crashed(cluster: SwitchedLab) -> None:
    took, client, _ = _crash(cluster, with_guard=True)
    takeover = _last_takeover(cluster, "n2")
    assert takeover["kind"] == "crash", takeover
    print(f"kill -9 of node and guard, then release-crashed: n2 alone held the VIP "
          f"{took:.3f}s after the kill; client: {client}")  # fmt: skip
    again = subprocess.run(
        ["ip", "netns", "exec", cluster.ns["n1"], sys.executable, "-m", "node.cli",
         "release-crashed", "--node", str(cluster.workdir / "n1.yaml"), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0 and '"released": false' in again.stdout, again.stdout
    assert cluster.holders() == ["n2"]


def test_a_dead_guard_is_started_again_and_a_clean_stop_leaves_nothing_to_do(
    cluster: SwitchedLab,
) -> None:
    first = _guard(cluster, "n2")
    os.kill(int(first["pid"]), signal.SIGKILL)
    wait_for(lambda: cluster.admin_status("n2")["crash_guard"]["pid"] != first["pid"]  # type: ignore[index]
             and cluster.admin_status("n2")["crash_guard"]["armed"], 30,  # type: ignore[index]
             "n2's guard to be started again")  # fmt: skip
    again = cluster.admin_status("n2")["crash_guard"]
    assert isinstance(again, dict) and again["starts"] == 2, again
    cluster.signal("n1", signal.SIGTERM)
    assert cluster.procs["n1"].wait(20) == 0
    assert "crash guard: nothing to do: the node handed over cleanly" in cluster.log("n1")
    wait_for(lambda: cluster.holders() == ["n2"], 15, "n2 to take the VIP")
    assert _last_takeover(cluster, "n2")["kind"] == "handover"
