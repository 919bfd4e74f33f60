"""The safety verdict from recorded events (pure; deploy/lab/checker.py records them).

Two measures, in milliseconds, both required to be zero:

- **two holders**: time during which two nodes had the VIP on their interface at once,
  from netlink address events (RTM_NEWADDR / RTM_DELADDR) in every node namespace;
- **two answerers**: the client-visible split brain, from an ARP capture on the switch.
  A client asks "who has VIP?" every few tens of milliseconds; the time from one question
  to the next is one *period*. A period in which frames from two different MACs claimed
  the VIP (replies to the question and gratuitous ARPs alike) counts whole.

Answers are ARP frames claiming the VIP and IPv4 frames sent from it (a client's traffic
answered by two hosts is a split brain too). With ``vip.fence: bpf`` and
``lease_ttl: 1s`` the address is a 1 s backstop that a frozen or killed holder keeps for
up to ~1.3 s after its fence shut: only overlap beyond ``BACKSTOP`` counts there.
A verdict is void (``blind``) when the checker may have missed events.
"""

from __future__ import annotations

import itertools
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


def answerer_periods(events: list[ArpEvent]) -> list[tuple[float, float, tuple[str, ...]]]:
    """Question periods (start, end, MACs) in which two or more MACs claimed the VIP."""
    ordered = sorted(events, key=lambda e: e.at)
    questions = [e.at for e in ordered if e.question]
    found: list[tuple[float, float, tuple[str, ...]]] = []
    index = 0
    claims = [e for e in ordered if not e.question]
    for start, end in itertools.pairwise(questions):
        macs: set[str] = set()
        while index < len(claims) and claims[index].at < end:
            if claims[index].at >= start:
                macs.add(claims[index].mac)
            index += 1
        if len(macs) > 1:
            found.append((start, end, tuple(sorted(macs))))
    return found


def judge(
    addresses: list[AddressEvent],
    initial: dict[str, bool],
    arp: list[ArpEvent],
    end: float,
    fenced_backstop: bool = False,
) -> Verdict:
    """``fenced_backstop``: the address outlives the reign by design (bpf fence, TTL 1 s):
    only overlap beyond ``BACKSTOP`` counts as two holders (all is kept for the record)."""
    overlaps = holder_overlaps(addresses, initial, end)
    periods = answerer_periods(arp)
    slack = BACKSTOP if fenced_backstop else 0.0
    questions = sorted(e.at for e in arp if e.question)
    gaps = [b - a for a, b in itertools.pairwise(questions)]
    verdict = Verdict(
        two_holders_ms=round(sum(max(0.0, b - a - slack) for a, b, _ in overlaps) * 1000, 1),
        two_answerers_ms=_ms(periods),
        holder_overlaps=overlaps,
        answerer_periods=periods,
        questions=len(questions),
        claims=sum(not e.question for e in arp),
        longest_question_gap=round(max(gaps, default=0.0), 3),
    )
    return verdict


def _ms(intervals: list[tuple[float, float, tuple[str, ...]]]) -> float:
    return round(sum(end - start for start, end, _ in intervals) * 1000, 1)
