"""Helpers shared by the benchmarks: ports, tools, nginx, wrk, process RSS."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_tools() -> None:
    needed = {"nginx": "nginx-light", "haproxy": "haproxy", "wrk": "wrk"}
    missing = [pkg for tool, pkg in needed.items() if shutil.which(tool) is None]
    if missing:
        print(f"installing {' '.join(missing)} ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start-up (code {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def start_nginx(work: Path, port: int) -> subprocess.Popen[bytes]:
    (work / "nginx").mkdir()
    conf = work / "nginx" / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {work}/nginx;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ return 200 "hello from nginx\\n"; }}
  }}
}}
""")
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work / "nginx"),
                             "-g", "daemon off;"], stderr=subprocess.DEVNULL)  # fmt: skip


def wrk(
    port: int, connections: int, duration: int, scheme: str = "http"
) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) for keep-alive GET / with one wrk thread."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, _latency(out, "50%"), _latency(out, "99%")


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process we started (by PID), then wait; kill what lingers."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_haproxy(work: Path, name: str, config: str) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground with ``config`` written to WORK/NAME.cfg."""
    path = work / f"{name}.cfg"
    path.write_text(config)
    return subprocess.Popen(["haproxy", "-f", str(path), "-db"], stderr=subprocess.DEVNULL)


def start_floatgate(work: Path, name: str, cluster_yaml: str) -> subprocess.Popen[bytes]:
    """``floatgate run`` (one process, no access log) with WORK/NAME.yaml."""
    path = work / f"{name}.yaml"
    path.write_text(cluster_yaml)
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "--log-level", "WARNING", "run", "--cluster",
         str(path), "--no-access-log"],
        cwd=REPO, stderr=subprocess.DEVNULL,
    )  # fmt: skip
