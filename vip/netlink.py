"""VIP on a Linux interface with iproute2 (argv lists, never a shell).

The address is added with ``valid_lft``/``preferred_lft``: the kernel removes it when
the lifetime runs out, so a crashed or frozen holder loses the VIP by itself. ``add``
on an existing address refreshes its lifetime (``ip addr replace``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json

from vip.base import VipState
from vip.errors import VipError
from vip.garp import garp_frame, parse_mac, send_frames


class IprouteBackend:
    def __init__(self, interface: str) -> None:
        self.interface = interface

    async def _ip(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise VipError(f"ip {' '.join(args)}: {err.decode().strip() or proc.returncode}")
        return out.decode()

    async def query(self, vip: ipaddress.IPv4Interface) -> VipState:
        data = json.loads(await self._ip("-j", "-4", "addr", "show", "dev", self.interface) or "[]")
        for link in data:
            for info in link.get("addr_info", []):
                if (
                    info.get("local") == str(vip.ip)
                    and info.get("prefixlen") == vip.network.prefixlen
                ):
                    lifetime = info.get("valid_life_time")
                    forever = lifetime is None or lifetime >= 0xFFFFFFFF
                    return VipState(True, None if forever else int(lifetime))
        return VipState(False)

    async def add(self, vip: ipaddress.IPv4Interface, lifetime: int) -> None:
        if lifetime < 1:
            raise VipError("a VIP lifetime must be at least 1 s")
        await self._ip("addr", "replace", str(vip), "dev", self.interface,
                       "valid_lft", str(lifetime), "preferred_lft", str(lifetime))  # fmt: skip

    async def remove(self, vip: ipaddress.IPv4Interface) -> None:
        try:
            await self._ip("addr", "del", str(vip), "dev", self.interface)
        except VipError as exc:
            if "Cannot assign requested address" not in str(exc):
                raise  # absent already is fine; anything else is not

    async def mac(self) -> bytes:
        data = json.loads(await self._ip("-j", "link", "show", "dev", self.interface))
        return parse_mac(data[0]["address"])

    async def announce(self, vip: ipaddress.IPv4Interface, count: int, interval: float) -> None:
        mac = await self.mac()
        frames = [garp_frame(mac, vip.ip, "request"), garp_frame(mac, vip.ip, "reply")]
        for index in range(count):
            try:
                await asyncio.to_thread(send_frames, self.interface, frames)
            except OSError as exc:
                raise VipError(f"sending gratuitous ARP on {self.interface}: {exc}") from exc
            if index + 1 < count:
                await asyncio.sleep(interval)
