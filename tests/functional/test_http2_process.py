"""HTTP/2 in a real ``floatgate run`` (uvloop, access log, metrics, one worker process
or two) with the clients operators use: curl, nghttp and h2load (nghttp2-client)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.cluster.browser import Browser, trust_keys_flag
from tests.conftest import FloatgateProcess, free_port
from tests.functional.pki import Pki
from tests.functional.test_access_log import _lines
from tests.functional.test_observability import _scrape, _value
from tests.tools import require_tool


def _cluster(port: int, backend: str, pki: Pki) -> str:
    return f"""
cluster: edge
certificates: {{blog: {pki.path("app.pem")}}}
client_cas: {{private_ca: {pki.path("ca.pem")}}}
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    tls:
      certificates: [blog]
      alpn: [h2, http/1.1]
      client_auth: {{ca: private_ca, verify: optional}}
    rules:
      - if: {{path_beg: /ghost/, client_cert: false}}
        redirect: {{location: /, code: 302}}
    default_backend: app
backends:
  - {{name: app, servers: [{{name: s0, address: "{backend}"}}]}}
"""


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("workers", [0, 2])
async def test_curl_nghttp_and_h2load_over_a_real_process(
    tmp_path: Path,
    backends: Any,
    pki: Pki,
    floatgate_process: Callable[..., FloatgateProcess],
    workers: int,
) -> None:
    backend = await backends("app")
    port, admin = free_port(), free_port()
    log = tmp_path / "access.log"
    node = tmp_path / "node.yaml"
    node.write_text(f'name: n1\nworkers: {workers}\nadmin: {{listen: "127.0.0.1:{admin}"}}\n'
                    f"access_log: {{target: {log}}}\n")  # fmt: skip
    process = floatgate_process(
        _cluster(port, backend.address, pki), run_args=("--node", str(node))
    )
    await asyncio.to_thread(process.wait_listening, port)
    await asyncio.to_thread(process.wait_listening, admin)
    url = f"https://app.test:{port}"
    resolve = ("--resolve", f"app.test:{port}:127.0.0.1", "--cacert", pki.path("ca.pem"))

    curl = await asyncio.to_thread(_run, "curl", "-sS", "-i", "--http2", *resolve, f"{url}/blog")
    assert curl.stdout.startswith("HTTP/2 200"), curl.stdout + curl.stderr
    redirect = await asyncio.to_thread(_run, "curl", "-sS", "-i", "--http2", *resolve,
                                       f"{url}/ghost/x")  # fmt: skip
    assert redirect.stdout.startswith("HTTP/2 302") and "location: /\n" in redirect.stdout
    alice = await asyncio.to_thread(_run, "curl", "-sS", "-i", "--http2", *resolve, "--cert",
                                    pki.path("client.pem"), f"{url}/ghost/x")  # fmt: skip
    assert alice.stdout.startswith("HTTP/2 200"), alice.stdout + alice.stderr

    nghttp = await asyncio.to_thread(
        _run, "nghttp", "-nv", f"https://127.0.0.1:{port}/a", f"https://127.0.0.1:{port}/b"
    )
    assert nghttp.returncode == 0, nghttp.stdout[-2000:] + nghttp.stderr
    assert nghttp.stdout.count(":status: 200") == 2
    assert "recv SETTINGS frame" in nghttp.stdout

    h2load = await asyncio.to_thread(
        _run, "h2load", "-n", "400", "-c", "4", "-m", "10", f"https://127.0.0.1:{port}/load"
    )
    assert h2load.returncode == 0, h2load.stdout + h2load.stderr
    assert re.search(r"requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed",
                     h2load.stdout), h2load.stdout  # fmt: skip
    assert "Application protocol: h2" in h2load.stdout

    lines = await asyncio.to_thread(_lines, log, 405)
    assert any('"GET /blog HTTP/2.0"' in line and " 200 " in line for line in lines), lines[:5]
    assert sum('"GET /load HTTP/2.0"' in line for line in lines) == 400

    async def counted() -> float:
        metrics = await asyncio.to_thread(_scrape, admin)
        return _value(metrics, "floatgate_frontend_protocol_requests_total", frontend="web",
                      protocol="h2") or 0.0  # fmt: skip

    for _ in range(50):  # worker counters reach the node process every few hundred ms
        if await counted() >= 405:
            break
        await asyncio.sleep(0.1)
    assert await counted() == 405
    assert process.stop() == 0


GIB = 1 << 30


def _peak_rss(pid: int) -> int:
    """VmHWM (the process's peak resident memory so far), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_a_gib_up_and_down_one_stream_keeps_memory_flat(
    tmp_path: Path, backends: Any, floatgate_process: Callable[..., FloatgateProcess]
) -> None:
    """Flow control both ways: 1 GiB uploaded and 1 GiB downloaded over one h2 stream
    each, through a real process; its peak RSS grows by a few MiB, not by the body."""
    received = [0]

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.method == "PUT":
            async for data in request.content.iter_any():
                received[0] += len(data)
            return web.Response(text=f"{received[0]}")
        response = web.StreamResponse(headers={"Content-Length": str(GIB)})
        await response.prepare(request)
        block = b"z" * (1 << 20)
        for _ in range(GIB // len(block)):
            await response.write(block)
        await response.write_eof()
        return response

    backend = await backends("big", serve)
    port = free_port()
    process = floatgate_process(
        f"""
cluster: c
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: app, http2: {{cleartext: true}}}}
backends:
  - {{name: app, servers: [{{name: s0, address: "{backend.address}"}}]}}
"""
    )
    await asyncio.to_thread(process.wait_listening, port)
    small = await asyncio.to_thread(_run, "curl", "-sS", "--http2-prior-knowledge",
                                    f"http://127.0.0.1:{port}/warm")  # fmt: skip
    assert small.returncode == 0
    before = _peak_rss(process.proc.pid)
    down = await asyncio.to_thread(
        _run, "curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
        "%{http_version} %{size_download}", f"http://127.0.0.1:{port}/down",
    )  # fmt: skip
    assert down.stdout == f"2 {GIB}", down.stdout + down.stderr
    up = await asyncio.to_thread(
        subprocess.run,
        f"head -c {GIB} /dev/zero | curl -sS --http2-prior-knowledge -T - "
        f"http://127.0.0.1:{port}/up",
        shell=True, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert up.stdout == str(GIB), up.stdout + up.stderr
    grown = _peak_rss(process.proc.pid) - before
    assert grown < 48 << 20, f"peak RSS grew by {grown >> 20} MiB moving 2 GiB"


async def test_chromium_loads_the_status_page_over_h2(
    tmp_path: Path, pki: Pki, floatgate_process: Callable[..., FloatgateProcess]
) -> None:
    """A real browser through an h2 frontend whose backend is the node's own admin API:
    the page and each of its polls (fetch /cluster) go over HTTP/2, and the page fills."""
    chromium = require_tool("chromium", "chromium")
    port, admin = free_port(), free_port()
    node = tmp_path / "node.yaml"
    node.write_text(f'name: n1\nadmin: {{listen: "127.0.0.1:{admin}"}}\n')
    text = _cluster(port, f"127.0.0.1:{admin}", pki)
    process = floatgate_process(text, run_args=("--node", str(node)))
    await asyncio.to_thread(process.wait_listening, port)
    await asyncio.to_thread(process.wait_listening, admin)
    trust = trust_keys_flag(Path(pki.path("app.pem")))
    browser = Browser(chromium, flags=(trust, "--host-resolver-rules=MAP app.test 127.0.0.1"))
    try:
        browser.open(f"https://app.test:{port}/")

        def page_state() -> Any:
            return browser.evaluate(
                "JSON.stringify({served: document.getElementById('served-by').textContent,"
                " frontends: document.querySelectorAll('#frontends tr').length,"
                " nav: performance.getEntriesByType('navigation').map(e => e.nextHopProtocol),"
                " polls: performance.getEntriesByType('resource')"
                "   .filter(e => e.name.endsWith('/cluster')).map(e => e.nextHopProtocol)})"
            )

        state: dict[str, Any] = {}
        for _ in range(100):
            state = json.loads(await asyncio.to_thread(page_state) or "{}")
            if state.get("served") == "n1" and len(state.get("polls", [])) >= 2:
                break
            await asyncio.sleep(0.2)
        assert state.get("served") == "n1", state
        assert state["nav"] == ["h2"] and set(state["polls"]) == {"h2"}, state
        assert state["frontends"] >= 1
        assert browser.errors == [], browser.errors
    finally:
        await asyncio.to_thread(browser.close)
