"""Leadership as a deadline, on the monotonic clock (docs/architecture.md: invariants).

A node is leader only until ``last keepalive sent + TTL - margin``. The time recorded is
when the request was *sent*, not when the answer came: etcd may have started the TTL
any time after the send, never before. A failed or unanswered keepalive records
nothing, so the deadline only ever moves forward on success.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaseClock:
    ttl: float
    margin: float
    last_sent: float | None = None  # send time of the last *successful* grant/keepalive

    def renewed(self, sent_at: float) -> LeaseClock:
        """After a successful grant or keepalive that was sent at ``sent_at``."""
        if self.last_sent is not None and sent_at <= self.last_sent:
            return self
        return LeaseClock(self.ttl, self.margin, sent_at)

    @property
    def deadline(self) -> float | None:
        if self.last_sent is None:
            return None
        return self.last_sent + self.ttl - self.margin

    def valid(self, now: float) -> bool:
        deadline = self.deadline
        return deadline is not None and now < deadline

    def remaining(self, now: float) -> float:
        deadline = self.deadline
        return max(0.0, deadline - now) if deadline is not None else 0.0


def default_margin(ttl: float) -> float:
    """Room for clock drift and scheduling: a quarter of the TTL, at least 250 ms."""
    return max(0.25, ttl / 4)
