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


MACS = {A: "n1", B: "n2"}


def _period(old_claims: list[float], new_claims: list[float]) -> list[ArpEvent]:
    """Questions every 50 ms (one at 1.0, the next at 1.05); claims by n1 (A) and n2 (B)."""
    return [*_questions(0.0, 2.0), *(ArpEvent(t, A, False) for t in old_claims),
            *(ArpEvent(t, B, False) for t in new_claims)]  # fmt: skip


def test_a_handover_within_one_question_period_is_not_two_answerers() -> None:
    # the old holder answers the question, drops the address, then the new one claims
    addresses = [AddressEvent(1.005, "n1", False), AddressEvent(1.022, "n2", True)]
    arp = _period([1.0001], [1.035, 1.04])
    verdict = judge(addresses, {"n1": True, "n2": False}, arp, 2.0, macs=MACS)
    assert verdict.safe and verdict.two_answerers_ms == 0
    assert verdict.answerer_periods == []
    assert verdict.handovers == [(1.0, 1.05, (A, B))]
    # without knowing which MAC is which node, the same period counts whole
    assert judge(addresses, {"n1": True, "n2": False}, arp, 2.0).two_answerers_ms == 50.0


def test_answers_from_a_holder_that_kept_the_address_are_two_answerers() -> None:
    # n1 still has the VIP when n2 claims it: both would answer the next question
    addresses = [AddressEvent(1.022, "n2", True), AddressEvent(1.06, "n1", False)]
    arp = _period([1.0001], [1.035])
    verdict = judge(addresses, {"n1": True, "n2": False}, arp, 2.0, macs=MACS)
    assert verdict.two_answerers_ms == 50.0 and verdict.handovers == []


def test_the_old_holder_answering_after_the_new_claim_is_two_answerers() -> None:
    # interleaved: A, B, A in one period, although A's address events say it is gone
    addresses = [AddressEvent(1.005, "n1", False), AddressEvent(1.022, "n2", True)]
    arp = _period([1.0001, 1.045], [1.035])
    verdict = judge(addresses, {"n1": True, "n2": False}, arp, 2.0, macs=MACS)
    assert verdict.two_answerers_ms == 50.0 and verdict.handovers == []


def test_a_claim_from_a_node_without_the_address_is_never_a_clean_handover() -> None:
    # n2 claims before its address is there (an announcement without the VIP)
    addresses = [AddressEvent(1.005, "n1", False), AddressEvent(1.04, "n2", True)]
    arp = _period([1.0001], [1.035, 1.045])
    verdict = judge(addresses, {"n1": True, "n2": False}, arp, 2.0, macs=MACS)
    assert verdict.two_answerers_ms == 50.0


def test_a_handover_through_three_nodes_is_checked_pair_by_pair() -> None:
    c = "dd:dd:dd:dd:dd:dd"
    macs = {**MACS, c: "n3"}
    addresses = [AddressEvent(1.005, "n1", False), AddressEvent(1.01, "n2", True),
                 AddressEvent(1.02, "n2", False), AddressEvent(1.03, "n3", True)]  # fmt: skip
    arp = [*_questions(0.0, 2.0), ArpEvent(1.001, A, False), ArpEvent(1.012, B, False),
           ArpEvent(1.035, c, False)]  # fmt: skip
    initial = {"n1": True, "n2": False, "n3": False}
    assert judge(addresses, initial, arp, 2.0, macs=macs).two_answerers_ms == 0
    # n2 keeps the address while n3 claims: counted
    kept = [e for e in addresses if not (e.node == "n2" and not e.present)]
    assert judge(kept, initial, arp, 2.0, macs=macs).two_answerers_ms == 50.0


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
