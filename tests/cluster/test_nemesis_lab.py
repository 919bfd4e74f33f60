"""A bounded nemesis run in the test command: random faults (kill -9, SIGSTOP, link down,
etcd loss and partitions, ARP cuts, switchovers; with 3 etcd members and 3 nodes etcd
leader pauses and slow fsync) against the lab cluster, judged by the
event-driven checker: 0 ms of two holders and 0 ms of two ARP answerers. The seed is
printed; a failing one replays with ``python -m deploy.lab nemesis --seed S --events N``.
FLOATGATE_NEMESIS_SEED fixes it."""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from typing import Any

import pytest

from deploy.lab.nemesis import Nemesis, run_nemesis, table
from deploy.lab.netlab import SwitchedLab
from tests.cluster.labkit import Monitor, running_cluster
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.mark.parametrize(
    ("lease_ttl", "arp_probe", "events", "more"),
    [
        ("2s", "50ms", 8, {}),
        ("1s", "50ms", 8, {}),
        # no ARP probe: the successor's first frames may share the old holder's last
        # question period, a handover the checker tells from two answerers
        ("2s", "0s", 6, {"faults": ("switchover", "kill-9", "switchover-during-loss")}),
        # every node with 2 worker processes: the node process alone holds the VIP
        ("2s", "50ms", 6, {"workers": 2}),
        # the faults only 3 etcd members allow, with 3 nodes, TTL 3 s, the lifetime fence
        ("3s", "50ms", 4, {"etcd_members": 3, "nodes": 3, "fence": "lifetime",
                           "faults": ("etcd-leader-pause", "etcd-slow-fsync")}),
    ],
    ids=["ttl2", "ttl1", "ttl2-probe0-handovers", "ttl2-workers", "ttl3-3etcd-3nodes"],
)  # fmt: skip
def test_nemesis_never_two_holders_nor_two_answerers(
    lease_ttl: str, arp_probe: str, events: int, more: dict[str, Any]
) -> None:
    seed = int(os.environ.get("FLOATGATE_NEMESIS_SEED") or random.SystemRandom().randrange(1 << 31))
    result = run_nemesis(seed, events, lease_ttl=lease_ttl, arp_probe=arp_probe, **more)
    print(table([result]))
    flags = "".join(
        f" --{key.replace('_', '-')} {','.join(value) if key == 'faults' else value}"
        for key, value in more.items()
    )
    replay = f"replay: python -m deploy.lab nemesis --seed {seed} --events {events} " \
             f"--ttl {lease_ttl} --arp-probe {arp_probe}{flags}"  # fmt: skip
    verdict = result.verdict
    assert verdict is not None, replay
    assert all(o.steady for o in result.outcomes), replay
    assert len(result.outcomes) == events, replay
    assert verdict.questions > 0 and verdict.claims > 0, replay  # the checker saw the wire
    assert verdict.blind == [], f"{verdict.blind}; {replay}"
    assert verdict.two_answerers_ms == 0, f"{verdict.answerer_periods}; {replay}"
    assert verdict.two_holders_ms == 0, f"{verdict.holder_overlaps}; {replay}"


def _etcd_commit_ms(lab: SwitchedLab, node: str) -> float:
    """What etcdctl, run on ``node``, reports for one committed proposal (a new
    connection and a write: several round trips on the node's etcd link)."""
    out = subprocess.run(
        ["ip", "netns", "exec", lab.ns[node], "etcdctl", f"--endpoints={lab.etcd_endpoints()[0]}",
         "endpoint", "health"], capture_output=True, text=True, timeout=30,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    found = re.search(r"took = ([0-9.]+)(µs|ms|s)", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    value, unit = float(found.group(1)), found.group(2)
    return value * {"µs": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def test_etcd_delay_holds_the_nodes_etcd_packets_and_heals() -> None:
    """The nemesis' etcd-delay fault (an NFQUEUE rule and deploy/lab/nfdelay.py, since
    this kernel has no netem): 100 ms each way on n1's etcd link puts a round trip of
    200 ms under etcdctl run on n1, leaves n2's link alone, and at TTL 2 s n1 keeps the
    VIP throughout; healed, the link is fast again and the delayer has exited."""
    with running_cluster() as lab:
        nemesis = Nemesis(lab, random.Random(1))
        monitor = Monitor(lab)
        before = _etcd_commit_ms(lab, "n1")
        nemesis.delay_etcd("n1", 100)
        try:
            time.sleep(1.0)
            delayed, other = _etcd_commit_ms(lab, "n1"), _etcd_commit_ms(lab, "n2")
            time.sleep(2.0)
        finally:
            nemesis.heal_delay("n1")
        after = _etcd_commit_ms(lab, "n1")
        monitor.stop()
        print(f"etcdctl on n1: {before:.1f} ms, delayed {delayed:.1f} ms, after {after:.1f} ms;"
              f" on n2 while n1 was delayed: {other:.1f} ms")  # fmt: skip
        assert delayed >= 200.0 > before
        assert other < 200.0 and after < 200.0
        assert "nfdelay-n1" not in lab.procs
        start = monitor.samples[0][0]
        moved = [(round(t - start, 2), h) for t, h in monitor.samples if h != ["n1"]]
        assert not moved, f"{moved[:10]}\n{lab.events('n1')}"
