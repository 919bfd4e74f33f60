"""What can go wrong when ordering a certificate, by kind (the metrics' ``reason``)."""

from __future__ import annotations

from typing import Literal

FailureKind = Literal[
    "unreachable",  # the directory cannot be reached (down, DNS, TLS)
    "rate_limited",  # the CA said rateLimited
    "challenge_failed",  # the CA could not validate (DNS elsewhere, port 80 closed)
    "refused",  # any other error the CA answered (bad account, bad CSR, ...)
    "timeout",  # the order did not become valid in time
    "incomplete",  # what came back cannot serve (no chain, wrong names)
    "publish",  # issued, but storing the result failed (etcd, lost leadership)
]


class AcmeError(Exception):
    """An order that failed; ``retry_after`` (seconds) when the CA asked for a pause."""

    def __init__(self, kind: FailureKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.retry_after = retry_after


class LeadershipLost(Exception):
    """The reign that ordered ended before the result was stored: nothing was stored."""
