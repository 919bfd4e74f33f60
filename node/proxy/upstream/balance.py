"""Pure load-balancing algorithms.

A balancer picks one of the *eligible* servers (up, with a free slot), given as a
sequence of :class:`Weighted`. It keeps only its own bookkeeping (round-robin weights,
a hash ring), never server health.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from typing import Protocol


class Weighted(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> int: ...
    @property
    def active(self) -> int: ...


class Balancer(Protocol):
    def pick(self, eligible: Sequence[Weighted], key: str) -> Weighted | None: ...


class SmoothRoundRobin:
    """nginx's smooth weighted round-robin: weights 5,1,1 give a,a,b,a,c,a,a — not five a then b."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, eligible: Sequence[Weighted], key: str) -> Weighted | None:
        if not eligible:
            return None
        if len(eligible) == 1:
            return eligible[0]
        current = self._current
        total = 0
        best: Weighted | None = None
        best_weight = 0
        for candidate in eligible:
            weight = current.get(candidate.name, 0) + candidate.weight
            current[candidate.name] = weight
            total += candidate.weight
            if best is None or weight > best_weight:
                best, best_weight = candidate, weight
        assert best is not None
        current[best.name] = best_weight - total
        return best


class LeastConnections:
    """Fewest active requests relative to weight; ties rotate so equal servers share load."""

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, eligible: Sequence[Weighted], key: str) -> Weighted | None:
        if not eligible:
            return None
        self._turn += 1
        count = len(eligible)
        best: Weighted | None = None
        for offset in range(count):
            candidate = eligible[(self._turn + offset) % count]
            if best is None or candidate.active * best.weight < best.active * candidate.weight:
                best = candidate
        return best


class ConsistentHash:
    """A weighted hash ring over every configured server name (``source`` and ``uri``).

    A key maps to the first eligible server clockwise from its hash, so a server going
    down moves only its own keys, and coming back restores them.
    """

    POINTS_PER_WEIGHT = 64

    def __init__(self, servers: Sequence[Weighted]) -> None:
        ring: list[tuple[int, str]] = []
        for server in servers:
            for point in range(server.weight * self.POINTS_PER_WEIGHT):
                ring.append((_hash(f"{server.name}#{point}"), server.name))
        ring.sort()
        self._hashes = [h for h, _ in ring]
        self._names = [n for _, n in ring]

    def pick(self, eligible: Sequence[Weighted], key: str) -> Weighted | None:
        if not eligible or not self._hashes:
            return None
        by_name = {c.name: c for c in eligible}
        start = bisect.bisect(self._hashes, _hash(key))
        size = len(self._names)
        for offset in range(size):
            found = by_name.get(self._names[(start + offset) % size])
            if found is not None:
                return found
        return None


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def make_balancer(algorithm: str, servers: Sequence[Weighted]) -> Balancer:
    if algorithm == "leastconn":
        return LeastConnections()
    if algorithm in ("source", "uri"):
        return ConsistentHash(servers)
    return SmoothRoundRobin()
