"""Attacks on accepting: connect + RST bursts, silent and garbage TLS handshakes,
thousands of idle connections past maxconn. After each: the process is alive, its
memory bounded, and a normal client is served."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cluster_yaml, free_port
from tests.functional.pki import Pki
from tests.hostile.kit import alive, connect, get, raise_fd_limit, reset, rss_kib, served


async def test_connect_reset_burst_does_not_stop_the_frontend(
    backends: Any, floatgate_process: Any
) -> None:
    """2,000+ connect/RST pairs once stopped the accept loop for good."""
    backend = await backends("a")
    port = free_port()
    process = floatgate_process(cluster_yaml(port, [backend.address]))
    process.wait_listening(port)
    await served(port)

    def burst() -> None:
        for _ in range(3000):
            try:
                reset(connect(port))
            except OSError:
                time.sleep(0.001)

    await asyncio.to_thread(burst)
    alive(process)
    for _ in range(5):
        await served(port)
    assert "Traceback" not in process.log.read_text()


async def test_silent_tls_handshakes_do_not_stall_accepting(
    backends: Any, floatgate_process: Any, pki: Pki, tmp_path: Path
) -> None:
    """More silent TLS sockets than the handshake cap: a normal TLS client is still
    served long before the silent ones' handshake timeout ends them."""
    raise_fd_limit()
    backend = await backends("a")
    port = free_port()
    pem = pki.path("app.pem")
    extra = """    tls:
      certificates: [site]
      handshake_timeout: 60s"""
    text = cluster_yaml(port, [backend.address], frontend_extra=extra)
    text += f"certificates:\n  site: {pem}\n"
    process = floatgate_process(text)
    process.wait_listening(port)
    await served(port, tls=True)
    silent = []
    try:
        for _ in range(1100):
            silent.append(connect(port))
        started = time.monotonic()
        await served(port, tls=True)
        assert time.monotonic() - started < 30  # far below the 60 s handshake timeout
    finally:
        for sock in silent:
            sock.close()
    alive(process)


async def test_garbage_tls_handshakes(backends: Any, floatgate_process: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    pem = pki.path("app.pem")
    text = cluster_yaml(port, [backend.address], frontend_extra="    tls: {certificates: [site]}")
    text += f"certificates:\n  site: {pem}\n"
    process = floatgate_process(text)
    process.wait_listening(port)
    garbage = [b"\x16\x03\x01\xff\xff" + b"\x00" * 300, b"GET / HTTP/1.1\r\n\r\n",
               b"\x16\x03\x03\x00\x05\x01\x00\x00\x01\x00", bytes(range(256)) * 8]  # fmt: skip
    for payload in garbage * 20:
        sock = connect(port)
        try:
            sock.sendall(payload)
            sock.settimeout(5)
            while sock.recv(4096):
                pass
        except OSError:
            pass
        finally:
            sock.close()
    alive(process)
    await served(port, tls=True)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="app.test") as tls:
            assert tls.version() is not None


async def test_idle_connections_past_maxconn(backends: Any, floatgate_process: Any) -> None:
    """Idle connections past maxconn wait in the backlog and are closed by
    timeout.http_request; a normal client is served once they are gone."""
    raise_fd_limit()
    backend = await backends("a")
    port = free_port()
    extra = "    maxconn: 200\n    timeout: {http_request: 1s}"
    process = floatgate_process(cluster_yaml(port, [backend.address], frontend_extra=extra))
    process.wait_listening(port)
    before = rss_kib(process)
    idle = [connect(port) for _ in range(1000)]
    try:
        status, _ = await get(port, timeout=120)  # served once idle connections time out
        assert status == 200
    finally:
        for sock in idle:
            sock.close()
    alive(process)
    assert rss_kib(process) - before < 100 * 1024
    await served(port)


@pytest.mark.parametrize("count", [20000])
async def test_pipelined_flood(backends: Any, floatgate_process: Any, count: int) -> None:
    """A client that pipelines many requests and reads slowly: memory stays bounded
    (reading pauses), and other clients are served meanwhile."""
    backend = await backends("a")
    port = free_port()
    process = floatgate_process(cluster_yaml(port, [backend.address]))
    process.wait_listening(port)
    before = rss_kib(process)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n" * count)
    await served(port)
    got = 0
    while got < 50:
        got += (await reader.read(65536)).count(b"HTTP/1.1 200")
    assert rss_kib(process) - before < 100 * 1024
    writer.close()
    alive(process)
    await served(port)


async def test_a_burst_of_new_clients_on_a_busy_loop_is_accepted_in_batches(
    backends: Any, proxy: Any
) -> None:
    """Under load every event-loop turn is long. Accepting one client per turn (and a
    turn more for its transport) made the 50th client of a burst wait ~100 turns:
    0.75 s at 3k req/s. New clients waiting in the backlog are taken together, as
    HAProxy's tune.maxaccept does. Counted in loop turns, not seconds."""
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(40):  # the loop is blocked here: all 40 wait in the accept backlog
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.setblocking(False)
        clients.append(sock)
    turns = 0

    def busy_turn() -> None:  # every turn of the loop costs 2 ms, as under load
        nonlocal turns
        turns += 1
        time.sleep(0.002)
        ticker[0] = loop.call_soon(busy_turn)

    ticker = [loop.call_soon(busy_turn)]

    async def answered(sock: socket.socket) -> int:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await loop.sock_recv(sock, 65536)
        assert data.startswith(b"HTTP/1.1 200 "), data[:80]
        return turns

    try:
        done = await asyncio.wait_for(asyncio.gather(*(answered(s) for s in clients)), 30)
    finally:
        ticker[0].cancel()
        for sock in clients:
            sock.close()
    assert max(done) <= 30, f"the last of 40 new clients was answered after {max(done)} turns"
