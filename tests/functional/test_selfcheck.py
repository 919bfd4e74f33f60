"""Health means serving: each frontend is probed end to end through its own listener.
A stalled or closed listener makes the node unhealthy (/readyz 503, /status names the
frontend and the reason); probes are neither logged nor counted as clients."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from node.config import parse_cluster
from node.proxy.plane import DataPlane
from tests.conftest import cluster_yaml, free_port
from tests.functional.pki import Pki
from tests.hostile.kit import served


async def _until(plane: DataPlane, want: bool, limit: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if bool(plane.frontend_problems()) == want:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"frontend problems never became {want}: {plane.frontend_problems()}")


async def test_a_stalled_frontend_is_unhealthy(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    plane = await proxy(cluster_yaml(port, [backend.address]))
    await asyncio.sleep(0.8)  # several probes went through
    assert plane.frontend_problems() == {}
    meters = plane.meters.frontend("web")
    assert meters.connections == 0  # probes are not clients
    assert not backend.requests  # answered by floatgate itself
    listener = plane.listeners[("127.0.0.1", port)]
    listener.stall(3.0)  # the accept loop stops: seen in-process, without a probe
    took = await _until(plane, True)
    assert "not accepting for" in plane.frontend_problems()["web"]
    assert took < 3.0
    await _until(plane, False)  # accepting again: serves again
    await served(port)


async def test_a_listener_that_drops_every_syn_fails_its_probe(backends: Any, proxy: Any) -> None:
    """Everything in the process looks fine, but no client gets through (here: the
    handover SYN filter left on): only the end-to-end probe can tell."""
    backend = await backends("a")
    port = free_port()
    plane = await proxy(cluster_yaml(port, [backend.address]))
    listener = plane.listeners[("127.0.0.1", port)]
    listener.hold_new(True)
    try:
        await _until(plane, True)
        assert "no answer through 127.0.0.1" in plane.frontend_problems()["web"]
        assert listener.serving() is None
    finally:
        listener.hold_new(False)
    await _until(plane, False)


async def test_a_closed_listener_counts_at_once(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    plane = await proxy(cluster_yaml(port, [backend.address]))
    listener = plane.listeners[("127.0.0.1", port)]
    listener.close_socket()
    assert plane.frontend_problems() == {"web": "listening socket closed"}


async def test_tls_and_tcp_frontends_are_probed(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    web, secure, passthrough = free_port(), free_port(), free_port()
    text = f"""
cluster: probes
certificates: {{site: {pki.path("app.pem")}}}
client_cas: {{root: {pki.path("ca.pem")}}}
frontends:
  - {{name: web, bind: "127.0.0.1:{web}", default_backend: app}}
  - name: secure
    bind: "127.0.0.1:{secure}"
    default_backend: app
    tls: {{certificates: [site], client_auth: {{ca: root, verify: required}}}}
  - {{name: pass, bind: "127.0.0.1:{passthrough}", mode: tcp, default_backend: raw}}
backends:
  - name: app
    servers: [{{name: s1, address: "{backend.address}"}}]
  - name: raw
    mode: tcp
    servers: [{{name: r1, address: "{backend.address}"}}]
"""
    plane = await proxy(text, None)
    await asyncio.sleep(0.8)
    assert plane.frontend_problems() == {}
    for key in (("127.0.0.1", secure), ("127.0.0.1", passthrough)):
        plane.listeners[key].stall(2.0)
    await _until(plane, True)
    assert set(plane.frontend_problems()) == {"secure", "pass"}
    assert plane.meters.frontend("secure").handshakes["aborted"] == 0  # probes not counted


async def test_a_frontend_at_maxconn_is_busy_not_broken(backends: Any, proxy: Any) -> None:
    """At maxconn new clients wait in the backlog, as with HAProxy: serving at capacity
    is not "cannot serve" (else one client holding maxconn idle sockets could make
    the active hand over again and again)."""
    backend = await backends("a")
    port = free_port()
    extra = "    maxconn: 2\n    timeout: {http_request: 30s}"
    plane = await proxy(cluster_yaml(port, [backend.address], frontend_extra=extra))
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    await asyncio.sleep(1.5)  # several probe rounds and stuck checks
    assert plane.frontend_problems() == {}
    for _, writer in held:
        writer.close()
    await served(port)


async def test_a_reload_applies_new_self_check_rise_and_fall(backends: Any, proxy: Any) -> None:
    """self_check fall 100 -> 1 by reload: a frontend that stops answering is noticed
    after one failed probe, not after a hundred counted with the old fall."""
    backend = await backends("a")
    port = free_port()
    base = cluster_yaml(port, [backend.address])
    slow = "self_check: {interval: 100ms, timeout: 100ms, fall: 100, rise: 1}\n"
    plane = await proxy(base + slow)
    await asyncio.sleep(0.5)  # probe states exist, with fall 100
    await plane.reload(parse_cluster(base + slow.replace("fall: 100", "fall: 1")), plane.tls)
    listener = plane.listeners[("127.0.0.1", port)]
    listener.hold_new(True)  # no probe gets through; the accept loop itself is fine
    try:
        await _until(plane, True, limit=8.0)  # 100 failed probes take 20 s
        # Another reload (fall 3) while it cannot serve: it must not look fine meanwhile.
        changed = slow.replace("fall: 100", "fall: 3").replace("interval: 100ms", "interval: 150ms")
        await plane.reload(parse_cluster(base + changed), plane.tls)
        until = time.monotonic() + 1.0  # three failed probes would take ~0.75 s
        while time.monotonic() < until:
            assert plane.frontend_problems(), "after a reload it looked fine"
            await asyncio.sleep(0.02)
    finally:
        listener.hold_new(False)
    await _until(plane, False)


def test_probe_target_follows_the_routing_table_not_bind() -> None:
    """A VIP this host does not hold is not probed (a bind would succeed anyway with
    ip_nonlocal_bind or IP_FREEBIND); loopback and wildcard binds are probed on loopback."""
    from node.config.model import HostPort
    from node.proxy.selfcheck import probe_target

    assert probe_target(HostPort("0.0.0.0", 80)) == "127.0.0.1"
    assert probe_target(HostPort("127.0.0.5", 80)) == "127.0.0.5"
    assert probe_target(HostPort("::", 80)) == "::1"
    assert probe_target(HostPort("192.0.2.1", 80)) is None  # TEST-NET-1: never local here
