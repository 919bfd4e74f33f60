"""The safety verdict from recorded events (pure; deploy/lab/checker.py records them).

Two measures, in milliseconds, both required to be zero:

- **two holders**: time during which two nodes had the VIP on their interface at once,
  from netlink address events (RTM_NEWADDR / RTM_DELADDR) in every node namespace;
- **two answerers**: the client-visible split brain, from an ARP capture on the switch.
  A client asks "who has VIP?" every few tens of milliseconds; the time from one question
  to the next is one *period*. A period in which frames from two different MACs claimed
  the VIP (replies to the question and gratuitous ARPs alike) counts whole.

With ``vip.fence: bpf`` and ``lease_ttl: 1s`` the address is a 1 s backstop that a frozen
or killed holder keeps for up to ~1.3 s after its fence shut: its address overlap is
reported (``fenced_address_overlap``) but only the answerers measure what clients see.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


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

    @property
    def safe(self) -> bool:
        return self.two_holders_ms == 0 and self.two_answerers_ms == 0


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
    """``fenced_backstop``: the address outlives the reign by design (bpf fence, TTL 1 s);
    its overlaps are kept for the record and not counted as two holders."""
    overlaps = holder_overlaps(addresses, initial, end)
    periods = answerer_periods(arp)
    verdict = Verdict(
        two_holders_ms=0.0 if fenced_backstop else _ms(overlaps),
        two_answerers_ms=_ms(periods),
        holder_overlaps=overlaps,
        answerer_periods=periods,
        questions=sum(e.question for e in arp),
        claims=sum(not e.question for e in arp),
    )
    return verdict


def _ms(intervals: list[tuple[float, float, tuple[str, ...]]]) -> float:
    return round(sum(end - start for start, end, _ in intervals) * 1000, 1)


def fenced_address_overlap_ms(verdict: Verdict) -> float:
    return _ms(verdict.holder_overlaps)
