"""`floatgate drill` against the lab cluster, run from the client namespace as an
operator would: each scenario moves the VIP, the report measures it, --max-outage turns
a long outage into exit 3, and every drill is appended to the drill log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.lab.netlab import SwitchedLab, admin_url, wait_for
from tests.cluster.labkit import running_cluster
from tests.lab import REPO, cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.fixture
def cluster() -> Iterator[SwitchedLab]:
    with running_cluster() as lab:
        yield lab


def _drill(lab: SwitchedLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab.ns["client"], sys.executable, "-m", "node.cli", "drill",
         "--node", str(lab.workdir / "n1.yaml"), "--cluster-name", "lab",
         "--record", str(lab.workdir / "drills.jsonl"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _check(report: dict[str, Any], old: str, new: str) -> None:
    assert report["old_active"] == old and report["new_active"] == new, report
    assert report["double_holder_samples"] == 0, report
    assert report["vip_move_seconds"] is not None, report
    assert report["fencing_token_after"] > report["fencing_token_before"], report
    assert report["takeover_seconds"] is not None, report
    assert report["requests"] > 40, report


def test_drills_move_the_vip_and_report_what_clients_saw(cluster: SwitchedLab) -> None:
    bad = cluster.workdir / "wrong.token"
    bad.write_text("nope\n")
    refused = _drill(cluster, "--scenario", "kill-active", "--token-file", str(bad))
    assert refused.returncode == 1 and "refused the fault: HTTP 401" in refused.stderr
    assert cluster.holders() == ["n1"] and cluster.procs["n1"].poll() is None

    reports = []
    plan = [("switchover", "n1", "n2", ["--max-outage", "1.5"]),
            ("freeze-active", "n2", "n1", ["--seconds", "4", "--max-outage", "4"]),
            ("isolate-active", "n1", "n2", ["--seconds", "4", "--max-outage", "4"]),
            ("stall-active", "n2", "n1", ["--seconds", "3", "--max-outage", "4"])]  # fmt: skip
    for scenario, old, new, extra in plan:
        done = _drill(cluster, "--scenario", scenario, "--json", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        _check(report, old, new)
        assert report["verdict"] == "ok"
        assert "waiting for another node to take over" in done.stderr  # progress lines
        reports.append(report)
        print(f"{scenario}: outage {report['outage_seconds']}s, failed "
              f"{report['failed_requests']}/{report['requests']}, VIP moved "
              f"{report['vip_move_seconds']}s, takeover {report['takeover_seconds']}s")  # fmt: skip
        # the faulted node comes back as a registered standby before the next drill
        wait_for(lambda o=old: _standby_again(cluster, o), 20, f"{old} to be a standby again")
    switchover, freeze, _, stall = reports
    assert switchover["failed_requests"] == 0
    assert freeze["old_active_now"] in ("standby", "unreachable")
    assert stall["old_active_now"] == "standby"  # alive, handed over: it could not serve

    # kill-active with a threshold no crash can meet: the drill itself reports failure
    done = _drill(cluster, "--scenario", "kill-active", "--max-outage", "0.05")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "FAILED: outage" in done.stdout and "n1 -> n2" in done.stdout
    assert cluster.procs["n1"].wait(5) == 70  # exited on its own, without cleanup
    log = [json.loads(line) for line in (cluster.workdir / "drills.jsonl").read_text().splitlines()]
    assert [r["scenario"] for r in log] == [
        "switchover", "freeze-active", "isolate-active", "stall-active", "kill-active"]  # fmt: skip
    assert log[-1]["verdict"].startswith("FAILED: outage")


def _standby_again(lab: SwitchedLab, node: str) -> bool:
    try:
        status = json.loads(_status(lab, node))
    except ValueError:
        return False
    names = {m["name"] for m in status.get("members", [])}
    return status.get("role") == "standby" and names == {"n1", "n2"}


def _status(lab: SwitchedLab, node: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", lab.ns["client"], *lab.admin_curl(), "-s", "-m", "2",
         admin_url(node, "/status")], capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
