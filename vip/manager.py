"""The VIP reconcile loop: every tick compare desired (leadership deadline) with the
interface, fix drift (VIP deleted by hand -> re-add and announce; present while not
leader -> remove), and keep announcing while held. Before adding, an ARP probe: if a
live host answers for the VIP, do not claim it; log, report, and probe again next tick."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable

from vip.base import VipBackend
from vip.errors import VipError
from vip.reconcile import VipAction, plan

log = logging.getLogger("floatgate.vip")


class VipManager:
    def __init__(
        self,
        backend: VipBackend,
        vip: ipaddress.IPv4Interface,
        deadline: Callable[[], float | None],
        garp_count: int = 3,
        garp_interval: float = 0.2,
        tick: float = 0.2,
        reannounce_every: float = 10.0,
        arp_probe: float = 0.05,
        token: Callable[[], int | None] = lambda: None,
    ) -> None:
        """``token``: the fencing token of the reign the VIP is held for (logs only)."""
        self.backend = backend
        self.vip = vip
        self.deadline = deadline
        self.garp_count = garp_count
        self.garp_interval = garp_interval
        self.tick = tick
        self.reannounce_every = reannounce_every
        self.arp_probe = arp_probe  # seconds to wait for a conflicting holder; 0: no probe
        self.conflict: str | None = None  # MAC of another host answering for the VIP
        self.actions: list[VipAction] = []  # what was done, newest last (bounded)
        self._announced_at = 0.0
        self.present = False  # as of the last reconcile
        self.garps_sent = 0  # gratuitous ARPs handed to the backend
        self.token = token
        self._on_claim: list[Callable[[float], None]] = []
        self._wake = asyncio.Event()

    def on_claim(self, callback: Callable[[float], None]) -> None:
        """Called each time the VIP was added and announced, with the monotonic time its
        first gratuitous ARP went out."""
        self._on_claim.append(callback)

    def wake(self) -> None:
        """Reconcile now instead of at the next tick (leadership just changed)."""
        self._wake.set()

    async def install(self) -> None:
        """Attach the kernel fence (shut) before the first claim; raises VipError."""
        await self.backend.install()

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile()
            except VipError as exc:
                log.error("VIP %s: %s", self.vip, exc)
            except Exception:  # the loop must outlive any surprise; the kernel fences
                log.exception("VIP %s: unexpected error in the reconcile loop", self.vip)
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick)
            except TimeoutError:
                pass
            self._wake.clear()

    async def reconcile(self) -> VipAction:
        actual = await self.backend.query(self.vip)
        if actual.fenced is False:  # removed by hand, or the interface was re-created
            log.error("VIP %s: the kernel fence is gone from the interface: attaching it "
                      "again (shut until the next write)", self.vip)  # fmt: skip
            await self.backend.install()
        short = self.backend.sub_second
        action = plan(self.deadline(), time.monotonic(), actual, short)
        if action.step == "add" and self.arp_probe > 0:
            holder = await self.backend.probe(self.vip, self.arp_probe)
            if holder is not None:
                return self._conflict(holder)
            self.conflict = None
            action = plan(self.deadline(), time.monotonic(), actual, short)  # probe took time
        if action.step in ("add", "refresh"):
            # The kernel lifetime comes from the absolute deadline as it is at the write
            # (the backend computes it right before the netlink request), never from the
            # plan: a stall in between cannot arm the VIP past the deadline.
            deadline = self.deadline()
            armed = await self.backend.add(self.vip, deadline) if deadline is not None else 0.0
            if armed <= 0:
                action = VipAction("nothing", 0, (
                    "leadership ended (or too little was left) by the time of the kernel "
                    "write: not arming the VIP"))  # fmt: skip
        elif action.step == "remove":
            await self.backend.remove(self.vip)
        self.present = action.step in ("add", "refresh") or (
            actual.present and action.step == "nothing"
        )
        if action.step == "add" or (
            action.step != "remove" and actual.present
            and time.monotonic() - self._announced_at > self.reannounce_every
        ):  # fmt: skip
            self._announced_at = time.monotonic()
            count = self.garp_count if action.step == "add" else 1
            await self.backend.announce(self.vip, count, self.garp_interval, self._leading)
            self.garps_sent += count
        if action.step in ("add", "remove"):
            token = self.token()
            log.info("VIP %s: %s [fencing token %s]", self.vip, action.reason, token,
                     extra={"event": "vip", "action": action.step, "fencing_token": token,
                            "reason": action.reason})  # fmt: skip
        if action.step == "add":
            for callback in self._on_claim:
                callback(self._announced_at)
        if action.step != "nothing":
            self.actions = [*self.actions[-99:], action]
        return action

    def _leading(self) -> bool:
        """Announce only while still leader (checked right before each frame)."""
        deadline = self.deadline()
        return deadline is not None and time.monotonic() < deadline

    def _conflict(self, holder: bytes) -> VipAction:
        mac = holder.hex(":")
        action = VipAction("nothing", 0, (
            f"ARP probe: {self.vip.ip} is answered by {mac}; another host holds it: "
            "not claiming (find that host, or fix the address plan)"))  # fmt: skip
        if mac != self.conflict:
            log.error("VIP %s: %s", self.vip, action.reason)
        self.conflict = mac
        self.present = False
        self.actions = [*self.actions[-99:], action]
        return action

    async def release(self) -> None:
        """Remove the VIP now (handover: before resigning the lease)."""
        await self.backend.remove(self.vip)
        self.present = False
        token = self.token()
        log.info("VIP %s: removed for a planned handover [fencing token %s]", self.vip, token,
                 extra={"event": "vip", "action": "remove", "fencing_token": token,
                        "reason": "planned handover"})  # fmt: skip
