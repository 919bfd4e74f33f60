"""GARP frames and the VIP reconcile plan (pure)."""

from __future__ import annotations

import ipaddress

from vip.base import VipState
from vip.garp import garp_frame, parse_arp, parse_mac
from vip.reconcile import plan

VIP = ipaddress.IPv4Address("10.0.0.50")
MAC = parse_mac("02:00:00:aa:bb:cc")


def test_garp_request_and_reply_frames() -> None:
    request = garp_frame(MAC, VIP, "request")
    assert request[:6] == b"\xff" * 6 and request[6:12] == MAC and request[12:14] == b"\x08\x06"
    assert len(request) == 42
    assert parse_arp(request) == (1, MAC, VIP, VIP)  # sender IP == target IP
    assert request[32:38] == b"\x00" * 6
    reply = garp_frame(MAC, VIP, "reply")
    assert parse_arp(reply) == (2, MAC, VIP, VIP)
    assert reply[32:38] == b"\xff" * 6


def test_plan_never_lets_the_kernel_lifetime_outlive_leadership() -> None:
    absent, held = VipState(False), VipState(True, 1)
    assert plan(None, 0.0, absent).step == "nothing"
    assert plan(None, 0.0, held).step == "remove"
    add = plan(101.9, 100.0, absent)
    assert (add.step, add.lifetime) == ("add", 1)  # 1.9 s left -> 1 s, never 2
    assert plan(100.5, 100.0, held).step == "nothing"  # < 1 s left: hold, the kernel fences
    assert plan(100.5, 100.0, absent).step == "nothing"  # and never add a lifetime past it
    assert plan(99.9, 100.0, held).step == "remove"  # deadline passed
    assert plan(103.5, 100.0, held).step == "refresh"  # extend to 3
    assert plan(101.2, 100.0, VipState(True, None)).step == "refresh"  # "forever" is never ok
    assert plan(101.2, 100.0, VipState(True, 5)).lifetime == 1  # shortened
    assert plan(101.2, 100.0, VipState(True, 1)).step == "refresh"  # re-armed every tick
