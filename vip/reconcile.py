"""Desired vs actual, every tick (pure): what to do with the VIP and why."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from vip.base import VipState

Step = Literal["add", "refresh", "remove", "nothing"]


@dataclass(frozen=True, slots=True)
class VipAction:
    step: Step
    lifetime: int  # seconds for add/refresh
    reason: str


def plan(deadline: float | None, now: float, actual: VipState) -> VipAction:
    """``deadline``: until when this node may hold the VIP (its leadership deadline), or
    None if it must not. The kernel lifetime never reaches past the deadline (rounded
    down to whole seconds, as the kernel counts), so a node that stops running loses
    the VIP before another can win the lease."""
    if deadline is None or deadline <= now:
        if actual.present:
            why = "not leader" if deadline is None else "the leadership deadline has passed"
            return VipAction("remove", 0, f"VIP present while {why}: removing")
        return VipAction("nothing", 0, "not leader, VIP absent")
    lifetime = math.floor(deadline - now)
    if lifetime < 1:
        # Under a second left: a new lifetime would outlive the deadline, and the one
        # armed at the last refresh already ends before it. Hold; the kernel fences.
        return VipAction("nothing", 0, "under 1 s of leadership left: not re-arming")
    if not actual.present:
        return VipAction("add", lifetime, f"leader without the VIP: adding (lifetime {lifetime}s)")
    # The kernel counts whole seconds and removes an address as soon as its count runs
    # out: re-arm the lifetime on every tick while leader (shortening it if it outlives
    # the deadline).
    return VipAction("refresh", lifetime, f"VIP held: lifetime re-armed to {lifetime}s")
