"""A bounded nemesis run in the test command: random faults (kill -9, SIGSTOP, link down,
etcd loss and partitions, ARP cuts, switchovers) against the lab cluster, judged by the
event-driven checker: 0 ms of two holders and 0 ms of two ARP answerers. The seed is
printed; a failing one replays with ``python -m deploy.lab nemesis --seed S --events N``.
FLOATGATE_NEMESIS_SEED fixes it."""

from __future__ import annotations

import os
import random

import pytest

from deploy.lab.nemesis import run_nemesis, table
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.mark.parametrize(("lease_ttl", "arp_probe", "events"), [("2s", "0s", 8), ("1s", "50ms", 8)])
def test_nemesis_never_two_holders_nor_two_answerers(
    lease_ttl: str, arp_probe: str, events: int
) -> None:
    seed = int(os.environ.get("FLOATGATE_NEMESIS_SEED") or random.SystemRandom().randrange(1 << 31))
    result = run_nemesis(seed, events, lease_ttl=lease_ttl, arp_probe=arp_probe)
    print(table([result]))
    replay = f"replay: python -m deploy.lab nemesis --seed {seed} --events {events} " \
             f"--ttl {lease_ttl} --arp-probe {arp_probe}"  # fmt: skip
    verdict = result.verdict
    assert verdict is not None, replay
    assert all(o.steady for o in result.outcomes), replay
    assert len(result.outcomes) == events, replay
    assert verdict.questions > 0 and verdict.claims > 0, replay  # the checker saw the wire
    assert verdict.blind == [], f"{verdict.blind}; {replay}"
    assert verdict.two_answerers_ms == 0, f"{verdict.answerer_periods}; {replay}"
    assert verdict.two_holders_ms == 0, f"{verdict.holder_overlaps}; {replay}"
