"""The VIP backend protocol: a handful of operations on one interface."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class VipState:
    present: bool
    valid_lft: int | None = None  # seconds left, None when absent or forever


class VipBackend(Protocol):
    async def query(self, vip: ipaddress.IPv4Interface) -> VipState: ...
    async def add(self, vip: ipaddress.IPv4Interface, lifetime: int) -> None: ...
    async def remove(self, vip: ipaddress.IPv4Interface) -> None: ...
    async def announce(self, vip: ipaddress.IPv4Interface, count: int, interval: float) -> None: ...
    async def probe(self, vip: ipaddress.IPv4Interface, wait: float) -> bytes | None: ...
