"""Hold new connections on a listening socket without refusing them.

A small classic BPF program attached to the listening socket makes the kernel drop
incoming SYNs silently: the client retransmits its SYN (after about 1 s) instead of
getting a reset, and by then the VIP may be elsewhere.
Connections already accepted have their own sockets and are not affected. Used for a
planned handover (switchover, SIGTERM) so that no client sees a refused connection.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26  # asm-generic/socket.h
SO_DETACH_FILTER = 27
_SYN, _ACK = 0x02, 0x10
# Classic BPF on the listening socket; the packet starts at the TCP header, byte 13
# holds the flags. A SYN without ACK (a new connection) is dropped; everything else
# (the ACK that completes a handshake already under way, its first data) goes through,
# so connections the kernel is setting up are finished and served, not stranded.
_HOLD_NEW = b"".join(
    struct.pack("HBBI", code, jt, jf, k)
    for code, jt, jf, k in (
        (0x30, 0, 0, 13),  # ldb [13]
        (0x45, 0, 2, _SYN),  # jset #SYN: no -> accept
        (0x45, 1, 0, _ACK),  # jset #ACK: yes -> accept
        (0x06, 0, 0, 0),  # ret #0: drop
        (0x06, 0, 0, 0xFFFFFFFF),  # ret: accept the whole packet
    )
)


def hold_syns(sock: socket.socket) -> None:
    program = ctypes.create_string_buffer(_HOLD_NEW)
    count = len(_HOLD_NEW) // 8
    fprog = struct.pack("HL", count, ctypes.addressof(program))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


def release_syns(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as exc:  # ENOENT: no filter attached, nothing to undo
        if exc.errno != 2:
            raise


def accept_queue(sock: socket.socket) -> int:
    """Connections the kernel completed but floatgate has not accepted yet (for a
    listening socket, ``tcp_info.tcpi_unacked`` is the accept queue's length)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 24)[0])
