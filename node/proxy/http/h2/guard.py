"""What an HTTP/2 client may cost before it is told to calm down (pure logic).

The known HTTP/2 denial-of-service patterns all send frames that are cheap for the
client and cost the server work or memory without a request served in return: streams
opened and reset at once (Rapid Reset, CVE-2023-44487), SETTINGS and PING floods (each
one owes an answer), empty DATA frames, PRIORITY frames, malformed requests. Each such
frame is a *glitch* (HAProxy's word, tune.h2.fe.glitches-threshold). A connection has a
budget of glitches that refills at a steady rate; a client that spends it gets GOAWAY
ENHANCE_YOUR_CALM and the connection closes. Ordinary browsers reset a few streams when
a page is left and ping now and then: far below the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

BURST = 1000  # glitches a connection may spend at once
REFILL = 100.0  # glitches per second given back


@dataclass(slots=True)
class GlitchBudget:
    burst: float = BURST
    refill: float = REFILL
    left: float = -1.0  # what is left of the budget (-1: the whole burst, at the start)
    at: float = 0.0  # when ``left`` was last brought up to date (monotonic)
    spent: int = 0  # glitches over the connection's life (for the log)

    def __post_init__(self) -> None:
        if self.left < 0:
            self.left = self.burst

    def spend(self, now: float, count: int = 1) -> bool:
        """Count ``count`` glitches at ``now``; False once the budget is exhausted."""
        if self.at:
            self.left = min(self.burst, self.left + (now - self.at) * self.refill)
        self.at = now
        self.left -= count
        self.spent += count
        return self.left >= 0
