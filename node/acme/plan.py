"""When to order a certificate, and how long to wait after a failure (pure).

Each decision carries its reason as a sentence (status page, logs). Failures back off
exponentially with jitter (first retry after about a minute, at most half a day apart)
and honour a CA's Retry-After, so an unreachable or rate-limiting CA never sees a
retry storm; an operator's explicit renewal request is the one thing that goes ahead
of the backoff.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

from node.config.model import AcmeSpec

FIRST_RETRY = 60.0
LONGEST_RETRY = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Served:
    """The certificate a node serves for one ACME entry."""

    not_after: float  # epoch seconds
    domains: frozenset[str]
    key_type: str
    placeholder: bool  # the self-signed stand-in (nothing issued yet)
    not_before: float = 0.0  # epoch seconds; 0: unknown (no cap on renew_before)


@dataclass(frozen=True, slots=True)
class Attempts:
    failures: int = 0  # consecutive
    retry_at: float = 0.0  # epoch seconds; 0: no backoff in force
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    order: bool
    at: float  # order now (order) or look again then (epoch seconds)
    reason: str


def decide(
    spec: AcmeSpec, served: Served | None, attempts: Attempts, now: float, requested: bool
) -> Decision:
    """Order now, or when to look again, and why."""
    if requested:
        return Decision(True, now, "renewal requested by an operator")
    if attempts.retry_at > now:
        why = f"backing off after {attempts.failures} failed attempt(s) ({attempts.last_error})"
        return Decision(False, attempts.retry_at, f"{why}; next attempt {_when(attempts.retry_at)}")
    if served is None or served.placeholder:
        return Decision(True, now, "no certificate issued yet")
    wanted = frozenset(spec.domains)
    if wanted != served.domains:
        added, dropped = sorted(wanted - served.domains), sorted(served.domains - wanted)
        change = ", ".join([*(f"+{d}" for d in added), *(f"-{d}" for d in dropped)])
        return Decision(True, now, f"the domains changed ({change})")
    if served.key_type != spec.key_type:
        return Decision(True, now, f"key_type changed ({served.key_type} -> {spec.key_type})")
    ahead, capped = spec.renew_before, ""
    lifetime = served.not_after - served.not_before
    if served.not_before and ahead > lifetime / 2:  # else each new one is due at once
        ahead = lifetime / 2
        capped = f" (half of its {lifetime / 86400:.0f}-day lifetime: renew_before is longer)"
    due = served.not_after - ahead
    if now >= due:
        return Decision(True, now, f"expires {_when(served.not_after)}, within renew_before"
                                   f"{capped}")  # fmt: skip
    return Decision(False, due, f"valid until {_when(served.not_after)}; renewal due "
                                f"{_when(due)}{capped}")  # fmt: skip


def failed(
    attempts: Attempts, error: str, now: float, rng: random.Random, retry_after: float | None
) -> Attempts:
    """The backoff after one more failure: 60 s x 2^(n-1), capped at 12 h, of which a
    random half to whole is waited (nodes of many clusters do not retry in step), and
    never sooner than the CA's Retry-After."""
    failures = attempts.failures + 1
    ceiling = min(LONGEST_RETRY, FIRST_RETRY * 2 ** min(failures - 1, 20))
    wait = ceiling * rng.uniform(0.5, 1.0)
    if retry_after is not None:
        wait = max(wait, min(retry_after, 7 * 86400.0))
    return Attempts(failures, now + wait, error)


def _when(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"
