"""Observability of a real `floatgate run` process: /metrics (checked by promtool),
the status page and its JSON, and JSON logs. Cluster metrics are checked in the lab."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import subprocess
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import FloatgateProcess, free_port
from tests.functional.pki import Pki
from tests.tools import require_tool


def _scrape(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/plain; version=0.0.4" in head
    return body.decode()


def _value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if metric.split("{")[0] == name and found == labels:
            return float(value)
    return None


@pytest.fixture
async def node(
    tmp_path: Path, pki: Pki, backends: Any, floatgate_process: Callable[..., FloatgateProcess]
) -> dict[str, Any]:
    a, b = await backends("a"), await backends("b")
    web, secure, admin = free_port(), free_port(), free_port()
    (tmp_path / "node.yaml").write_text(
        f'name: n1\nadmin: {{listen: "127.0.0.1:{admin}"}}\nlog_format: json\n'
    )
    cluster = f"""
cluster: obs
certificates: {{app: app.pem}}
frontends:
  - name: web
    bind: "127.0.0.1:{web}"
    default_backend: app
  - name: secure
    bind: "127.0.0.1:{secure}"
    tls: {{certificates: [app]}}
    default_backend: app
backends:
  - name: app
    check: {{type: tcp, interval: 100ms, rise: 1, fall: 1}}
    servers:
      - {{name: a, address: "{a.address}"}}
      - {{name: b, address: "{b.address}"}}
"""
    process = floatgate_process(
        cluster, run_args=("--node", str(tmp_path / "node.yaml"), "--certs", str(pki.dir))
    )
    await asyncio.to_thread(process.wait_listening, admin)
    await asyncio.to_thread(process.wait_listening, secure)
    return {"web": web, "secure": secure, "admin": admin, "process": process, "b": b}


async def test_metrics_count_what_clients_did_and_pass_promtool(
    node: dict[str, Any], pki: Pki
) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(f"http://127.0.0.1:{node['web']}/x?user=1") as reply:
                assert reply.status == 200
        context = ssl.create_default_context(cafile=pki.path("ca.pem"))
        for _ in range(2):
            url = f"https://app.test:{node['secure']}/"
            resolver = aiohttp.TCPConnector(ssl=context, resolver=_Local(), force_close=True)
            async with aiohttp.ClientSession(connector=resolver) as tls_session:
                async with tls_session.get(url) as reply:
                    assert reply.status == 200
    # a malformed request (400) and a failed handshake (plain text on the TLS port)
    bad = ((node["web"], b"GARBAGE\r\n\r\n"), (node["secure"], b"GET / HTTP/1.1\r\n\r\n"))
    for port, data in bad:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
    await asyncio.sleep(0.2)
    text = await asyncio.to_thread(_scrape, node["admin"])

    assert _value(text, "floatgate_frontend_http_requests_total", frontend="web", code="2xx") == 5
    assert _value(text, "floatgate_frontend_http_requests_total", frontend="web", code="4xx") == 1
    assert _value(text, "floatgate_frontend_request_errors_total", frontend="web") == 1
    secure = {"frontend": "secure"}
    assert _value(text, "floatgate_frontend_http_requests_total", **secure, code="2xx") == 2
    assert _value(text, "floatgate_tls_handshakes_total", frontend="secure", result="ok") == 2
    assert _value(text, "floatgate_tls_handshakes_total", frontend="secure", result="failed") == 1
    # one keep-alive connection for the five requests, one for the malformed request
    assert _value(text, "floatgate_frontend_connections_total", frontend="web") == 2
    assert (_value(text, "floatgate_frontend_bytes_in_total", frontend="web") or 0) > 5 * 30
    assert (_value(text, "floatgate_frontend_bytes_out_total", frontend="web") or 0) >= 5
    assert _value(text, "floatgate_backend_response_time_seconds_count", backend="app") == 7
    assert _value(text, "floatgate_backend_http_responses_total", backend="app", code="2xx") == 7
    assert _value(text, "floatgate_backend_status", backend="app") == 1
    assert _value(text, "floatgate_backend_active_servers", backend="app") == 2
    assert _value(text, "floatgate_server_status", backend="app", server="a") == 1
    assert _value(text, "floatgate_node_role", role="standalone") == 1
    assert _value(text, "floatgate_node_role", role="active") == 0
    assert _value(text, "floatgate_frontend_current_sessions", frontend="web") == 0
    expiry = _value(text, "floatgate_tls_certificate_expiry_timestamp_seconds", certificate="app")
    assert expiry is not None
    app_cert = pki.dir / "app.pem"
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(app_cert.read_bytes())
    assert expiry == leaf.not_valid_after_utc.timestamp()
    # bounded labels: no client address, no path or query string in any label value
    labels = set(re.findall(r'="([^"]*)"', text))
    assert not any("127.0.0.1" in v or "/x" in v or "user" in v for v in labels), labels

    promtool = require_tool("promtool", "prometheus")
    check = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


async def test_server_going_down_is_counted(node: dict[str, Any]) -> None:
    await node["b"].runner.cleanup()  # server b stops answering its TCP check
    text = ""
    for _ in range(50):
        await asyncio.sleep(0.1)
        text = await asyncio.to_thread(_scrape, node["admin"])
        if _value(text, "floatgate_server_status", backend="app", server="b") == 0:
            break
    assert _value(text, "floatgate_server_status", backend="app", server="b") == 0
    assert _value(text, "floatgate_server_check_up_down_total", backend="app", server="b") == 1
    assert _value(text, "floatgate_server_check_up_down_total", backend="app", server="a") == 0
    assert _value(text, "floatgate_backend_active_servers", backend="app") == 1
    assert _value(text, "floatgate_backend_status", backend="app") == 1


async def test_status_page_is_self_contained_and_status_json_has_frontends(
    node: dict[str, Any],
) -> None:
    base = f"http://127.0.0.1:{node['admin']}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{node['web']}/") as reply:
            assert reply.status == 200
        async with session.get(f"{base}/") as reply:
            assert reply.status == 200
            assert reply.content_type == "text/html"
            page = await reply.text()
        async with session.get(f"{base}/cluster") as reply:
            cluster = await reply.json()
    assert "<script>" in page and 'fetch("/cluster"' in page
    # no external assets: nothing is loaded from another origin
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "@import" not in page
    assert cluster["served_by"] == "n1"
    own = cluster["nodes"]["n1"]
    assert own["role"] == "standalone" and own["cluster"] == "obs"
    # the version: in /status (so in /cluster), on the page's footer, in build_info
    assert own["version"] == version("floatgate")
    assert '<span id="version">' in page and "own.version" in page
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as reply:
        assert f'floatgate_build_info{{version="{own["version"]}"}} 1.0' in await reply.text()
    web = next(f for f in own["frontends"] if f["frontend"] == "web")
    assert web["requests_total"] == 1 and web["responses"]["2xx"] == 1
    assert {s["server"] for s in own["backends"]} == {"a", "b"}


async def test_json_logs_carry_structured_access_fields(node: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{node['web']}/json-log") as reply:
            assert reply.status == 200
    process: FloatgateProcess = node["process"]
    for _ in range(50):
        lines = process.log.read_text().splitlines()
        access = [json.loads(x) for x in lines if '"event": "access"' in x]
        if access:
            break
        await asyncio.sleep(0.1)
    for line in lines:
        json.loads(line)  # every line is one JSON object
    entry = access[0]
    assert entry["request"] == "GET /json-log HTTP/1.1"
    assert entry["status"] == 200 and entry["frontend"] == "web" and entry["level"] == "info"
    assert {"tq_ms", "tw_ms", "tc_ms", "tr_ms", "tt_ms", "server", "ts"} <= set(entry)


class _Local(aiohttp.abc.AbstractResolver):
    """Resolve every name to 127.0.0.1 (SNI and verification use the real name)."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]  # fmt: skip

    async def close(self) -> None:
        return None
