"""Hold new connections on a listening socket without refusing them.

A one-instruction classic BPF program ("drop everything") attached to the listening
socket makes the kernel drop incoming SYNs silently: the client retransmits its SYN
(after about 1 s) instead of getting a reset, and by then the VIP may be elsewhere.
Connections already accepted have their own sockets and are not affected. Used for a
planned handover (switchover, SIGTERM) so that no client sees a refused connection.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26  # asm-generic/socket.h
SO_DETACH_FILTER = 27
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, accept 0 bytes


def hold_syns(sock: socket.socket) -> None:
    program = ctypes.create_string_buffer(_DROP_ALL)
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


def release_syns(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as exc:  # ENOENT: no filter attached, nothing to undo
        if exc.errno != 2:
            raise
