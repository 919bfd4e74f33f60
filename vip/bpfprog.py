"""The fence's eBPF program, assembled here (pure: bytes, no syscalls).

Two tc classifiers (direct action) on the VIP's interface share one array map whose
only value is the leadership deadline in CLOCK_MONOTONIC nanoseconds (the clock of
``time.monotonic_ns()`` and of the ``bpf_ktime_get_ns`` helper):

- egress: an IPv4 packet from the VIP, or an ARP frame whose sender address is the VIP
  (replies to "who has VIP?" and gratuitous ARPs, the kernel's and floatgate's own), is
  dropped unless ``ktime_get_ns() < deadline``;
- ingress: an IPv4 packet to the VIP is dropped unless the same holds.

Every other frame passes untouched. The deadline is absolute: a process stalled between
computing it and writing it cannot move it later, and once written the kernel needs no
running floatgate code to end the reign on time (docs/cluster.md: the fence).

Encoding: struct bpf_insn (include/uapi/linux/bpf.h), 8 bytes each: opcode, dst and
src registers in one byte (src high nibble), a signed 16-bit jump offset (in
instructions, from the next one), a signed 32-bit immediate.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Literal

Direction = Literal["ingress", "egress"]

# Opcodes used (class | op | source).
LD_ABS_H = 0x28  # r0 = ntohs(*(u16 *)(skb->data + imm))
LD_ABS_W = 0x20  # r0 = ntohl(*(u32 *)(skb->data + imm))
MOV64_REG = 0xBF
MOV64_IMM = 0xB7
ADD64_IMM = 0x07
ST_MEM_W = 0x62  # *(u32 *)(dst + off) = imm
LDX_MEM_DW = 0x79  # dst = *(u64 *)(src + off)
LD_IMM64 = 0x18  # two slots; src 1: imm is a map file descriptor
JMP32_JEQ_IMM = 0x16
JMP32_JNE_IMM = 0x56
JMP_JEQ_IMM = 0x15
JMP_JGE_REG = 0x3D  # unsigned
JMP_JA = 0x05
CALL = 0x85
EXIT = 0x95

PSEUDO_MAP_FD = 1
HELPER_MAP_LOOKUP_ELEM = 1
HELPER_KTIME_GET_NS = 5
TC_ACT_OK = 0
TC_ACT_SHOT = 2

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
OFFSET_ETHERTYPE = 12
OFFSET_IP_SADDR = 14 + 12
OFFSET_IP_DADDR = 14 + 16
OFFSET_ARP_SENDER_IP = 14 + 8 + 6


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _imm32(value: int) -> int:
    """An unsigned 32-bit value as the signed immediate that encodes it."""
    return value - (1 << 32) if value >= 1 << 31 else value


def fence_program(vip: ipaddress.IPv4Address, direction: Direction, map_fd: int) -> bytes:
    """The classifier for one direction; ``map_fd`` is the deadline map's descriptor."""
    address = _imm32(int(vip))
    # Labels are instruction indexes; jumps count from the instruction after them.
    program: list[bytes] = [insn(MOV64_REG, dst=6, src=1)]  # r6 = skb (LD_ABS needs it)
    program.append(insn(LD_ABS_H, imm=OFFSET_ETHERTYPE))  # 1

    def jump(code: int, target: int, imm: int = 0) -> bytes:
        return insn(code, off=target - (len(program) + 1), imm=imm)

    check, passed = 9, 19  # filled in below; asserted at the end
    if direction == "egress":
        arp = 7
        program.append(jump(JMP32_JEQ_IMM, arp, ETH_P_ARP))  # 2
        program.append(jump(JMP32_JNE_IMM, passed, ETH_P_IP))  # 3
        program.append(insn(LD_ABS_W, imm=OFFSET_IP_SADDR))  # 4
        program.append(jump(JMP32_JNE_IMM, passed, address))  # 5
        program.append(jump(JMP_JA, check))  # 6
        program.append(insn(LD_ABS_W, imm=OFFSET_ARP_SENDER_IP))  # 7: arp
        program.append(jump(JMP32_JNE_IMM, passed, address))  # 8
    else:
        check, passed = 5, 15
        program.append(jump(JMP32_JNE_IMM, passed, ETH_P_IP))  # 2
        program.append(insn(LD_ABS_W, imm=OFFSET_IP_DADDR))  # 3
        program.append(jump(JMP32_JNE_IMM, passed, address))  # 4
    assert len(program) == check
    drop = check + 12
    program += [
        insn(ST_MEM_W, dst=10, off=-4, imm=0),  # key = 0 on the stack
        insn(MOV64_REG, dst=2, src=10),
        insn(ADD64_IMM, dst=2, imm=-4),
        insn(LD_IMM64, dst=1, src=PSEUDO_MAP_FD, imm=map_fd),
        insn(0),  # second half of the 64-bit load
        insn(CALL, imm=HELPER_MAP_LOOKUP_ELEM),
    ]
    program.append(jump(JMP_JEQ_IMM, drop, 0))  # no value: fenced
    program += [
        insn(LDX_MEM_DW, dst=7, src=0),  # r7 = deadline (ns)
        insn(CALL, imm=HELPER_KTIME_GET_NS),
    ]
    program.append(insn(JMP_JGE_REG, dst=0, src=7, off=drop - (len(program) + 1)))
    assert len(program) == passed
    program += [insn(MOV64_IMM, dst=0, imm=TC_ACT_OK), insn(EXIT)]
    assert len(program) == drop
    program += [insn(MOV64_IMM, dst=0, imm=TC_ACT_SHOT), insn(EXIT)]
    return b"".join(program)
