"""HTTP/2 benchmark: HAProxy 2.6 (nbthread 1, ``alpn h2,http/1.1``) and floatgate (one
process, ``tls.alpn: [h2, http/1.1]``) side by side with the same certificate, both
logging every request to a file; nginx-light (1 worker) is the backend over HTTP/1.1 and
h2load (nghttp2-client) the load.

    .venv/bin/python bench/http2.py [--duration 8] [--clients 20] [--streams 10]
                                    [--rounds 3]

With two or more CPUs the proxy under test is pinned to CPU 0 and h2load and nginx to
the others. Rounds alternate the order of the targets; each row is the median of its
rounds: req/s, requests per CPU-second of the proxy, p50/p99 latency (from h2load's
per-request log) and failed requests. Ratios are printed last.

Not a test: numbers depend on the machine. Installs nginx-light, haproxy and
nghttp2-client with apt-get when missing (as root). Everything listens on 127.0.0.1
and is stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import common
from common import cpu_seconds, ensure_tools, free_port, pinned, start_nginx, stop_all, wait_port

from node.tls.context import INTERMEDIATE_CIPHERS
from node.tls.devca import write_dev_ca


def start_haproxy(
    work: Path, port: int, backend: int, pem: Path, cpus: str | None
) -> subprocess.Popen[bytes]:
    tls = (f"  ssl-default-bind-ciphers {INTERMEDIATE_CIPHERS}\n"
           "  ssl-default-bind-options ssl-min-ver TLSv1.2")  # fmt: skip
    bind = f" ssl crt {pem} alpn h2,http/1.1"
    config = common.HAPROXY_LOGGED.format(port=port, backend=backend, global_extra=tls,
                                          bind_extra=bind)  # fmt: skip
    return common.start_haproxy(work, "haproxy-h2", config, cpus,
                                stdout=work / "haproxy-access.log")  # fmt: skip


def start_floatgate(
    work: Path, port: int, backend: int, pem: Path, cpus: str | None
) -> subprocess.Popen[bytes]:
    cluster = common.tls_cluster(port, backend, pem, alpn="[h2, http/1.1]")
    return common.start_floatgate(work, "fg-h2", cluster, cpus, log=work / "fg-access.log")


@dataclass(frozen=True)
class Round:
    rps: float
    cpu: float
    p50: float
    p99: float
    done: int
    failed: int

    @property
    def per_cpu_second(self) -> float:
        return self.done / self.cpu if self.cpu > 0 else 0.0


def h2load(
    port: int, clients: int, streams: int, duration: int, cpus: str | None, log: Path | None
) -> tuple[float, int, int, list[float]]:
    """req/s, requests done, failed, and per-request latencies (ms) from h2load."""
    command = ["h2load", "-c", str(clients), "-m", str(streams), "-D", str(duration),
               "-t", "1", f"https://127.0.0.1:{port}/"]  # fmt: skip
    if log is not None:
        command[1:1] = ["--log-file", str(log)]
    out = subprocess.run(pinned(cpus, command), capture_output=True, text=True,
                         timeout=duration + 60, check=False).stdout  # fmt: skip
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed", out)  # fmt: skip
    if not rate or not counts or "Application protocol: h2" not in out:
        raise SystemExit(f"h2load gave no h2 result:\n{out}")
    latencies = []
    if log is not None and log.exists():
        for line in log.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1000)
        log.unlink()
    done, succeeded = int(counts.group(1)), int(counts.group(2))
    return float(rate.group(1)), succeeded, int(counts.group(3)) + done - succeeded, latencies


def measure(
    proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace, cpus: str | None,
    work: Path,
) -> Round:  # fmt: skip
    h2load(port, args.clients, args.streams, 2, cpus, None)  # warm-up
    before = cpu_seconds(proc.pid)
    rps, done, failed, latencies = h2load(port, args.clients, args.streams, args.duration,
                                          cpus, work / "h2load.log")  # fmt: skip
    cpu = cpu_seconds(proc.pid) - before
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0

    return Round(rps, cpu, pct(0.50), pct(0.99), done, failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--clients", type=int, default=20, help="h2load -c: connections")
    parser.add_argument("--streams", type=int, default=10, help="h2load -m: streams each")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_tools()
    if shutil.which("h2load") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "nghttp2-client"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    usable = sorted(os.sched_getaffinity(0))
    proxy_cpu, other_cpus = (
        (str(usable[0]), ",".join(map(str, usable[1:]))) if len(usable) >= 2 else (None, None)
    )
    where = f"proxy on CPU {proxy_cpu}, h2load and nginx on {other_cpus}" if proxy_cpu else (
        "unpinned")  # fmt: skip
    print(f"{len(usable)} usable CPUs: {where}")
    work = Path(tempfile.mkdtemp(prefix="floatgate-h2-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pem = write_dev_ca(work / "ca", ("bench.test",), "ecdsa")["server.pem"]
        nginx = free_port()
        procs.append(start_nginx(work, nginx, other_cpus))
        wait_port(nginx, procs[-1], "nginx")
        ports = {"HAProxy (httplog to file)": free_port(), "floatgate (log to file)": free_port()}
        haproxy_port, floatgate_port = ports.values()
        procs.append(start_haproxy(work, haproxy_port, nginx, pem, proxy_cpu))
        wait_port(haproxy_port, procs[-1], "haproxy")
        procs.append(start_floatgate(work, floatgate_port, nginx, pem, proxy_cpu))
        wait_port(floatgate_port, procs[-1], "floatgate")
        targets = list(zip(ports.items(), procs[1:], strict=True))
        rounds: dict[str, list[Round]] = {label: [] for label in ports}
        for number in range(args.rounds):
            order = targets if number % 2 == 0 else list(reversed(targets))
            for (label, port), proc in order:
                load = f"h2load -c{args.clients} -m{args.streams} -D{args.duration}"
                print(f"round {number + 1}/{args.rounds}: {load} against {label} ...", flush=True)
                rounds[label].append(measure(proc, port, args, other_cpus, work))
        mid = statistics.median
        print(f"\nh2load -c{args.clients} -m{args.streams} (median of {args.rounds} rounds):")
        print(f"{'target':<28}{'req/s':>9}{'CPU s':>7}{'req/CPU-s':>11}{'p50 ms':>8}"
              f"{'p99 ms':>8}{'failed':>8}")  # fmt: skip
        rows = {}
        for label, results in rounds.items():
            row = rows[label] = {
                "rps": mid(r.rps for r in results), "cpu": mid(r.cpu for r in results),
                "per_cpu": mid(r.per_cpu_second for r in results),
                "p50": mid(r.p50 for r in results), "p99": mid(r.p99 for r in results),
                "failed": sum(r.failed for r in results),
            }  # fmt: skip
            print(f"{label:<28}{row['rps']:>9.0f}{row['cpu']:>7.1f}{row['per_cpu']:>11.0f}"
                  f"{row['p50']:>8.2f}{row['p99']:>8.2f}{row['failed']:>8}")  # fmt: skip
        fg, ha = rows["floatgate (log to file)"], rows["HAProxy (httplog to file)"]
        print(f"\nfloatgate/HAProxy over h2: req/s {fg['rps'] / ha['rps']:.2f}, "
              f"req/CPU-s {fg['per_cpu'] / ha['per_cpu']:.2f}, "
              f"p99 {fg['p99'] / ha['p99']:.1f}x HAProxy's")  # fmt: skip
        logged = {name: _lines(work / f"{name}-access.log") for name in ("fg", "haproxy")}
        print(f"log lines written: floatgate {logged['fg']}, HAProxy {logged['haproxy']}")
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        return sum(1 for _ in file)


if __name__ == "__main__":
    sys.exit(main())
