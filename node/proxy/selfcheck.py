"""Health means serving: the node probes each of its own frontends end to end.

Every ``self_check.interval`` each frontend gets a probe through its real listening
socket: for ``mode http`` a request that floatgate answers itself (a path with a random
per-process token, answered before rules and never logged), for a TLS frontend a
handshake first, for ``mode tcp`` the connection being accepted. A listener that is
closed or whose accept loop has ended fails at once, without waiting for a probe.
``fall`` failures in a row mark the frontend down (``rise`` successes up again), with
HAProxy's server-check semantics. Where the bind address is not on this host (a VIP
the node does not hold yet) only the listener and its accept loop are checked (open,
running, and waiting for connections rather than stuck): no packet can reach that
address from here.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from node.config.model import HostPort, SelfCheckConfig
from node.proxy.upstream.health import HealthState

if TYPE_CHECKING:
    from node.proxy.listener import Listener

log = logging.getLogger("floatgate.selfcheck")

PROBE_PREFIX = "/.well-known/floatgate-probe/"
_WILDCARDS = MappingProxyType({"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"})


def probe_path() -> str:
    """A path nobody outside this process can guess (answered by the proxy itself)."""
    return PROBE_PREFIX + secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class FrontendVerdict:
    frontend: str
    serving: bool
    reason: str


def probe_target(bind: HostPort) -> str | None:
    """The address to probe through, or None when the bind address is not on this host.
    Binding says nothing (ip_nonlocal_bind, IP_FREEBIND); the routing table does: a
    connected UDP socket (no packet is sent) gets the address itself as its source only
    when the address is local."""
    host = _WILDCARDS.get(bind.host, bind.host)
    if ipaddress.ip_address(host).is_loopback:
        return host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect((host, bind.port or 9))
        except OSError as exc:
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
                return None
            raise
        return host if udp.getsockname()[0] == host else None


async def probe(listener: Listener, path: str, timeout: float) -> str | None:
    """One end-to-end probe of a listener: None if it served, else why not."""
    problem = listener.serving(stuck_after=timeout)
    if problem is not None:
        return problem
    try:
        host = probe_target(listener.bind)
    except OSError as exc:
        return f"cannot probe {listener.bind}: {exc.strerror or exc}"
    if host is None:
        return None  # not ours yet (a VIP held elsewhere): the listener checks must do
    if listener.saturated():
        return None  # at maxconn the probe would wait in the backlog like any client
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(listener, host, path)
    except TimeoutError:
        return f"no answer through {listener.bind} within {timeout:g}s"
    except Exception as exc:  # whatever went wrong, the frontend did not answer
        return f"probe through {listener.bind} failed: {exc!r}"


async def _exchange(listener: Listener, host: str, path: str) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    source: tuple[str, int] = ("", 0)
    handed = False  # once a transport owns the socket, only the transport closes it
    try:
        sock.setblocking(False)
        sock.bind((host, 0))
        source = sock.getsockname()[:2]
        listener.probes.add(source)  # not counted as a client connection
        await asyncio.get_running_loop().sock_connect(sock, (host, listener.bind.port))
        route = listener.handler.route
        tls = route.tls
        if route.frontend.mode == "tcp" or (tls is not None and tls.client_auth):
            # The kernel completes a TCP handshake by itself: wait until the accept
            # loop took this connection (with client certificates required, a
            # certificate-less probe cannot get further than that).
            while source not in listener.probes_accepted:
                await asyncio.sleep(0.005)
            return None
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handed = True
        if context is None:
            reader, writer = await asyncio.open_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname="floatgate-probe"
            )
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode()
            )
            status_line = await reader.readline()
        finally:
            writer.transport.abort()  # no TLS close_notify exchange to wait for
        if not status_line.startswith(b"HTTP/1.1 200 "):
            return f"unexpected answer to the probe: {status_line[:60]!r}"
        return None
    finally:
        listener.probes.discard(source)
        listener.probes_accepted.discard(source)
        if not handed:
            sock.close()


class SelfCheck:
    """Probes every listener of a data plane on a schedule; ``problems()`` says which
    frontends cannot serve and why."""

    def __init__(self, config: SelfCheckConfig, path: str) -> None:
        self.config = config
        self.path = path
        self._states: dict[str, HealthState] = {}
        self._reasons: dict[str, str] = {}

    def problems(self, listeners: list[Listener]) -> dict[str, str]:
        """Frontend name -> why it cannot serve. A closed listener or a dead accept
        loop counts at once; probe failures once ``fall`` of them came in a row."""
        found: dict[str, str] = {}
        for listener in listeners:
            immediate = listener.serving(stuck_after=self.config.timeout + self.config.interval)
            state = self._states.get(listener.name)
            if immediate is not None:
                found[listener.name] = immediate
            elif state is not None and not state.up:
                found[listener.name] = self._reasons.get(listener.name, "probe failed")
        return found

    def reconfigure(self, config: SelfCheckConfig) -> None:
        """New settings (a reload): each frontend keeps what it is (a frontend that
        cannot serve does not look fine for a moment) and counts on with the new rise
        and fall."""
        if config != self.config:
            self.config = config
            for state in self._states.values():
                state.rise, state.fall = config.rise, config.fall

    async def run_once(self, listeners: list[Listener], lag: float = 0.0) -> list[FrontendVerdict]:
        """Probe each listener once; returns the frontends whose state changed. ``lag``:
        how late this round started; when the whole event loop was that late, a timeout
        says nothing about the frontends and is not counted."""
        config = self.config
        started = time.monotonic()
        results = await asyncio.gather(
            *(probe(listener, self.path, config.timeout) for listener in listeners)
        )
        late = lag + max(0.0, time.monotonic() - started - config.timeout)
        changed = []
        names = {listener.name for listener in listeners}
        for name in [n for n in self._states if n not in names]:
            del self._states[name]
            self._reasons.pop(name, None)
        for listener, reason in zip(listeners, results, strict=True):
            if reason is not None and reason.startswith("no answer") and late > config.timeout:
                log.warning("frontend self-check: event loop %.2fs late, probe of %s not "
                            "counted", late, listener.name)  # fmt: skip
                continue
            state = self._states.setdefault(listener.name, HealthState(config.rise, config.fall))
            transition = state.observe(reason is None, reason or "probe answered")
            if reason is not None:
                self._reasons[listener.name] = reason
            if transition is not None:
                changed.append(FrontendVerdict(listener.name, transition.up, transition.reason))
        return changed
