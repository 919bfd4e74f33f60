"""Hostile clients of a passthrough (mode tcp) frontend: clients that leave while
queued for a full server or in the middle of their ClientHello, and a PROXY header
trickled byte by byte. Afterwards the server slots are free and clients are served."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import free_port
from tests.functional.test_passthrough import Echo, _hello
from tests.hostile.kit import alive, read_until_closed, rss_kib


def _yaml(port: int, echo: int, frontend_extra: str = "") -> str:
    return f"""
cluster: pass
frontends:
  - name: pass
    bind: "127.0.0.1:{port}"
    mode: tcp
    hello_timeout: 2s
    default_backend: echo
{frontend_extra}
backends:
  - name: echo
    mode: tcp
    timeout: {{queue: 30s}}
    servers: [{{name: e1, address: "127.0.0.1:{echo}", maxconn: 1}}]
"""


async def _echoed(port: int, timeout: float = 10.0) -> bool:
    """A normal client: its ClientHello comes back from the echo server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hello = _hello("a.test")
    writer.write(hello)
    try:
        return await asyncio.wait_for(reader.readexactly(len(hello)), timeout) == hello
    finally:
        writer.close()


async def test_client_leaving_the_queue_frees_its_place(floatgate_process: Any) -> None:
    """Server maxconn 1: A holds the slot, B..F queue and leave, A leaves; the next
    client must get the slot (it once leaked, and later clients queued forever)."""
    echo = Echo()
    await echo.start()
    port = free_port()
    # timeout.client shorter than the wait in the queue: the connections of queued
    # clients end while they wait (the old code then leaked the slot they were given)
    process = floatgate_process(_yaml(port, echo.port, "    timeout: {client: 1s}"))
    process.wait_listening(port)
    before = rss_kib(process)
    holder_r, holder_w = await asyncio.open_connection("127.0.0.1", port)
    hello = _hello("a.test")
    holder_w.write(hello)
    await holder_r.readexactly(len(hello))  # relaying: holds the only slot
    leavers = []
    for _ in range(5):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_hello("a.test"))
        leavers.append(writer)
    await asyncio.sleep(1.5)  # queued, longer than timeout.client
    for writer in leavers:
        writer.transport.abort()
    await asyncio.sleep(0.3)
    holder_w.close()
    for _ in range(3):
        assert await _echoed(port)
    alive(process)
    assert rss_kib(process) - before < 64 * 1024


async def test_client_leaving_mid_client_hello(floatgate_process: Any) -> None:
    echo = Echo()
    await echo.start()
    port = free_port()
    process = floatgate_process(_yaml(port, echo.port))
    process.wait_listening(port)
    for cut in (1, 5, 11, 40):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_hello("a.test")[:cut])
        await asyncio.sleep(0.05)
        writer.transport.abort()
    assert await _echoed(port)
    assert echo.received.startswith(b"\x16\x03")  # only the whole ClientHello got through
    alive(process)


async def test_proxy_header_trickled_byte_by_byte(floatgate_process: Any) -> None:
    """A PROXY v1 header sent one byte at a time within hello_timeout is accepted,
    and one that never ends is dropped after hello_timeout without stalling others."""
    echo = Echo()
    await echo.start()
    port = free_port()
    extra = "    accept_proxy: {trusted: [127.0.0.0/8]}"
    process = floatgate_process(_yaml(port, echo.port, extra))
    process.wait_listening(port)
    header = b"PROXY TCP4 192.0.2.7 192.0.2.1 5555 443\r\n"
    stuck_r, stuck_w = await asyncio.open_connection("127.0.0.1", port)
    stuck_w.write(b"PROXY TCP4 192.0.2.8")  # never finished
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for byte in header:
        writer.write(bytes([byte]))
        await asyncio.sleep(0.01)
    hello = _hello("a.test")
    writer.write(hello)
    assert await asyncio.wait_for(reader.readexactly(len(hello)), 10) == hello
    writer.close()
    _, closed = await read_until_closed(stuck_r, 6)
    assert closed  # hello_timeout ended the unfinished header
    stuck_w.close()
    alive(process)
