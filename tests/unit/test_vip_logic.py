"""GARP frames and the VIP reconcile plan (pure)."""

from __future__ import annotations

import ipaddress

from vip.base import VipState
from vip.garp import claimant, garp_frame, parse_arp, parse_mac, probe_frame, request_frame
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


def test_arp_probe_and_request_frames() -> None:
    frame = probe_frame(MAC, VIP)
    assert len(frame) == 42 and frame[:6] == b"\xff" * 6
    assert parse_arp(frame) == (1, MAC, ipaddress.IPv4Address("0.0.0.0"), VIP)
    client = ipaddress.IPv4Address("10.0.0.9")
    assert parse_arp(request_frame(MAC, client, VIP)) == (1, MAC, client, VIP)


def test_claimant_is_another_mac_speaking_for_the_vip() -> None:
    other = bytes.fromhex("020000000002")
    assert claimant(garp_frame(other, VIP, "reply"), VIP, MAC) == other
    assert claimant(garp_frame(MAC, VIP, "reply"), VIP, MAC) is None  # our own frame
    assert claimant(probe_frame(other, VIP), VIP, MAC) is None  # a prober claims nothing
    assert claimant(b"\x00" * 20, VIP, MAC) is None
