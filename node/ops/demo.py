"""``floatgate demo``: two local backends, a real ``floatgate run`` in front of them,
and requests showing the balancing; then a backend is stopped to show health checks
and failover to the remaining server. Everything on 127.0.0.1, cleaned up at the end."""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

_CONFIG = """\
cluster: demo
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: app
    forwardfor: true
backends:
  - name: app
    balance: roundrobin
    check: {{type: http, path: /health, interval: 300ms, rise: 1, fall: 1}}
    servers:
      - {{name: blue, address: "127.0.0.1:{blue}"}}
      - {{name: green, address: "127.0.0.1:{green}"}}
"""


async def _backend(name: str, port: int) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text=f"hello from {name} (you are {request.headers.get('X-Forwarded-For')})\n"
        )

    app = web.Application()
    app.router.add_route("*", "/{t:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if proc.returncode is not None:
            raise RuntimeError("floatgate exited during start-up")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"floatgate did not start listening on {port}")


async def _requests(port: int, count: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    async with aiohttp.ClientSession() as client:
        for i in range(count):
            async with client.get(f"http://127.0.0.1:{port}/demo/{i}") as response:
                text = (await response.text()).strip()
                print(f"  request {i + 1:2d}: {response.status} {text}")
                seen[text.split(" ")[2] if response.status == 200 else str(response.status)] += 1
    return seen


async def _demo(count: int, port: int) -> int:
    blue, green = port + 1, port + 2
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-demo-"))
    config = workdir / "cluster.yaml"
    config.write_text(_CONFIG.format(port=port, blue=blue, green=green))
    runners = {"blue": await _backend("blue", blue), "green": await _backend("green", green)}
    print(f"1. Two backends: blue on 127.0.0.1:{blue}, green on 127.0.0.1:{green}")
    print(f"2. floatgate run --cluster {config}  (listening on 127.0.0.1:{port})")
    log = (workdir / "floatgate.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", "run", "--cluster", str(config), stdout=log, stderr=log
    )
    try:
        await _wait_listening(port, proc)
        print(f"3. {count} requests through floatgate (round-robin):")
        seen = await _requests(port, count)
        print(f"   balanced: {dict(seen)}")
        print("4. Stopping backend 'green'; the health check takes it out of rotation...")
        await runners.pop("green").cleanup()
        await asyncio.sleep(1.0)
        seen = await _requests(port, 4)
        print(f"   after failover: {dict(seen)}")
        ok = set(seen) == {"blue"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for runner in runners.values():
            await runner.cleanup()
        log.close()
    print(f"5. floatgate stopped (exit {proc.returncode}). Its log: {workdir / 'floatgate.log'}")
    lines = [line for line in (workdir / "floatgate.log").read_text().splitlines()
             if "is DOWN" in line or "floatgate.access" in line][-3:]  # fmt: skip
    for line in lines:
        print(f"   {line}")
    return 0 if ok and proc.returncode == 0 else 1


def run_demo(count: int = 12, port: int = 18080) -> int:
    started = time.monotonic()
    try:
        code = asyncio.run(_demo(count, port))
    except (OSError, RuntimeError) as exc:
        print(f"demo failed: {exc} (is port {port}..{port + 2} free? try --port)", file=sys.stderr)
        return 1
    print(f"demo finished in {time.monotonic() - started:.1f}s: {'OK' if code == 0 else 'FAILED'}")
    return code
