"""The kernel fence: a tc eBPF program that passes the VIP's traffic and ARP only before
an absolute deadline (vip/bpfprog.py), with the deadline in a one-value array map.

``install`` loads a fresh map (deadline 0: fenced) and both programs and attaches them
with ``tc filter replace`` (clsact, ingress and egress) at a fixed preference, so a
restarted node replaces its predecessor's fence at once and atomically (the preference
is 49152 + the VIP modulo 4096, the name ``floatgate-fence-<VIP>``: two nodes' fences for
different VIPs on one interface stay apart). ``attached`` tells whether it is still
there (someone may delete the clsact qdisc by hand). ``arm`` writes
the absolute leadership deadline (CLOCK_MONOTONIC ns); ``disarm`` writes 0. The fence
stays attached when floatgate stops or dies: then it keeps dropping the VIP's traffic
from the last deadline on, which is the point. ``tc filter del dev IF ingress pref N``
(and ``egress``; N from ``tc filter show dev IF ingress``) removes it by hand.

The bpf(2) system call through ctypes (no library for this in the stdlib or pyroute2);
tc over netlink with pyroute2, in a worker thread as the rest of vip/netlink.py.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import ipaddress
import os
import struct
import time

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vip.bpfprog import Direction, fence_program
from vip.errors import VipError

SYS_BPF = 321  # x86_64
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_PROG_LOAD = 5
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_SCHED_CLS = 3
PREFERENCE_BASE = 49152
PARENTS: dict[Direction, str] = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
LOG_SIZE = 1 << 16


class BpfFence:
    def __init__(self, interface: str, vip: ipaddress.IPv4Address) -> None:
        self.interface = interface
        self.vip = vip
        self.preference = PREFERENCE_BASE + int(vip) % 4096
        self.name = f"floatgate-fence-{vip}"
        self._map_fd: int | None = None
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    # -- bpf(2) ---------------------------------------------------------------------------
    def _bpf(self, command: int, attr: ctypes.Array[ctypes.c_char]) -> int:
        result = int(self._libc.syscall(SYS_BPF, command, attr, len(attr)))
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result

    def _create_map(self) -> int:
        fields = struct.pack("<IIIII", BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0)  # u32 key, u64 value
        return self._bpf(BPF_MAP_CREATE, ctypes.create_string_buffer(fields, 72))

    def _element(self, command: int, value: ctypes.c_uint64) -> None:
        """Look up or update the map's one element (key 0) through ``value``."""
        if self._map_fd is None:
            raise VipError("the VIP fence is not installed")
        key = ctypes.c_uint32(0)
        pointers = (ctypes.addressof(key), ctypes.addressof(value))
        fields = struct.pack("<IIQQQ", self._map_fd, 0, *pointers, 0)
        self._bpf(command, ctypes.create_string_buffer(fields, 32))

    def _load(self, direction: Direction, map_fd: int) -> int:
        code = fence_program(self.vip, direction, map_fd)
        insns = ctypes.create_string_buffer(code, len(code))
        license_ = ctypes.create_string_buffer(b"Apache-2.0")
        log = ctypes.create_string_buffer(LOG_SIZE)
        pointers = (ctypes.addressof(insns), ctypes.addressof(license_))
        fields = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_SCHED_CLS, len(code) // 8, *pointers,
                             1, LOG_SIZE, ctypes.addressof(log))  # fmt: skip
        try:
            return self._bpf(BPF_PROG_LOAD, ctypes.create_string_buffer(fields, 128))
        except OSError as exc:
            detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
            raise VipError(
                f"loading the VIP fence ({direction}) failed: {exc.strerror}"
                + (f" ({'; '.join(detail)})" if detail else "")
                + ": floatgate needs root (CAP_BPF and CAP_NET_ADMIN) and a kernel with "
                "eBPF and clsact; or set vip.fence: lifetime (needs lease_ttl >= 2s)"
            ) from exc

    def _write(self, value_ns: int) -> None:
        try:
            self._element(BPF_MAP_UPDATE_ELEM, ctypes.c_uint64(value_ns))
        except OSError as exc:
            raise VipError(f"writing the VIP fence deadline: {exc.strerror}") from exc

    # -- the fence ------------------------------------------------------------------------
    def arm(self, deadline: float) -> float:
        """Pass the VIP's traffic until ``deadline`` (monotonic seconds); returns the
        seconds left at the write (0.0: the deadline had passed, the fence is shut)."""
        deadline_ns = int(deadline * 1e9)
        self._write(deadline_ns)
        return max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9)

    def disarm(self) -> None:
        self._write(0)

    def deadline(self) -> int:
        """The deadline in the kernel (monotonic ns; 0: shut)."""
        if self._map_fd is None:
            return 0
        value = ctypes.c_uint64(0)
        self._element(BPF_MAP_LOOKUP_ELEM, value)
        return int(value.value)

    async def install(self) -> None:
        """A fresh map (shut) and both programs, attached in place of any earlier fence."""
        try:
            map_fd = self._create_map()
        except OSError as exc:
            raise VipError(
                f"creating the VIP fence map failed: {exc.strerror}: floatgate needs root "
                "(CAP_BPF) and a kernel with eBPF; or set vip.fence: lifetime"
            ) from exc
        programs: list[int] = []
        try:
            for direction in ("ingress", "egress"):
                programs.append(self._load(direction, map_fd))
            await asyncio.to_thread(self._attach, programs[0], programs[1])
        except BaseException:
            os.close(map_fd)
            raise
        finally:
            for fd in programs:
                os.close(fd)  # the attached filters hold the programs (and the map)
        if self._map_fd is not None:
            os.close(self._map_fd)
        self._map_fd = map_fd

    def _attach(self, ingress: int, egress: int) -> None:
        loop = asyncio.SelectorEventLoop()
        try:
            with IPRoute(use_event_loop=loop) as ipr:
                found = ipr.link_lookup(ifname=self.interface)
                if not found:
                    raise VipError(f"interface {self.interface} does not exist")
                index = int(found[0])
                try:
                    ipr.tc("add", "clsact", index)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise
                for direction, fd in (("ingress", ingress), ("egress", egress)):
                    ipr.tc("replace-filter", "bpf", index, ":1", fd=fd, name=self.name,
                           parent=PARENTS[direction], classid=1, direct_action=True,  # type: ignore[index]
                           prio=self.preference, protocol=0x0003)  # fmt: skip
        except NetlinkError as exc:
            detail = exc.args[1] if len(exc.args) > 1 else exc
            raise VipError(f"attaching the VIP fence on {self.interface}: {detail}") from exc
        finally:
            loop.close()

    def attached(self, ipr: IPRoute, index: int) -> bool:
        """Both classifiers are on the interface (call from a worker thread)."""
        for parent in (0xFFFFFFF2, 0xFFFFFFF3):
            found = False
            for message in ipr.get_filters(index=index, parent=parent):
                options = message.get_attr("TCA_OPTIONS")
                name = options.get_attr("TCA_BPF_NAME") if options is not None else None
                found = found or (name == self.name and message["info"] >> 16 == self.preference)
            if not found:
                return False
        return True

    def close(self) -> None:
        """Forget the map here; the attached fence keeps its last deadline."""
        if self._map_fd is not None:
            os.close(self._map_fd)
            self._map_fd = None
