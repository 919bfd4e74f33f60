"""Helpers shared by the benchmarks: ports, tools, nginx, wrk, process RSS."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def http_cluster(port: int, backend: int) -> str:
    """The cluster.yaml of the HTTP benchmarks: one frontend, one nginx server."""
    return f"""
cluster: bench
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: app, maxconn: 20000}}
backends:
  - name: app
    servers:
      - {{name: s1, address: "127.0.0.1:{backend}"}}
"""


def tls_cluster(port: int, backend: int, pem: Path, alpn: str = "[http/1.1]") -> str:
    """The cluster.yaml of the TLS benchmarks: one TLS frontend, one nginx server."""
    return f"""
cluster: bench
certificates: {{site: {pem}}}
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: app
    maxconn: 20000
    tls: {{certificates: [site], alpn: {alpn}}}
backends:
  - {{name: app, servers: [{{name: s1, address: "127.0.0.1:{backend}"}}]}}
"""


# HAProxy's side of the HTTP benchmarks: one thread, every request logged (to stdout,
# which start_haproxy sends to a file), keep-alive both ways.
HAPROXY_LOGGED = """
global
  nbthread 1
  maxconn 8000
  log stdout format raw local0 info
{global_extra}
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend web
  bind 127.0.0.1:{port}{bind_extra}
  default_backend app
backend app
  server s1 127.0.0.1:{backend}
"""


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


def start_nginx(work: Path, port: int, cpus: str | None = None) -> subprocess.Popen[bytes]:
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
    return subprocess.Popen(pinned(cpus, ["nginx", "-c", str(conf), "-p", str(work / "nginx"),
                                          "-g", "daemon off;"]),
                            stderr=subprocess.DEVNULL)  # fmt: skip


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


@dataclass(frozen=True)
class Load:
    """One wrk run: throughput, latency (ms) and what went wrong."""

    rps: float
    requests: int
    p50: float
    p99: float
    max: float
    errors: int  # socket errors (connect, read, write, timeout) and non-2xx/3xx answers


def load(port: int, connections: int, duration: int, cpus: str | None = None) -> Load:
    """Keep-alive GET / with one wrk thread (pinned to ``cpus`` when given)."""
    out = subprocess.run(
        pinned(cpus, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                      f"http://127.0.0.1:{port}/"]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    value, unit = latency.groups()  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        rps=rps,
        requests=requests,
        p50=_latency(out, "50%"),
        p99=_latency(out, "99%"),
        max=float(value) * _UNITS[unit],
        errors=errors + (int(bad.group(1)) if bad else 0),
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


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


def start_haproxy(
    work: Path, name: str, config: str, cpus: str | None = None, stdout: Path | None = None
) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground with ``config`` written to WORK/NAME.cfg; its stdout
    (``log stdout``) to ``stdout`` when given."""
    path = work / f"{name}.cfg"
    path.write_text(config)
    out = stdout.open("ab") if stdout is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            pinned(cpus, ["haproxy", "-f", str(path), "-db"]),
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    finally:
        if stdout is not None:
            out.close()  # type: ignore[union-attr]


def start_floatgate(
    work: Path,
    name: str,
    cluster_yaml: str,
    cpus: str | None = None,
    log: Path | None = None,
    workers: int = 0,
) -> subprocess.Popen[bytes]:
    """``floatgate run`` with WORK/NAME.yaml, pinned to ``cpus`` when given (its
    workers inherit the pinning); without ``log`` the access log is off, with it
    node.yaml's default access log goes to that file. ``workers``: node.yaml's."""
    path = work / f"{name}.yaml"
    path.write_text(cluster_yaml)
    command = [sys.executable, "-m", "node.cli", "--log-level", "INFO", "run", "--cluster",
               str(path)]  # fmt: skip
    if log is None:
        command.append("--no-access-log")
    text = f"name: {name}\nworkers: {workers}\n"
    if log is not None:
        text += f"access_log: {{target: {log}}}\n"
    if log is not None or workers:
        node = work / f"{name}-node.yaml"
        node.write_text(text)
        command += ["--node", str(node)]
    return subprocess.Popen(pinned(cpus, command), cwd=REPO, stderr=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL)  # fmt: skip


def pinned(cpus: str | None, command: list[str]) -> list[str]:
    """``command`` run on the CPUs ``cpus`` (taskset -c; exec, so the PID is the same)."""
    return ["taskset", "-c", cpus, *command] if cpus else command


def _tree(pid: int) -> list[list[str]]:
    """/proc/N/stat fields (from the state on) of ``pid`` and its live descendants."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        stats[child] = fields
    found = []
    for child, fields in stats.items():
        walk = child
        while walk > 1 and walk != pid:
            walk = parents.get(walk, 0)
        if walk == pid:
            found.append(fields)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and all its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for f in _tree(pid))


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its live descendants (worker processes)."""
    return sum(int(f[21]) for f in _tree(pid)) * os.sysconf("SC_PAGE_SIZE")
