"""VIP on a Linux interface over netlink (pyroute2), no subprocess.

The address is added with ``valid_lft``/``preferred_lft``: the kernel removes it when
the lifetime runs out, so a crashed or frozen holder loses the VIP by itself. ``add``
on an existing address refreshes its lifetime (netlink "replace", as ``ip addr
replace``). With a ``BpfFence`` (vip.fence: bpf) the fence is armed to the absolute
deadline first and ends the reign to the nanosecond; the lifetime is then a backstop
(should the fence ever be removed by hand), and with ``sub_second`` (lease_ttl 1s) it is
1 s when less than a second is left.

Netlink rather than the ``ip`` command: a node process has gRPC threads (etcd), and
forking next to them crashed the odd child (measured: 2 of 300 ``ip`` runs under
uvloop). pyroute2's sync API runs in a worker thread (uvloop has no netlink sockets).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import math
import threading
import time
from collections.abc import Callable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vip.base import VipState
from vip.errors import VipError
from vip.fence import BpfFence
from vip.garp import garp_frame, probe, send_frames

FOREVER = 0xFFFFFFFF


WRITE_SLACK = 0.005  # s: a netlink write takes ~0.1 ms; a stall is longer than this


def lifetime_after_write(deadline: float, now: float, lifetime: int) -> int | None:
    """After writing ``lifetime`` whole seconds (the kernel took it at ``now`` at the
    latest): None if the address still ends by ``deadline`` (within WRITE_SLACK, the
    time a write takes); else the lifetime to write again (``floor(deadline - now)``),
    0 meaning delete it now."""
    if now + lifetime <= deadline + WRITE_SLACK:
        return None
    return max(0, math.floor(deadline - now))


class NetlinkBackend:
    def __init__(
        self, interface: str, fence: BpfFence | None = None, sub_second: bool = False
    ) -> None:
        self.interface = interface
        self.fence = fence
        self.sub_second = fence is not None and sub_second  # reigns under a second
        self._sending: asyncio.Future[None] | None = None  # frames on their way out
        # A write whose task was cancelled still runs in its thread: a release bumps the
        # generation (under the lock every write holds), so a write planned before the
        # release can never arm the fence or add the address after it.
        self._lock = threading.Lock()
        self._generation = 0
        self._adding: asyncio.Future[object] | None = None

    async def install(self) -> None:
        """Before the first claim: attach the fence, shut (raises VipError)."""
        if self.fence is not None:
            await self.fence.install()

    def _index(self, ipr: IPRoute) -> int:
        found = ipr.link_lookup(ifname=self.interface)
        if not found:
            raise VipError(f"interface {self.interface} does not exist")
        return int(found[0])

    async def _run(self, what: str, work: object) -> object:
        def call() -> object:
            # pyroute2 drives its socket with an asyncio loop; uvloop (the daemon's
            # policy) has no netlink support, so this thread gets a plain one.
            loop = asyncio.SelectorEventLoop()
            try:
                with IPRoute(use_event_loop=loop) as ipr:
                    return work(ipr, self._index(ipr))  # type: ignore[operator]
            finally:
                loop.close()

        try:
            return await asyncio.to_thread(call)
        except NetlinkError as exc:
            detail = exc.args[1] if len(exc.args) > 1 else exc
            raise VipError(f"{what} on {self.interface}: {detail}") from exc
        except OSError as exc:
            raise VipError(f"{what} on {self.interface}: {exc}") from exc

    async def query(self, vip: ipaddress.IPv4Interface) -> VipState:
        fence = self.fence

        def find(ipr: IPRoute, index: int) -> VipState:
            fenced = fence.attached(ipr, index) if fence is not None else None
            for info in ipr.get_addr(index=index, family=2):
                if (
                    info.get("IFA_ADDRESS") == str(vip.ip)
                    and info["prefixlen"] == vip.network.prefixlen
                ):
                    lifetime = (info.get("IFA_CACHEINFO") or {}).get("ifa_valid", FOREVER)
                    left = None if lifetime >= FOREVER else int(lifetime)
                    return VipState(True, left, fenced)
            return VipState(False, None, fenced)

        state = await self._run("reading addresses", find)
        assert isinstance(state, VipState)
        return state

    async def links_with(self, ip: ipaddress.IPv4Address) -> list[str]:
        """The interfaces of this namespace that have ``ip``, with any prefix length."""

        def find(ipr: IPRoute, index: int) -> list[str]:
            found = {int(a["index"]) for a in ipr.get_addr(family=2)
                     if a.get("IFA_ADDRESS") == str(ip)}  # fmt: skip
            names = {int(link["index"]): str(link.get("IFLA_IFNAME")) for link in ipr.get_links()}
            return sorted(names.get(i, str(i)) for i in found)

        links = await self._run(f"looking for {ip}", find)
        assert isinstance(links, list)
        return links

    async def add(self, vip: ipaddress.IPv4Interface, deadline: float) -> float:
        """The lifetime is computed in the worker thread, right before the netlink
        request goes out: a stall of the event loop between the plan and the write (a
        GC pause, SIGSTOP) cannot arm the address past the leadership deadline. With the
        fence, the fence gets the absolute deadline first (a stall cannot move it)."""
        fence, sub_second, generation = self.fence, self.sub_second, self._generation

        def write(ipr: IPRoute, index: int) -> float:
            with self._lock:
                if self._generation != generation:
                    return 0.0  # released since this write was planned
                covered = fence.arm(deadline) if fence is not None else None
                if covered is not None and covered <= 0:
                    return 0.0
                left = deadline - time.monotonic()  # again: a stall may have passed D
                lifetime = math.floor(left)
                if left <= 0:
                    return 0.0
                if lifetime < 1 and sub_second:
                    lifetime = 1  # the fence ends the reign; the address is a backstop
                elif lifetime < 1:
                    return 0.0
                cache = {"ifa_valid": lifetime, "ifa_preferred": lifetime}
                ipr.addr("replace", index=index, address=str(vip.ip),
                         prefixlen=vip.network.prefixlen, IFA_CACHEINFO=cache)  # fmt: skip
                if fence is None:
                    # The kernel counts the lifetime from when it took the request: a
                    # stall between the floor above and the send moved the end past D.
                    fix = lifetime_after_write(deadline, time.monotonic(), lifetime)
                    if fix == 0:
                        ipr.addr("del", index=index, address=str(vip.ip),
                                 prefixlen=vip.network.prefixlen)  # fmt: skip
                        return 0.0
                    if fix is not None:
                        cache = {"ifa_valid": fix, "ifa_preferred": fix}
                        ipr.addr("replace", index=index, address=str(vip.ip),
                                 prefixlen=vip.network.prefixlen, IFA_CACHEINFO=cache)  # fmt: skip
                        lifetime = fix
                return covered if covered is not None else float(lifetime)

        self._adding = asyncio.ensure_future(self._run(f"adding {vip}", write))
        armed = await asyncio.shield(self._adding)
        assert isinstance(armed, float)
        return armed

    def _fence_shut(self) -> bool:
        return self.fence is not None and self.fence.deadline() <= time.monotonic_ns()

    async def remove(self, vip: ipaddress.IPv4Interface) -> None:
        fence = self.fence

        def shut() -> None:
            with self._lock:  # after this, no write planned before it changes anything
                self._generation += 1
                if fence is not None:
                    fence.disarm()  # first: from here on the kernel drops the VIP's frames

        problem: BaseException | None = None
        try:
            await asyncio.to_thread(shut)
        except (VipError, OSError) as exc:
            problem = exc  # the address goes all the same; then this is reported
        # A write or a gratuitous ARP still running in its thread (their tasks may have
        # been cancelled) finishes first: the address must go after them, never before.
        pending = [f for f in (self._adding, self._sending) if f is not None and not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        await self._remove(vip)
        if problem is not None:
            raise VipError(f"shutting the VIP fence on {self.interface}: {problem}") from problem

    async def _remove(self, vip: ipaddress.IPv4Interface) -> None:
        def delete(ipr: IPRoute, index: int) -> None:
            try:
                ipr.addr("del", index=index, address=str(vip.ip),
                         prefixlen=vip.network.prefixlen)  # fmt: skip
            except NetlinkError as exc:
                if exc.code != errno.EADDRNOTAVAIL:
                    raise  # absent already is fine; anything else is not

        await self._run(f"removing {vip}", delete)

    async def mac(self) -> bytes:
        def read(ipr: IPRoute, index: int) -> bytes:
            text = ipr.get_links(index)[0].get("IFLA_ADDRESS")
            return bytes(int(part, 16) for part in str(text).split(":"))

        mac = await self._run("reading the MAC address", read)
        assert isinstance(mac, bytes)
        return mac

    async def probe(self, vip: ipaddress.IPv4Interface, wait: float) -> bytes | None:
        """Duplicate address detection: the MAC of a live holder of the VIP, or None."""
        mac = await self.mac()
        try:
            return await asyncio.to_thread(probe, self.interface, mac, vip.ip, wait)
        except OSError as exc:
            raise VipError(f"ARP probe on {self.interface}: {exc}") from exc

    async def announce(
        self,
        vip: ipaddress.IPv4Interface,
        count: int,
        interval: float,
        still: Callable[[], bool] = lambda: True,
    ) -> None:
        mac = await self.mac()
        frames = [garp_frame(mac, vip.ip, "request"), garp_frame(mac, vip.ip, "reply")]
        for index in range(count):
            if not still():
                return
            self._sending = asyncio.ensure_future(
                asyncio.to_thread(send_frames, self.interface, frames, still)
            )
            try:
                await asyncio.shield(self._sending)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS and self._fence_shut():
                    return  # the fence dropped it: leadership ended, as it should
                raise VipError(f"sending gratuitous ARP on {self.interface}: {exc}") from exc
            if index + 1 < count:
                await asyncio.sleep(interval)
