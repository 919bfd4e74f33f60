"""Slow and stalled clients: every phase of a connection has a deadline. Slowloris
headers, slow bodies (Content-Length and chunked), a client that never reads its
response, half-closed connections, idle keep-alive. After each: the server slot is
free again (servers have maxconn 1) and a normal client is served."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.conftest import cluster_yaml, free_port
from tests.hostile.kit import alive, read_until_closed, served

SHORT = "    timeout: {http_request: 1s, client: 1s, server: 5s, queue: 20s}"


async def _one_slot_proxy(backends: Any, floatgate_process: Any,
                          handler: Any = None) -> tuple[int, Any, Any]:  # fmt: skip
    backend = await backends("a", handler)
    port = free_port()
    text = cluster_yaml(port, [backend.address], frontend_extra=SHORT,
                        server_extra=", maxconn: 1")  # fmt: skip
    process = floatgate_process(text)
    process.wait_listening(port)
    return port, process, backend


async def test_slowloris_headers_get_408(backends: Any, floatgate_process: Any) -> None:
    """timeout.http_request bounds the whole header section, not each byte."""
    port, process, backend = await _one_slot_proxy(backends, floatgate_process)
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
    alive(process)
    await served(port)


async def test_slow_content_length_body_gets_408_and_frees_the_slot(
    backends: Any, floatgate_process: Any
) -> None:
    """Announce 1000 bytes, send 10, wait: once stuck past timeout.client."""
    port, _process, backend = await _one_slot_proxy(backends, floatgate_process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
    answer, closed = await read_until_closed(reader, 8)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert closed
    assert not backend.requests  # a small body is read whole before a server is chosen
    await served(port)


async def test_slow_large_body_is_cut_and_frees_the_slot(
    backends: Any, floatgate_process: Any
) -> None:
    """A large body streams to the server; a client that stalls in the middle of it is
    cut after timeout.client and the server connection closed, so the slot frees."""
    port, _process, _backend = await _one_slot_proxy(backends, floatgate_process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    writer.write(b"x" * 200000)
    answer, closed = await read_until_closed(reader, 8)
    writer.close()
    assert closed, answer
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    await served(port)


async def test_slow_chunked_body_is_cut_and_frees_the_slot(
    backends: Any, floatgate_process: Any
) -> None:
    port, _process, _backend = await _one_slot_proxy(backends, floatgate_process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"5\r\nhello\r\n")
    await asyncio.sleep(0.2)
    writer.write(b"5\r\nwor")  # then nothing
    answer, closed = await read_until_closed(reader, 8)
    writer.close()
    assert closed, answer
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    await served(port)


async def test_client_that_never_reads_is_cut(backends: Any, floatgate_process: Any) -> None:
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

    port, process, _backend = await _one_slot_proxy(backends, floatgate_process, big)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    writer.transport.set_write_buffer_limits(0)
    sock = writer.get_extra_info("socket")
    import socket

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.transport.pause_reading()  # never read
    await asyncio.sleep(0.5)
    await served(port)  # waits in the server queue until the stalled client is cut
    writer.close()
    alive(process)


async def test_half_closed_client_gets_its_answer(backends: Any, floatgate_process: Any) -> None:
    port, _process, _backend = await _one_slot_proxy(backends, floatgate_process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.write_eof()
    answer, closed = await read_until_closed(reader, 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert closed
    await served(port)


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
