"""Run vip/ operations inside a network namespace for the lab tests:
``ip netns exec NS python -m tests.vipdriver OP ...``; prints JSON."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import sys
import time

from vip.fence import BpfFence
from vip.garp import ETH_P_ARP, parse_arp, probe
from vip.manager import VipManager
from vip.netlink import NetlinkBackend


async def main(argv: list[str]) -> object:
    op, interface = argv[0], argv[1]
    backend = NetlinkBackend(interface)
    if op == "capture":  # capture ARP frames for N seconds
        seconds = float(argv[2])
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        sock.bind((interface, 0))
        sock.settimeout(0.2)
        frames = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                parsed = parse_arp(sock.recv(2048))
            except TimeoutError:
                continue
            if parsed:
                frames.append([parsed[0], parsed[1].hex(":"), str(parsed[2]), str(parsed[3])])
        return frames
    vip = ipaddress.IPv4Interface(argv[2])
    if op == "add":  # hold for N whole seconds from now
        await backend.add(vip, time.monotonic() + int(argv[3]) + 0.5)
    elif op == "remove":
        await backend.remove(vip)
    elif op == "announce":
        await backend.announce(vip, int(argv[3]), 0.05)
    elif op == "stalled-add":  # leader for 1.6 s more; the process stalls 1 s (a GC
        # pause, SIGSTOP) between planning and the kernel write: what gets armed?
        class Stalled(NetlinkBackend):
            async def _run(self, what: str, work: object) -> object:
                if what.startswith("adding"):
                    time.sleep(1.0)  # noqa: ASYNC251 -- the whole event loop stops: a freeze
                return await super()._run(what, work)

        deadline = time.monotonic() + 1.6
        manager = VipManager(Stalled(interface), vip, lambda: deadline, arp_probe=0)
        await manager.reconcile()
        state = await backend.query(vip)
        return {"present": state.present, "valid_lft": state.valid_lft,
                "deadline_in": round(deadline - time.monotonic(), 3),
                "garps": manager.garps_sent}  # fmt: skip
    elif op == "fence-arm":  # attach the fence, open it for N s, and exit: the kernel
        fence = BpfFence(interface, vip.ip)  # alone ends it (no floatgate code runs)
        await fence.install()
        deadline = time.monotonic() + float(argv[3])
        fence.arm(deadline)
        return {"deadline": deadline, "kernel_deadline_ns": fence.deadline()}
    elif op == "release-during-a-slow-write":  # a refresh stuck in its thread, its task
        # cancelled by a release (switchover): the write must not land after the release
        class SlowWrites(NetlinkBackend):
            async def _run(self, what: str, work: object) -> object:
                if not what.startswith("adding"):
                    return await super()._run(what, work)

                def slow(ipr: object, index: int) -> object:
                    time.sleep(0.4)  # the worker thread is slow (scheduling, a GC pause)
                    return work(ipr, index)  # type: ignore[operator]

                return await super()._run(what, slow)

        slow = SlowWrites(interface, BpfFence(interface, vip.ip))
        await slow.install()
        await slow.add(vip, time.monotonic() + 30)  # held, fence open
        refresh = asyncio.ensure_future(slow.add(vip, time.monotonic() + 30))
        await asyncio.sleep(0.1)  # the refresh is in its thread now
        refresh.cancel()
        await slow.remove(vip)
        await asyncio.sleep(0.6)  # the slow write has run by now
        assert slow.fence is not None
        return {
            "present": (await backend.query(vip)).present,
            "fence_open": slow.fence.deadline() > time.monotonic_ns(),
        }
    elif op == "announce-as-leader":  # leader for N s more (no fence), the VIP added
        # and announced with M gratuitous ARPs 100 ms apart: more than the reign lasts
        deadline = time.monotonic() + float(argv[3])
        manager = VipManager(backend, vip, lambda: deadline, garp_count=int(argv[4]),
                             garp_interval=0.1, arp_probe=0)  # fmt: skip
        await manager.reconcile()
        return {"after_deadline": round(time.monotonic() - deadline, 3)}
    elif op == "fence-announce":  # a fresh (shut) fence, then gratuitous ARPs: dropped?
        fenced = NetlinkBackend(interface, BpfFence(interface, vip.ip))
        await fenced.install()
        await fenced.announce(vip, int(argv[3]), 0.05)
        return "sent"
    elif op == "watch-arp":  # every 20 ms for N s: does anyone answer for the VIP?
        mac = await backend.mac()
        end = time.monotonic() + float(argv[3])
        answers = []
        while time.monotonic() < end:
            asked = time.monotonic()
            holder = await asyncio.to_thread(probe, interface, mac, vip.ip, 0.02)
            answers.append([round(asked, 4), holder.hex(":") if holder else None])
        return answers
    elif op == "connect":  # TCP to the VIP: "refused" (a host answered), "timeout", ...
        with socket.socket() as sock:
            sock.settimeout(float(argv[3]))
            try:
                sock.connect((str(vip.ip), 9))
            except ConnectionRefusedError:
                return "refused"
            except TimeoutError:
                return "timeout"
            return "connected"
    elif op == "mac":
        return (await backend.mac()).hex(":")
    elif op == "probe":  # the MAC of a host answering for the VIP, or null
        holder = await backend.probe(vip, float(argv[3]))
        return holder.hex(":") if holder else None
    elif op == "manage":  # leader for N seconds (deadline always 1.9 s ahead), then not
        seconds = float(argv[3])
        leader_until = time.monotonic() + seconds
        manager = VipManager(backend, vip, lambda: (time.monotonic() + 1.9)
                             if time.monotonic() < leader_until else None, tick=0.1)  # fmt: skip
        end = time.monotonic() + seconds + 1.0
        while time.monotonic() < end:
            await manager.reconcile()
            await asyncio.sleep(0.1)
        return [a.step if a.step != "nothing" else a.reason for a in manager.actions]
    if op == "manage-fenced":  # leader for N seconds with the eBPF fence, then not
        seconds = float(argv[3])
        leader_until = time.monotonic() + seconds
        fenced = NetlinkBackend(interface, BpfFence(interface, vip.ip))
        manager = VipManager(fenced, vip, lambda: (time.monotonic() + 1.9)
                             if time.monotonic() < leader_until else None, tick=0.1)  # fmt: skip
        await manager.install()
        end = time.monotonic() + seconds + 1.0
        while time.monotonic() < end:
            await manager.reconcile()
            await asyncio.sleep(0.1)
        return [a.step if a.step != "nothing" else a.reason for a in manager.actions]
    if op == "manage-keepalive":  # deadline = last keepalive + TTL 2 - margin 0.5,
        seconds = float(argv[3])  # keepalives every TTL/3, for N seconds
        start = time.monotonic()

        def deadline() -> float | None:  # leader through the whole loop below
            now = time.monotonic()
            last_sent = start + ((now - start) // (2 / 3)) * (2 / 3)
            return last_sent + 1.5

        manager = VipManager(backend, vip, deadline, tick=0.1)
        gaps = 0
        end = start + seconds
        while time.monotonic() < end:
            await manager.reconcile()
            if not (await backend.query(vip)).present:
                gaps += 1
            await asyncio.sleep(0.05)
        return {
            "steps": sorted({a.step for a in manager.actions}),
            "adds": sum(a.step == "add" for a in manager.actions),
            "gaps": gaps,
        }
    state = await backend.query(vip)
    return {"present": state.present, "valid_lft": state.valid_lft}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
