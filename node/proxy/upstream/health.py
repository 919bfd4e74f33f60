"""Server health: a pure rise/fall state machine, and the active probes (tcp, http,
ssl-hello)."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from node.config.model import HealthCheck, HostPort
from node.proxy.upstream.connect import ConnectError, open_server_stream
from node.proxy.wire.clienthello import build_client_hello, is_server_hello
from node.tls.material import BackendTlsRuntime


@dataclass(slots=True)
class Transition:
    up: bool
    reason: str


@dataclass(slots=True)
class HealthState:
    """HAProxy semantics: ``fall`` consecutive failures take an UP server down, ``rise``
    consecutive successes bring a DOWN server up. Servers start UP."""

    rise: int
    fall: int
    up: bool = True
    successes: int = 0
    failures: int = 0

    def observe(self, ok: bool, reason: str) -> Transition | None:
        if ok:
            self.failures = 0
            self.successes += 1
            if not self.up and self.successes >= self.rise:
                self.up = True
                return Transition(True, reason)
        else:
            self.successes = 0
            self.failures += 1
            if self.up and self.failures >= self.fall:
                self.up = False
                return Transition(False, reason)
        return None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    reason: str
    duration: float


async def probe(
    address: HostPort,
    check: HealthCheck,
    tls: BackendTlsRuntime | None = None,
    preamble: bytes = b"",
) -> ProbeResult:
    """Run one check against ``address``; never raises for network problems."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(check.timeout):
            if check.type == "http":
                ok, reason = await _probe_http(address, check, tls, preamble)
            elif check.type == "ssl-hello":
                ok, reason = await _probe_ssl_hello(address, preamble, check.timeout)
            else:
                ok, reason = await _probe_tcp(address, tls, preamble, check.timeout)
    except TimeoutError:
        ok, reason = False, f"check timed out after {check.timeout * 1000:.0f}ms"
    except ConnectError as exc:
        what = "TLS handshake failed" if exc.handshake else "connection problem"
        ok, reason = False, f"{what}: {exc.detail}"
    except ssl.SSLError as exc:
        ok, reason = False, f"TLS handshake failed: {exc.reason or exc}"
    except OSError as exc:
        ok, reason = False, f"connection problem: {exc.strerror or exc}"
    return ProbeResult(ok, reason, time.monotonic() - started)


async def _probe_tcp(
    address: HostPort, tls: BackendTlsRuntime | None, preamble: bytes, timeout: float
) -> tuple[bool, str]:
    _, writer = await open_server_stream(address, timeout, tls, preamble)
    writer.close()
    await _closed(writer)
    return True, "Layer4 check passed" if tls is None else "Layer6 (TLS) check passed"


async def _probe_http(
    address: HostPort, check: HealthCheck, tls: BackendTlsRuntime | None, preamble: bytes
) -> tuple[bool, str]:
    timeout = check.timeout
    reader, writer = await open_server_stream(address, timeout, tls, preamble)
    try:
        host = check.host or str(address)
        writer.write(
            f"{check.method} {check.path} HTTP/1.1\r\nHost: {host}\r\n"
            "User-Agent: floatgate-check\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        line = await reader.readline()
    finally:
        writer.close()
        await _closed(writer)
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False, f"Layer7 invalid response: {line[:60]!r}"
    status = int(parts[1])
    if check.expect_min <= status <= check.expect_max:
        return True, f"Layer7 check passed, code: {status}"
    return False, f"Layer7 wrong status, code: {status}"


async def _probe_ssl_hello(address: HostPort, preamble: bytes, timeout: float) -> tuple[bool, str]:
    """Send a ClientHello, expect a ServerHello (the server speaks TLS)."""
    reader, writer = await open_server_stream(address, timeout, None, preamble)
    try:
        writer.write(build_client_hello())
        answer = await reader.read(16)
    finally:
        writer.close()
        await _closed(writer)
    if is_server_hello(answer):
        return True, "Layer6 check passed: ServerHello"
    return False, f"Layer6 invalid answer to a ClientHello: {answer[:8]!r}"


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.wait_closed()
    except OSError:
        pass
