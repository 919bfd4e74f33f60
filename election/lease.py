"""Leadership as a deadline, on the monotonic clock (docs/cluster.md: the fence).

A node is leader only until ``renewed_at + TTL - margin``, where ``renewed_at`` is the
older of two send times: the last successful lease keepalive (etcd keeps the key TTL
seconds after it, never less) and the last successful *beat*, a write of the leader key
under the fencing token (a standby that saw it may take the seat once this window has
passed since it saw it, without waiting for etcd to expire the lease). The time recorded
is when the request was *sent*, not when the answer came: etcd may have started the TTL,
or committed the write, any time after the send, never before. A failed or unanswered
request records nothing, so the deadline only ever moves forward on success.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class LeaseClock:
    ttl: float
    margin: float
    last_sent: float | None = None  # send time of the last *successful* grant/keepalive
    beat_sent: float | None = None  # send time of the last successful leader-key write

    def renewed(self, sent_at: float) -> LeaseClock:
        """Both renewed by requests sent at ``sent_at`` (a won campaign: grant and
        write; a failsafe extension: peers' promises stand for both)."""
        return self.kept_alive(sent_at).beaten(sent_at)

    def kept_alive(self, sent_at: float) -> LeaseClock:
        """After a successful keepalive that was sent at ``sent_at``."""
        if self.last_sent is not None and sent_at <= self.last_sent:
            return self
        return replace(self, last_sent=sent_at)

    def beaten(self, sent_at: float) -> LeaseClock:
        """After a successful leader-key write (a beat) that was sent at ``sent_at``."""
        if self.beat_sent is not None and sent_at <= self.beat_sent:
            return self
        return replace(self, beat_sent=sent_at)

    @property
    def window(self) -> float:
        """How long one renewal carries leadership: TTL - margin."""
        return self.ttl - self.margin

    @property
    def renewed_at(self) -> float | None:
        if self.last_sent is None or self.beat_sent is None:
            return None
        return min(self.last_sent, self.beat_sent)

    @property
    def deadline(self) -> float | None:
        renewed_at = self.renewed_at
        return None if renewed_at is None else renewed_at + self.window

    def valid(self, now: float) -> bool:
        deadline = self.deadline
        return deadline is not None and now < deadline

    def remaining(self, now: float) -> float:
        deadline = self.deadline
        return max(0.0, deadline - now) if deadline is not None else 0.0


def default_margin(ttl: float) -> float:
    """Room for clock drift and scheduling: a quarter of the TTL, at least 250 ms."""
    return max(0.25, ttl / 4)


def lead_ttl(asked: int, granted: int) -> tuple[float | None, str | None]:
    """The TTL a reign leads on, from the one asked for and the one etcd granted, with
    a note for the operator. etcd grants at least ceil(1.5 x its election timeout) and
    holds the key that long after the last keepalive: leading on a longer grant is
    still safe (the note says a takeover waits that long). A grant shorter than asked
    means etcd ends the key before a deadline computed from the asked TTL: refused
    (None), never led on. A missing grant (0) is taken as the one asked for."""
    if granted <= 0 or granted == asked:
        return float(asked), None
    if granted < asked:
        return None, (
            f"etcd granted a {granted} s lease for election.lease_ttl {asked} s: it would "
            "end the key before this node's deadline; not leading on it (check what sits "
            "between this node and etcd: a proxy or an etcd that caps lease TTLs)"
        )
    return float(granted), (
        f"etcd grants {granted} s leases, more than election.lease_ttl {asked} s (etcd's "
        "minimum is ceil(1.5 x its election timeout)): this node leads on "
        f"{granted} s and a takeover waits that long; set election.lease_ttl: "
        f"{granted}s, or lower etcd's --election-timeout"
    )
