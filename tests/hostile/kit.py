"""Helpers for the hostile-client tier: a real `floatgate run` process, a normal client
that must be served after each attack, and the process's memory."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import ssl
import time
from pathlib import Path

import aiohttp

from tests.conftest import FloatgateProcess

NORMAL_TIMEOUT = 10.0  # generous: a slow machine must not fail a behaviour test


def raise_fd_limit(wanted: int = 16384) -> None:
    """Floods need more sockets than the default soft limit (the process inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


async def get(port: int, path: str = "/", timeout: float = NORMAL_TIMEOUT,
              tls: bool = False) -> tuple[int, str]:  # fmt: skip
    """A normal client: one GET on a new connection."""
    scheme = "https" if tls else "http"
    context: ssl.SSLContext | bool = not tls
    connector = aiohttp.TCPConnector(force_close=True, ssl=context)
    limit = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=limit) as session:
        async with session.get(f"{scheme}://127.0.0.1:{port}{path}") as reply:
            return reply.status, await reply.text()


async def served(port: int, tls: bool = False) -> None:
    status, _ = await get(port, tls=tls)
    assert status == 200


def rss_kib(process: FloatgateProcess) -> int:
    for line in Path(f"/proc/{process.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def alive(process: FloatgateProcess) -> None:
    assert process.proc.poll() is None, process.log.read_text()[-4000:]


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 1, 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


async def read_until_closed(reader: asyncio.StreamReader, limit: float) -> tuple[bytes, bool]:
    """Everything the proxy sends within ``limit`` seconds; True if it closed."""
    data = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        except TimeoutError:
            break
        except ConnectionError:  # closed with a reset (unread bytes were pending)
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def wait_log(process: FloatgateProcess, text: str, timeout: float = NORMAL_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = process.log.read_text()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged: {process.log.read_text()[-3000:]}")


def metric(port: int, name: str, label: str = "") -> float:
    """A metric's value from an admin /metrics: the sum over its label sets (those with
    ``label``, e.g. ``timeout="client"``, when given)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def sockets() -> object:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.close()
