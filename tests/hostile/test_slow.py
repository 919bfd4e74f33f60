"""Slow and stalled clients: every phase of a connection has a deadline. Slowloris
headers, slow bodies (Content-Length and chunked), a client that never reads its
response, half-closed connections, idle keep-alive. After each: the server slot is
free again (servers have maxconn 1) and a normal client is served."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import cluster_yaml, free_port
from tests.hostile.kit import alive, get, metric, read_until_closed, rss_kib, served

SHORT = "    timeout: {http_request: 1s, client: 1s}"


@pytest.fixture
def one_slot(backends: Any, floatgate_process: Any, tmp_path: Path) -> Any:
    """floatgate (short client timeouts, admin for /metrics) before a backend whose
    only server takes one request at a time: a leaked slot would starve the next client."""

    async def start(handler: Any = None) -> tuple[int, Any, Any]:
        backend = await backends("a", handler)
        port, admin = free_port(), free_port()
        node = tmp_path / "node.yaml"
        node.write_text(f'name: n1\nadmin: {{listen: "127.0.0.1:{admin}"}}\n')
        text = cluster_yaml(port, [backend.address], frontend_extra=SHORT,
                            server_extra=", maxconn: 1")  # fmt: skip
        process = floatgate_process(text, run_args=("--node", str(node)))
        process.wait_listening(port)
        process.admin = admin
        process.rss_before = rss_kib(process)
        return port, process, backend

    return start


def timeouts(process: Any, which: str) -> float:
    return metric(process.admin, "floatgate_frontend_client_timeouts_total", f'timeout="{which}"')


async def after_attack(process: Any, port: int) -> None:
    """The process is alive, its memory bounded, and a normal client is served."""
    alive(process)
    assert rss_kib(process) - process.rss_before < 64 * 1024
    await served(port)


async def test_slowloris_headers_get_408(one_slot: Any) -> None:
    """timeout.http_request bounds the whole header section, not each byte."""
    port, process, backend = await one_slot()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\n")
    answer = b""
    for i in range(60):  # a header line every 0.1 s: each byte is "on time"
        writer.write(b"X-%d: y\r\n" % i)
        await asyncio.sleep(0.1)
        if reader.at_eof() or len(reader._buffer):  # type: ignore[attr-defined]
            break
    answer, closed = await read_until_closed(reader, 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert closed
    assert not backend.requests
    assert timeouts(process, "http_request") == 1
    await after_attack(process, port)


@pytest.mark.parametrize(
    "parts",
    [
        # announce 1000 bytes, send 10, wait: once stuck past timeout.client
        [b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"],
        # a large body streams to the server; the client stalls in the middle of it
        [b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n", b"x" * 200000],
        # chunked: a chunk, then half of the next one, then nothing
        [b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
         b"5\r\nhello\r\n", b"5\r\nwor"],
    ],
    ids=["content-length", "large-streamed", "chunked"],
)  # fmt: skip
async def test_slow_body_gets_408_or_a_cut_and_frees_the_slot(
    one_slot: Any, parts: list[bytes]
) -> None:
    """408 while nothing was answered yet (a small body is read whole before a server is
    chosen, so that server saw nothing), else a cut; the server connection is closed."""
    port, process, backend = await one_slot()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for part in parts:
        writer.write(part)
        await asyncio.sleep(0.2)
    answer, closed = await read_until_closed(reader, 8)
    writer.close()
    assert closed, answer
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    if len(parts) == 1:
        assert answer.startswith(b"HTTP/1.1 408 ") and not backend.requests
    assert timeouts(process, "client") == 1
    await after_attack(process, port)


async def test_client_that_never_reads_is_cut(one_slot: Any) -> None:
    """A client that never reads a large response holds no server slot for long."""

    async def big(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return web.Response(text="ok")
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(4000):
                await response.write(b"z" * 65536)  # 256 MiB if anyone read it
        except (ConnectionError, RuntimeError):
            pass
        return response

    port, process, _ = await one_slot(big)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    writer.transport.set_write_buffer_limits(0)
    sock = writer.get_extra_info("socket")
    import socket

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.transport.pause_reading()  # never read
    await asyncio.sleep(0.5)
    await served(port)  # waits in the server queue until the stalled client is cut
    assert timeouts(process, "client") == 1
    writer.close()
    await after_attack(process, port)


async def test_half_closed_client_gets_its_answer(one_slot: Any) -> None:
    port, process, _ = await one_slot()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.write_eof()
    answer, closed = await read_until_closed(reader, 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert closed
    await after_attack(process, port)


async def test_idle_keep_alive_is_closed(backends: Any, floatgate_process: Any) -> None:
    backend = await backends("a")
    port = free_port()
    extra = "    timeout: {http_keep_alive: 300ms, client: 30s}"
    process = floatgate_process(cluster_yaml(port, [backend.address], frontend_extra=extra))
    process.wait_listening(port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer, closed = await read_until_closed(reader, 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert closed  # long before timeout.client
    alive(process)


async def test_tunnel_client_that_stops_reading_is_cut(
    backends: Any, floatgate_process: Any
) -> None:
    """A WebSocket whose server keeps sending while the client never reads: once the
    tunnel makes no progress for timeout.tunnel the connection is cut (a plain close
    would wait for the client forever) and the server slot is free again."""

    async def push(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return web.Response(text="ok")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            for _ in range(4000):
                await ws.send_bytes(b"w" * 65536)
        except (ConnectionError, RuntimeError):
            pass
        return ws

    backend = await backends("a", push)
    port = free_port()
    extra = "    timeout: {tunnel: 1s, client: 30s}"
    process = floatgate_process(cluster_yaml(port, [backend.address], frontend_extra=extra,
                                             server_extra=", maxconn: 1"))  # fmt: skip
    process.wait_listening(port)
    before = rss_kib(process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    writer.write(
        b"GET /push HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.pause_reading()  # never read again
    status, _ = await get(port, timeout=30)  # queued for the slot until the cut
    assert status == 200
    writer.close()
    alive(process)
    assert rss_kib(process) - before < 64 * 1024


async def test_pipelined_large_responses_never_read(backends: Any, floatgate_process: Any) -> None:
    """Thousands of pipelined GETs of a 64 KiB resource and no reading: floatgate stops
    reading the pipeline while the client does not read (memory stays bounded) and cuts
    it after timeout.client."""

    async def large(request: web.Request) -> web.Response:
        return web.Response(body=b"L" * 65536)

    backend = await backends("a", large)
    port = free_port()
    extra = "    timeout: {client: 1s}"
    process = floatgate_process(cluster_yaml(port, [backend.address], frontend_extra=extra))
    process.wait_listening(port)
    before = rss_kib(process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    writer.transport.pause_reading()
    writer.write(b"GET /l HTTP/1.1\r\nHost: x\r\n\r\n" * 5000)  # 320 MiB of answers
    await asyncio.sleep(3)
    assert rss_kib(process) - before < 64 * 1024
    writer.transport.resume_reading()
    _, closed = await read_until_closed(reader, 10)
    assert closed  # cut once it stayed unread for timeout.client
    writer.close()
    alive(process)
    await served(port)
