"""HTTP benchmark: nginx-light (1 worker) as the backend; wrk against the backend
directly, HAProxy 2.6 (nbthread 1, keep-alive, http-reuse always) and floatgate (one
process), same connections and duration, in one run. Prints req/s, p50, p99 and the
floatgate/HAProxy ratio, then floatgate's RSS per idle keep-alive client connection.

    .venv/bin/python bench/http.py [--duration 10] [--connections 50] [--idle 5000]

Not a test: numbers depend on the machine. Installs nginx-light, haproxy and wrk with
apt-get when missing (as root). Everything listens on 127.0.0.1 and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from common import (
    ensure_tools,
    free_port,
    start_nginx,
    stop_all,
    wait_port,
    wrk,
)


def start_haproxy(work: Path, port: int, backend: int) -> subprocess.Popen[bytes]:
    return common.start_haproxy(
        work,
        "haproxy-http",
        f"""
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend web
  bind 127.0.0.1:{port}
  default_backend app
backend app
  server s1 127.0.0.1:{backend}
""",
    )


def start_floatgate(work: Path, port: int, backend: int) -> subprocess.Popen[bytes]:
    return common.start_floatgate(
        work,
        "cluster-http",
        f"""
cluster: bench
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: app, maxconn: 20000}}
backends:
  - name: app
    servers:
      - {{name: s1, address: "127.0.0.1:{backend}"}}
""",
    )


async def hold_idle(port: int, count: int, pid: int) -> tuple[int, int]:
    """Open ``count`` keep-alive connections, one request each, keep them idle."""
    before = common.rss_bytes(pid)
    writers = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await reader.readuntil(b"\n\r\n")
        writers.append(writer)
        if i % 1000 == 999:
            print(f"  {i + 1} idle connections open", flush=True)
    await asyncio.sleep(1.0)
    after = common.rss_bytes(pid)
    for writer in writers:
        writer.close()
    return before, after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--idle", type=int, default=5000)
    args = parser.parse_args()
    ensure_tools()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = Path(tempfile.mkdtemp(prefix="floatgate-bench-"))
    ports = {name: free_port() for name in ("nginx", "haproxy", "floatgate")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_nginx(work, ports["nginx"]))
        wait_port(ports["nginx"], procs[-1], "nginx")
        procs.append(start_haproxy(work, ports["haproxy"], ports["nginx"]))
        wait_port(ports["haproxy"], procs[-1], "haproxy")
        procs.append(start_floatgate(work, ports["floatgate"], ports["nginx"]))
        floatgate = procs[-1]
        wait_port(ports["floatgate"], floatgate, "floatgate")
        results = {}
        for name in ("nginx", "haproxy", "floatgate"):
            print(f"wrk -t1 -c{args.connections} -d{args.duration}s against {name} ...",
                  flush=True)  # fmt: skip
            wrk(ports[name], args.connections, 2)  # warm-up
            results[name] = wrk(ports[name], args.connections, args.duration)
        print()
        print(f"{'target':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        labels = {"nginx": "nginx direct", "haproxy": "HAProxy 2.6 (1 thread)",
                  "floatgate": "floatgate (1 process)"}  # fmt: skip
        for name, (rps, p50, p99) in results.items():
            print(f"{labels[name]:<22}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
        ratio = results["floatgate"][0] / results["haproxy"][0]
        print(f"\nfloatgate/HAProxy req/s ratio: {ratio:.2f}")
        if args.idle:
            print(f"\nopening {args.idle} idle keep-alive connections to floatgate ...")
            before, after = asyncio.run(hold_idle(ports["floatgate"], args.idle, floatgate.pid))
            per = (after - before) / args.idle
            print(f"floatgate RSS {before >> 20} MiB -> {after >> 20} MiB: "
                  f"{per / 1024:.1f} KiB per idle connection")  # fmt: skip
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
