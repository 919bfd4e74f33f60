"""Hostile framing: bytes behind a refused upgrade, huge chunk extensions and
trailers, a client that leaves mid-request."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import cluster_yaml, free_port
from tests.functional.rawhttp import RecordingBackend
from tests.hostile.kit import alive, metric, read_until_closed, rss_kib, served


async def test_bytes_behind_a_refused_upgrade_never_reach_the_server(
    floatgate_process: Any,
) -> None:
    """Until the server answers 101 nothing follows the upgrade request; a refusal
    means no tunnel, so a request smuggled behind it is dropped, not forwarded."""
    recorder = RecordingBackend()  # answers 200 (not 101) to everything
    await recorder.start()
    try:
        port = free_port()
        process = floatgate_process(cluster_yaml(port, [f"127.0.0.1:{recorder.port}"]))
        process.wait_listening(port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-SSL-Client-Verify: SUCCESS\r\n\r\n"
        )
        answer, _ = await read_until_closed(reader, 3)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.3)
        assert b"/chat" in recorder.received
        assert b"/smuggled" not in recorder.received
        assert b"X-SSL-Client-Verify" not in recorder.received
        alive(process)
    finally:
        await recorder.stop()


async def test_huge_chunk_extensions_and_trailers(backends: Any, floatgate_process: Any) -> None:
    backend = await backends("a")
    port = free_port()
    process = floatgate_process(cluster_yaml(port, [backend.address]))
    process.wait_listening(port)
    before = rss_kib(process)
    attacks = [
        b"5;" + b"e" * 200000 + b"\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n" + b"X-T: " + b"t" * 200000 + b"\r\n\r\n",
        b"5\r\nhello\r\n0\r\n" + b"".join(b"T%d: v\r\n" % i for i in range(20000)) + b"\r\n",
        b"fffffffffffffffffff\r\n",
    ]
    for body in attacks:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        answer, _ = await read_until_closed(reader, 5)
        writer.close()
        assert b"Traceback" not in answer
        assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer[:200]
    alive(process)
    assert rss_kib(process) - before < 64 * 1024
    await served(port)
    assert "Traceback" not in process.log.read_text()


async def test_client_leaving_mid_request_is_an_ordinary_event(
    backends: Any, floatgate_process: Any, tmp_path: Path
) -> None:
    """No traceback at ERROR: one line, and a counter."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"x" * 100000)
            await asyncio.sleep(0.02)
        return response

    backend = await backends("a", slow)
    port = free_port()
    admin = free_port()
    node = tmp_path / "node.yaml"
    node.write_text(f'name: n1\nadmin: {{listen: "127.0.0.1:{admin}"}}\n')
    process = floatgate_process(cluster_yaml(port, [backend.address]),
                                run_args=("--node", str(node)))  # fmt: skip
    process.wait_listening(port)
    for body in (b"", b"partial"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if body:
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + body)
        else:
            writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.read(1000)
        await asyncio.sleep(0.1)
        writer.transport.abort()
    await asyncio.sleep(0.5)
    alive(process)
    log = process.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log, log[-3000:]
    assert await asyncio.to_thread(metric, admin, "floatgate_frontend_client_aborts_total") == 2
