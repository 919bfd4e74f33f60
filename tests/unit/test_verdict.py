"""The lab checker's verdict from recorded events, and its netlink parsing (pure)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from deploy.lab.checker import RTM_DELADDR, RTM_NEWADDR, parse_address_messages
from deploy.lab.verdict import AddressEvent, ArpEvent, judge

A, B = "aa:aa:aa:aa:aa:aa", "bb:bb:bb:bb:bb:bb"
CLIENT = "cc:cc:cc:cc:cc:cc"


def _questions(start: float, end: float, every: float = 0.05) -> list[ArpEvent]:
    count = round((end - start) / every)
    return [ArpEvent(round(start + i * every, 3), CLIENT, question=True) for i in range(count)]


def test_a_clean_takeover_has_no_overlap() -> None:
    addresses = [AddressEvent(1.0, "n1", False), AddressEvent(1.5, "n2", True),
                 AddressEvent(1.6, "n2", True)]  # fmt: skip  # a refresh changes nothing
    claims = [ArpEvent(0.51, A, False), ArpEvent(0.96, A, False), ArpEvent(1.51, B, False),
              ArpEvent(2.01, B, False)]  # fmt: skip
    arp = [*_questions(0.0, 3.0), *claims]
    verdict = judge(addresses, {"n1": True, "n2": False}, arp, 3.0)
    assert verdict.safe and verdict.two_holders_ms == 0 and verdict.two_answerers_ms == 0
    assert verdict.questions == 60 and verdict.claims == 4


def test_two_holders_and_two_answerers_are_measured() -> None:
    addresses = [AddressEvent(1.0, "n2", True), AddressEvent(1.3, "n1", False)]
    claims = [ArpEvent(1.01, A, False), ArpEvent(1.02, B, False), ArpEvent(1.06, B, False),
              ArpEvent(1.07, A, False)]  # fmt: skip
    arp = [*_questions(0.0, 2.0), *claims]
    verdict = judge(addresses, {"n1": True, "n2": False}, arp, 2.0)
    assert not verdict.safe
    assert verdict.two_holders_ms == 300.0
    assert verdict.holder_overlaps == [(1.0, 1.3, ("n1", "n2"))]
    assert verdict.two_answerers_ms == 100.0  # two question periods, each with A and B
    # an overlap still open at the end counts up to the end
    assert judge([AddressEvent(1.5, "n2", True)], {"n1": True, "n2": False}, [],
                 2.0).two_holders_ms == 500.0  # fmt: skip


def test_a_fenced_backstop_address_is_recorded_not_counted() -> None:
    addresses = [AddressEvent(1.0, "n2", True), AddressEvent(1.3, "n1", False)]
    verdict = judge(addresses, {"n1": True, "n2": False}, [], 2.0, fenced_backstop=True)
    assert verdict.two_holders_ms == 0 and verdict.holder_overlaps
    # beyond what a fenced backstop address can last, an overlap is two holders again
    longer = [AddressEvent(1.0, "n2", True), AddressEvent(3.0, "n1", False)]
    assert judge(longer, {"n1": True, "n2": False}, [], 4.0,
                 fenced_backstop=True).two_holders_ms == 600.0  # fmt: skip


def test_a_long_silence_of_the_asker_is_reported() -> None:
    arp = [*_questions(0.0, 1.0), *_questions(2.5, 3.0)]
    assert judge([], {}, arp, 3.0).longest_question_gap == 1.55


def _message(kind: int, address: str) -> bytes:
    payload = struct.pack("=BBBBI", socket.AF_INET, 24, 0, 0, 2)
    attr = struct.pack("=HH", 8, 2) + ipaddress.IPv4Address(address).packed
    body = payload + attr
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_address_messages_about_the_vip_are_found() -> None:
    vip = ipaddress.IPv4Address("10.199.2.50")
    data = (_message(RTM_NEWADDR, "10.199.2.11") + _message(RTM_NEWADDR, "10.199.2.50")
            + _message(RTM_DELADDR, "10.199.2.50"))  # fmt: skip
    assert parse_address_messages(data, vip) == [True, False]
    assert parse_address_messages(data[:10], vip) == []
