"""GARP frames, the VIP reconcile plan and the fence program's decisions (pure)."""

from __future__ import annotations

import ipaddress
import struct

from vip import bpfprog
from vip.base import VipState
from vip.garp import claimant, garp_frame, parse_arp, parse_mac, probe_frame, request_frame
from vip.netlink import lifetime_after_write
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


def test_plan_with_the_bpf_fence_serves_reigns_under_a_second() -> None:
    """lease_ttl 1s: the deadline is 0.75 s ahead at best. Without the fence that armed
    nothing (floor(0.75) = 0: the VIP was never added); with it the address gets 1 s as
    a backstop and the fence ends the reign at the deadline."""
    absent, held = VipState(False), VipState(True, 1)
    assert plan(100.75, 100.0, absent).step == "nothing"
    add = plan(100.75, 100.0, absent, sub_second=True)
    assert (add.step, add.lifetime) == ("add", 1) and "fence armed for 0.750s" in add.reason
    assert plan(100.05, 100.0, held, sub_second=True).step == "refresh"
    assert plan(99.99, 100.0, held, sub_second=True).step == "remove"  # deadline passed
    assert plan(None, 100.0, held, sub_second=True).step == "remove"
    assert plan(102.5, 100.0, held, sub_second=True).lifetime == 2  # whole seconds still


def _run_fence(program: bytes, frame: bytes, deadline: int | None, now: int) -> int:
    """An interpreter for the instructions the fence uses (the kernel runs the real
    thing in tests/cluster/test_vip_lab.py): returns the tc verdict."""
    regs = [0] * 11
    pc, count = 0, len(program) // 8
    while pc < count:
        code, regs_byte, off, imm = struct.unpack_from("<BBhi", program, pc * 8)
        dst, src = regs_byte & 0x0F, regs_byte >> 4
        pc += 1
        if code == bpfprog.MOV64_REG:
            regs[dst] = regs[src]
        elif code == bpfprog.MOV64_IMM:
            regs[dst] = imm
        elif code in (bpfprog.LD_ABS_H, bpfprog.LD_ABS_W):
            size = 2 if code == bpfprog.LD_ABS_H else 4
            if imm + size > len(frame):
                return 0  # the kernel ends the program with 0 (TC_ACT_OK)
            regs[0] = int.from_bytes(frame[imm : imm + size], "big")
        elif code in (bpfprog.JMP32_JEQ_IMM, bpfprog.JMP32_JNE_IMM):
            equal = regs[dst] & 0xFFFFFFFF == imm & 0xFFFFFFFF
            pc += off if equal == (code == bpfprog.JMP32_JEQ_IMM) else 0
        elif code == bpfprog.JMP_JEQ_IMM:
            pc += off if regs[dst] == imm else 0
        elif code == bpfprog.JMP_JGE_REG:
            pc += off if regs[dst] >= regs[src] else 0
        elif code == bpfprog.JMP_JA:
            pc += off
        elif code == bpfprog.LD_IMM64:
            pc += 1  # the map: only the lookup below uses it
        elif code == bpfprog.CALL and imm == bpfprog.HELPER_MAP_LOOKUP_ELEM:
            regs[0] = 0 if deadline is None else 1  # "a pointer" to the value
        elif code == bpfprog.CALL and imm == bpfprog.HELPER_KTIME_GET_NS:
            regs[0] = now
        elif code == bpfprog.LDX_MEM_DW:
            regs[dst] = deadline or 0
        elif code in (bpfprog.ST_MEM_W, bpfprog.ADD64_IMM):
            pass  # the stack key and its pointer
        elif code == bpfprog.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("the program ran off its end")


def test_fence_program_passes_the_vip_only_before_the_deadline() -> None:
    vip, other = ipaddress.IPv4Address("10.199.2.50"), ipaddress.IPv4Address("10.199.2.11")
    mac = bytes.fromhex("020000000001")
    garp = garp_frame(mac, vip, "reply")
    reply_for_other = garp_frame(mac, other, "reply")
    header = b"\xff" * 6 + mac + b"\x08\x00"

    def ip_packet(source: ipaddress.IPv4Address, dest: ipaddress.IPv4Address) -> bytes:
        return header + bytes(12) + source.packed + dest.packed + bytes(8)

    egress = bpfprog.fence_program(vip, "egress", map_fd=7)
    ingress = bpfprog.fence_program(vip, "ingress", map_fd=7)
    ok, shot = bpfprog.TC_ACT_OK, bpfprog.TC_ACT_SHOT
    for deadline, now, verdict in ((2_000, 1_999, ok), (2_000, 2_000, shot), (0, 5, shot),
                                   (None, 5, shot)):  # fmt: skip
        assert _run_fence(egress, garp, deadline, now) == verdict
        assert _run_fence(egress, ip_packet(vip, other), deadline, now) == verdict
        assert _run_fence(ingress, ip_packet(other, vip), deadline, now) == verdict
        # everything else passes, always
        assert _run_fence(egress, reply_for_other, deadline, now) == ok
        assert _run_fence(egress, ip_packet(other, vip), deadline, now) == ok
        assert _run_fence(ingress, ip_packet(vip, other), deadline, now) == ok
        assert _run_fence(ingress, garp, deadline, now) == ok
        assert _run_fence(egress, header[:13], deadline, now) == ok  # runt: the kernel's 0
    high = ipaddress.IPv4Address("192.168.1.200")  # above 2**31: a negative immediate
    assert _run_fence(bpfprog.fence_program(high, "egress", 3), garp_frame(mac, high), 0, 1) == shot


def test_a_stall_between_the_lifetime_and_its_write_is_undone_at_once() -> None:
    """vip.fence: lifetime. The kernel counts an address lifetime from when it takes the
    request, so a freeze between computing floor(D - now) and the send would leave the
    address past D by the freeze: right after the write it is written again shorter,
    or deleted when less than a second is left; an ordinary write is left alone."""
    deadline = 100.0
    assert lifetime_after_write(deadline, 97.5001, 2) is None  # computed at 97.5: fine
    assert lifetime_after_write(deadline, 98.003, 2) is None  # within a write's time
    assert lifetime_after_write(deadline, 98.6, 2) == 1  # a 1.1 s stall: 1 s left
    assert lifetime_after_write(deadline, 99.7, 2) == 0  # under a second left: delete
    assert lifetime_after_write(deadline, 103.0, 2) == 0  # resumed after D: delete
