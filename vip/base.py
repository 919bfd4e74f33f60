"""The VIP backend protocol: a handful of operations on one interface."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class VipState:
    present: bool
    valid_lft: int | None = None  # seconds left, None when absent or forever
    fenced: bool | None = None  # the kernel fence is attached (None: no fence configured)


class VipBackend(Protocol):
    sub_second: bool  # an exact kernel fence guards reigns shorter than a second

    async def install(self) -> None: ...
    async def query(self, vip: ipaddress.IPv4Interface) -> VipState: ...
    async def add(self, vip: ipaddress.IPv4Interface, deadline: float) -> float:
        """Hold ``vip`` until ``deadline`` (monotonic): the fence is computed from it
        immediately before the kernel write. Returns the seconds the fence covers; 0
        when too little was left then (nothing written)."""

    async def remove(self, vip: ipaddress.IPv4Interface) -> None: ...
    async def announce(
        self,
        vip: ipaddress.IPv4Interface,
        count: int,
        interval: float,
        still: Callable[[], bool] = lambda: True,
    ) -> None:
        """Gratuitous ARPs, each sent only if ``still()`` is true right before it."""

    async def probe(self, vip: ipaddress.IPv4Interface, wait: float) -> bytes | None: ...
