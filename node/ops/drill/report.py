"""What a drill measured, computed from its samples (pure: no I/O, no clock).

Probes: one request each, on a new connection, at a fixed rate: (sent, done, ok).
Node samples: every ~100 ms, each node's (role, vip_present) as its admin API said."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Probe:
    sent: float
    done: float
    ok: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class NodeSample:
    at: float
    holders: tuple[str, ...]  # nodes reporting the VIP on their interface
    actives: tuple[str, ...]  # nodes reporting role=active


@dataclass(frozen=True, slots=True)
class Outage:
    gap: float  # the longest time between two consecutive successful answers
    gap_start: float | None  # when that gap began (the last success before it)
    failed: int
    total: int


def outage(probes: Sequence[Probe], fault_at: float) -> Outage:
    """The longest gap between successive successful answers among probes completed
    after the baseline began, and the failed count. A drill whose probes never
    succeed after the fault has a gap up to the last probe."""
    done = sorted(probes, key=lambda p: p.done)
    successes = [p.done for p in done if p.ok]
    failed = sum(1 for p in done if not p.ok)
    gap, start = 0.0, None
    for before, after in itertools.pairwise(successes):
        if after - before > gap:
            gap, start = after - before, before
    last_success = successes[-1] if successes else None
    if done and (last_success is None or done[-1].done > last_success):
        since = last_success if last_success is not None else fault_at
        tail = done[-1].done - since
        if tail > gap:  # never recovered within the drill
            gap, start = tail, since
    return Outage(round(gap, 3), start, failed, len(done))


def vip_moved_at(samples: Sequence[NodeSample], fault_at: float, old: str) -> float | None:
    """Seconds from the fault to the first sample with exactly one holder, not ``old``."""
    for sample in samples:
        if sample.at >= fault_at and len(sample.holders) == 1 and sample.holders[0] != old:
            return round(sample.at - fault_at, 3)
    return None


def double_holders(samples: Sequence[NodeSample]) -> list[float]:
    """Sample times at which two nodes reported the VIP (never expected)."""
    return [s.at for s in samples if len(s.holders) > 1]


def verdict(gap: float, max_outage: float | None, moved: float | None, doubles: int) -> str:
    """ "ok", or the sentence saying why the drill failed."""
    if doubles:
        return f"FAILED: two nodes reported the VIP at {doubles} samples"
    if moved is None:
        return "FAILED: the VIP did not move to another node"
    if max_outage is not None and gap > max_outage:
        return f"FAILED: outage {gap:.2f}s exceeds --max-outage {max_outage:.2f}s"
    return "ok"
