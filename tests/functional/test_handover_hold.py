"""Holding new connections for a planned handover: new SYNs are dropped (the client
retransmits), never refused; connections already open keep being served; releasing the
hold lets new clients in again; the plane reports when every exchange is done."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from tests.conftest import cluster_yaml, free_port


async def _get(port: int, sock: socket.socket | None = None) -> bytes:
    loop = asyncio.get_running_loop()
    own = sock is None
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        await loop.run_in_executor(None, sock.sendall, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data = await loop.run_in_executor(None, sock.recv, 65536)
    finally:
        if own:
            sock.close()
    return data


def _connect_outcome(port: int, timeout: float) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"


async def test_held_listener_drops_syns_and_keeps_open_connections(
    backends: Any, proxy: Any
) -> None:
    backend = await backends("a")
    port = free_port()
    plane = await proxy(cluster_yaml(port, [backend.address]))
    kept = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        assert b" 200 " in await _get(port, kept)
        assert plane.quiet()
        plane.hold_new(True)
        started = time.monotonic()
        outcome = await asyncio.to_thread(_connect_outcome, port, 0.5)
        assert outcome == "timeout"  # dropped: a client would retransmit, not fail
        assert time.monotonic() - started >= 0.45
        assert b" 200 " in await _get(port, kept)  # the open connection is still served
        plane.hold_new(False)
        assert b" 200 " in await _get(port)
        plane.hold_new(False)  # releasing twice is harmless
    finally:
        kept.close()


async def test_quiet_waits_for_a_fresh_connection_and_a_busy_request(
    backends: Any, proxy: Any
) -> None:
    backend = await backends("slow")
    backend.delay = 0.3
    port = free_port()
    plane = await proxy(cluster_yaml(port, [backend.address]))
    fresh = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        await asyncio.sleep(0.01)
        assert not plane.quiet()  # connected, request not sent yet: about to arrive
        request = asyncio.ensure_future(_get(port, fresh))
        await asyncio.sleep(0.1)
        assert not plane.quiet()  # the request is being served
        assert b" 200 " in await request
        assert plane.quiet()
        plane.close_idle()
        await asyncio.sleep(0.05)
        assert fresh.recv(10) == b""  # the idle keep-alive connection was closed
    finally:
        fresh.close()


async def test_a_connection_waiting_in_the_accept_queue_is_not_quiet(
    backends: Any, proxy: Any
) -> None:
    """Past maxconn a client waits in the kernel's accept queue: its request must be
    served before a handover may remove the VIP, so the plane is not quiet."""
    backend = await backends("a")
    port = free_port()
    plane = await proxy(cluster_yaml(port, [backend.address], frontend_extra="    maxconn: 1"))
    first = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        assert b" 200 " in await _get(port, first)
        waiting = socket.create_connection(("127.0.0.1", port), timeout=2)
        await asyncio.sleep(0.1)
        assert not plane.quiet()  # one connection completed by the kernel, not accepted
        first.close()
        assert b" 200 " in await _get(port, waiting)
        waiting.close()
        await asyncio.sleep(0.05)
        assert plane.quiet()
    finally:
        first.close()
