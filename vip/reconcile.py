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


def plan(
    deadline: float | None, now: float, actual: VipState, sub_second: bool = False
) -> VipAction:
    """``deadline``: until when this node may hold the VIP (its leadership deadline), or
    None if it must not. The fence never reaches past the deadline, so a node that stops
    running loses the VIP before another can win the lease. The kernel address lifetime
    counts whole seconds and is rounded down. ``sub_second``: the eBPF fence ends the
    reign at the deadline itself (vip/fence.py) and reigns are shorter than a second
    (lease_ttl 1s): the address then gets 1 s, a backstop only."""
    if deadline is None or deadline <= now:
        if actual.present:
            why = "not leader" if deadline is None else "the leadership deadline has passed"
            return VipAction("remove", 0, f"VIP present while {why}: removing")
        return VipAction("nothing", 0, "not leader, VIP absent")
    lifetime = math.floor(deadline - now)
    if lifetime < 1 and sub_second:
        lifetime = 1
        left = f"fence armed for {deadline - now:.3f}s, address lifetime 1s as a backstop"
    elif lifetime < 1:
        # Under a second left: a new lifetime would outlive the deadline, and the one
        # armed at the last refresh already ends before it. Hold; the kernel fences.
        return VipAction("nothing", 0, "under 1 s of leadership left: not re-arming")
    else:
        left = f"lifetime {lifetime}s"
    if not actual.present:
        return VipAction("add", lifetime, f"leader without the VIP: adding ({left})")
    # The kernel counts whole seconds and removes an address as soon as its count runs
    # out: re-arm the lifetime on every tick while leader (shortening it if it outlives
    # the deadline).
    return VipAction("refresh", lifetime, f"VIP held: re-armed ({left})")
