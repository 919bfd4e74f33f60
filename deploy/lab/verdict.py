"""The safety verdict from recorded events (pure; deploy/lab/checker.py records them).

Two measures, in milliseconds, both required to be zero:

- **two holders**: time during which two nodes had the VIP on their interface at once,
  from netlink address events (RTM_NEWADDR / RTM_DELADDR) in every node namespace;
- **two answerers**: the client-visible split brain, from an ARP capture on the switch.
  A client asks "who has VIP?" every few tens of milliseconds; the time from one question
  to the next is one *period*. A period in which frames from two different MACs claimed
  the VIP (replies to the question and gratuitous ARPs alike) counts whole, unless it is
  a *clean handover*: with each MAC known as a node's, every frame came from a node that
  had the address when it was sent, and each MAC's frames all came before the next MAC's
  first frame, by when the earlier node's address was gone. The client then heard one
  holder, then the next: that is a handover, recorded in ``handovers``, not a split brain.

Answers are ARP frames claiming the VIP and IPv4 frames sent from it (a client's traffic
answered by two hosts is a split brain too). With ``vip.fence: bpf`` and
``lease_ttl: 1s`` the address is a 1 s backstop that a frozen or killed holder keeps for
up to ~1.3 s after its fence shut: only overlap beyond ``BACKSTOP`` counts there.
A verdict is void (``blind``) when the checker may have missed events.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

BACKSTOP = 1.4  # s: the longest a fenced holder keeps a 1 s address (kernel lag included)


@dataclass(frozen=True, slots=True)
class AddressEvent:
    at: float  # monotonic seconds
    node: str
    present: bool


@dataclass(frozen=True, slots=True)
class ArpEvent:
    at: float
    mac: str
    question: bool  # the client's "who has VIP?"; else a frame claiming the VIP


@dataclass(slots=True)
class Verdict:
    two_holders_ms: float = 0.0
    two_answerers_ms: float = 0.0
    holder_overlaps: list[tuple[float, float, tuple[str, ...]]] = field(default_factory=list)
    answerer_periods: list[tuple[float, float, tuple[str, ...]]] = field(default_factory=list)
    handovers: list[tuple[float, float, tuple[str, ...]]] = field(default_factory=list)
    questions: int = 0
    claims: int = 0
    longest_question_gap: float = 0.0  # s between two questions: what could go unseen
    blind: list[str] = field(default_factory=list)  # why events may have been missed

    @property
    def safe(self) -> bool:
        return self.two_holders_ms == 0 and self.two_answerers_ms == 0 and not self.blind


def holder_overlaps(
    events: list[AddressEvent], initial: dict[str, bool], end: float
) -> list[tuple[float, float, tuple[str, ...]]]:
    """Intervals (start, end, nodes) during which more than one node had the address.
    A refresh (NEWADDR while present) changes nothing."""
    holding = {node for node, present in initial.items() if present}
    overlaps: list[tuple[float, float, tuple[str, ...]]] = []
    since: float | None = None
    for event in sorted(events, key=lambda e: e.at):
        before = len(holding) > 1
        (holding.add if event.present else holding.discard)(event.node)
        after = len(holding) > 1
        if after and not before:
            since = event.at
        elif before and not after and since is not None:
            overlaps.append((since, event.at, tuple(sorted(holding | {event.node}))))
            since = None
    if since is not None:
        overlaps.append((since, end, tuple(sorted(holding))))
    return overlaps


Period = tuple[float, float, tuple[str, ...]]


def answerer_periods(
    events: list[ArpEvent], holds: Callable[[str, float], bool] | None = None
) -> tuple[list[Period], list[Period]]:
    """Question periods (start, end, MACs) in which two or more MACs claimed the VIP:
    (split brains, clean handovers). ``holds(mac, at)``: whether that MAC's node had the
    address at that instant (None: nothing is known, no period is a handover)."""
    ordered = sorted(events, key=lambda e: e.at)
    questions = [e.at for e in ordered if e.question]
    split: list[Period] = []
    handovers: list[Period] = []
    index = 0
    claims = [e for e in ordered if not e.question]
    for start, end in itertools.pairwise(questions):
        inside: list[ArpEvent] = []
        while index < len(claims) and claims[index].at < end:
            if claims[index].at >= start:
                inside.append(claims[index])
            index += 1
        macs = tuple(sorted({e.mac for e in inside}))
        if len(macs) < 2:
            continue
        clean = holds is not None and clean_handover(inside, holds)
        (handovers if clean else split).append((start, end, macs))
    return split, handovers


def clean_handover(claims: list[ArpEvent], holds: Callable[[str, float], bool]) -> bool:
    """Claims (in time order) from several MACs are one holder after another: every
    frame's sender had the address, and each MAC fell silent and lost the address before
    the next MAC's first frame."""
    if not all(holds(e.mac, e.at) for e in claims):
        return False
    runs: list[tuple[str, float, float]] = []  # (mac, first, last) in order of first frame
    for event in claims:
        if runs and runs[-1][0] == event.mac:
            runs[-1] = (event.mac, runs[-1][1], event.at)
        elif any(mac == event.mac for mac, _, _ in runs):
            return False  # a MAC that handed over answers again: interleaved
        else:
            runs.append((event.mac, event.at, event.at))
    return all(not holds(old, new_first) for (old, _, _), (_, new_first, _)
               in itertools.pairwise(runs))  # fmt: skip


def holding(
    events: list[AddressEvent], initial: dict[str, bool], macs: dict[str, str]
) -> Callable[[str, float], bool]:
    """``holds(mac, at)`` from the address events: False for a MAC of no known node."""
    timelines: dict[str, list[tuple[float, bool]]] = {}
    for event in sorted(events, key=lambda e: e.at):
        timelines.setdefault(event.node, []).append((event.at, event.present))

    def holds(mac: str, at: float) -> bool:
        node = macs.get(mac)
        if node is None:
            return False
        timeline = timelines.get(node, [])
        before = bisect.bisect_right(timeline, (at, True))
        return timeline[before - 1][1] if before else initial.get(node, False)

    return holds


def judge(
    addresses: list[AddressEvent],
    initial: dict[str, bool],
    arp: list[ArpEvent],
    end: float,
    fenced_backstop: bool = False,
    macs: dict[str, str] | None = None,
) -> Verdict:
    """``fenced_backstop``: the address outlives the reign by design (bpf fence, TTL 1 s):
    only overlap beyond ``BACKSTOP`` counts as two holders (all is kept for the record).
    ``macs``: MAC to node, so that a clean handover within one period is told apart."""
    overlaps = holder_overlaps(addresses, initial, end)
    holds = holding(addresses, initial, macs) if macs else None
    periods, handovers = answerer_periods(arp, holds)
    slack = BACKSTOP if fenced_backstop else 0.0
    questions = sorted(e.at for e in arp if e.question)
    gaps = [b - a for a, b in itertools.pairwise(questions)]
    verdict = Verdict(
        two_holders_ms=round(sum(max(0.0, b - a - slack) for a, b, _ in overlaps) * 1000, 1),
        two_answerers_ms=_ms(periods),
        holder_overlaps=overlaps,
        answerer_periods=periods,
        handovers=handovers,
        questions=len(questions),
        claims=sum(not e.question for e in arp),
        longest_question_gap=round(max(gaps, default=0.0), 3),
    )
    return verdict


def _ms(intervals: list[tuple[float, float, tuple[str, ...]]]) -> float:
    return round(sum(end - start for start, end, _ in intervals) * 1000, 1)
