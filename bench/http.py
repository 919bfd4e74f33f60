"""HTTP benchmark: HAProxy 2.6 (nbthread 1) and floatgate (one process) side by side,
both logging every request to a file, as operators run them; nginx-light (1 worker) is
the backend and wrk the load.

    .venv/bin/python bench/http.py [--duration 8] [--connections 50,200] [--rounds 3]
                                   [--idle 5000] [--workers N] [--scaling]

With two or more CPUs the proxy under test is pinned to CPU 0 and wrk and nginx to the
others. Rounds alternate the order of the targets; each row is the median of its rounds:
req/s, requests per CPU-second of the proxy's process tree, p50/p99/max latency and
errors (socket errors and non-2xx answers). Rows: nginx direct, HAProxy with
``option httplog`` to a file, floatgate with its default access log to a file, and
floatgate with the access log off. Ratios are printed last, then floatgate's RSS per
idle keep-alive client connection. ``--workers N`` runs floatgate with N worker
processes (node.yaml ``workers``; CPU and RSS count the whole process tree);
``--scaling`` adds floatgate with 1..K workers pinned to K CPUs, with wrk and nginx on
the rest, and each row's requests per CPU-second against one worker's.

Not a test: numbers depend on the machine. Installs nginx-light, haproxy and wrk with
apt-get when missing (as root). Everything listens on 127.0.0.1 and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import common
from common import (
    Load,
    cpu_seconds,
    ensure_tools,
    free_port,
    load,
    start_nginx,
    stop_all,
    wait_port,
)


def start_haproxy(work: Path, port: int, backend: int, cpus: str | None) -> subprocess.Popen[bytes]:
    config = common.HAPROXY_LOGGED.format(port=port, backend=backend, global_extra="",
                                          bind_extra="")  # fmt: skip
    return common.start_haproxy(work, "haproxy-http", config, cpus,
                                stdout=work / "haproxy-access.log")  # fmt: skip


def start_floatgate(
    work: Path, name: str, port: int, backend: int, cpus: str | None, log: bool, workers: int = 0
) -> subprocess.Popen[bytes]:
    return common.start_floatgate(
        work,
        name,
        common.http_cluster(port, backend),
        cpus,
        log=work / f"{name}-access.log" if log else None,
        workers=workers,
    )


async def hold_idle(port: int, count: int, pid: int) -> tuple[int, int]:
    """Open ``count`` keep-alive connections, one request each, keep them idle."""
    before = common.tree_rss_bytes(pid)
    writers = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await reader.readuntil(b"\n\r\n")
        writers.append(writer)
        if i % 1000 == 999:
            print(f"  {i + 1} idle connections open", flush=True)
    await asyncio.sleep(1.0)
    after = common.tree_rss_bytes(pid)
    for writer in writers:
        writer.close()
    return before, after


@dataclass(frozen=True)
class Target:
    label: str
    port: int
    proc: subprocess.Popen[bytes]


@dataclass(frozen=True)
class Round:
    load: Load
    cpu: float  # CPU-seconds of the proxy's process tree during the run

    @property
    def per_cpu_second(self) -> float:
        return self.load.requests / self.cpu if self.cpu > 0 else 0.0


def measure(target: Target, connections: int, duration: int, cpus: str | None) -> Round:
    load(target.port, connections, 2, cpus)  # warm-up
    before = cpu_seconds(target.proc.pid)
    result = load(target.port, connections, duration, cpus)
    return Round(result, cpu_seconds(target.proc.pid) - before)


def median_row(label: str, rounds: list[Round]) -> dict[str, float | str]:
    def mid(values: list[float]) -> float:
        return statistics.median(values)

    return {
        "target": label,
        "rps": mid([r.load.rps for r in rounds]),
        "cpu": mid([r.cpu for r in rounds]),
        "per_cpu": mid([r.per_cpu_second for r in rounds]),
        "p50": mid([r.load.p50 for r in rounds]),
        "p99": mid([r.load.p99 for r in rounds]),
        "max": mid([r.load.max for r in rounds]),
        "errors": sum(r.load.errors for r in rounds),
    }


def print_table(connections: int, rows: list[dict[str, float | str]]) -> None:
    print(f"\n{connections} keep-alive connections (median of the rounds):")
    print(f"{'target':<28}{'req/s':>9}{'CPU s':>7}{'req/CPU-s':>11}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'max ms':>8}{'errors':>7}")  # fmt: skip
    for row in rows:
        cpu = f"{row['cpu']:.1f}" if row["cpu"] else "-"
        per = f"{row['per_cpu']:.0f}" if row["per_cpu"] else "-"
        print(f"{row['target']:<28}{row['rps']:>9.0f}{cpu:>7}{per:>11}{row['p50']:>8.2f}"
              f"{row['p99']:>8.2f}{row['max']:>8.1f}{row['errors']:>7}")  # fmt: skip


def lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        return sum(1 for _ in file)


def ratios(connections: int, rows: list[dict[str, float | str]]) -> str:
    by = {str(r["target"]): r for r in rows}
    fg, ha = by[FLOATGATE], by["HAProxy (httplog to file)"]
    quiet = by[QUIET]

    def ratio(a: dict[str, float | str], b: dict[str, float | str], key: str) -> float:
        return float(a[key]) / float(b[key]) if float(b[key]) else 0.0

    return (
        f"-c{connections}: floatgate/HAProxy req/s {ratio(fg, ha, 'rps'):.2f}, "
        f"req/CPU-s {ratio(fg, ha, 'per_cpu'):.2f}, p99 {ratio(fg, ha, 'p99'):.1f}x HAProxy's; "
        f"floatgate access log on/off req/s {ratio(fg, quiet, 'rps'):.2f}"
    )


FLOATGATE, QUIET = "floatgate (log to file)", "floatgate (no access log)"


def scaling(work: Path, backend: int, usable: list[int], args: argparse.Namespace) -> None:
    """floatgate with 1..K workers on K pinned CPUs (wrk and nginx on the others, so
    K <= usable - 1), logging to a file: req/s and requests per CPU-second, and each
    row's per-CPU-second against one worker's (the coordination tax)."""
    most = len(usable) - 1
    if most < 1:
        print("\nscaling: needs 2 or more CPUs (the proxy's and the load's)")
        return
    others = ",".join(map(str, usable[most:]))
    rows = []
    for count in range(1, most + 1):
        cpus = ",".join(map(str, usable[:count]))
        port = free_port()
        proc = start_floatgate(work, f"scale{count}", port, backend, cpus, True, count)
        try:
            wait_port(port, proc, f"floatgate with {count} workers")
            connections = max(int(c) for c in args.connections.split(","))
            rounds = []
            for number in range(args.rounds):
                print(f"scaling round {number + 1}/{args.rounds}: {count} workers on CPUs "
                      f"{cpus}, wrk -c{connections} ...", flush=True)  # fmt: skip
                rounds.append(measure(Target(f"{count}", port, proc), connections,
                                      args.duration, others))  # fmt: skip
        finally:
            stop_all([proc])
        rows.append(median_row(f"{count} workers on {count} CPUs", rounds))
    print(f"\nscaling (median of the rounds; wrk and nginx on CPUs {others}):")
    print(f"{'workers':<24}{'req/s':>9}{'req/CPU-s':>11}{'vs 1 worker':>13}{'p99 ms':>8}")
    for row in rows:
        tax = float(row["per_cpu"]) / float(rows[0]["per_cpu"]) if rows[0]["per_cpu"] else 0.0
        print(f"{row['target']:<24}{row['rps']:>9.0f}{row['per_cpu']:>11.0f}{tax:>13.2f}"
              f"{row['p99']:>8.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", default="50,200", help="comma-separated counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="floatgate's workers (node.yaml; 0: the node process serves)",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="also floatgate with 1..K workers on K CPUs (K: CPUs - 1)",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.connections.split(",")]
    ensure_tools()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    usable = sorted(os.sched_getaffinity(0))
    proxy_cpu, other_cpus = (
        (str(usable[0]), ",".join(map(str, usable[1:]))) if len(usable) >= 2 else (None, None)
    )
    where = f"proxy on CPU {proxy_cpu}, wrk and nginx on {other_cpus}" if proxy_cpu else "unpinned"
    print(f"{len(usable)} usable CPUs: {where}")
    work = Path(tempfile.mkdtemp(prefix="floatgate-bench-"))
    ports = {name: free_port() for name in ("nginx", "haproxy", "floatgate", "quiet")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_nginx(work, ports["nginx"], other_cpus))
        wait_port(ports["nginx"], procs[-1], "nginx")
        backend = ports["nginx"]
        targets = [Target("nginx direct", backend, procs[-1])]
        procs.append(start_haproxy(work, ports["haproxy"], backend, proxy_cpu))
        targets.append(Target("HAProxy (httplog to file)", ports["haproxy"], procs[-1]))
        procs.append(start_floatgate(work, "fg", ports["floatgate"], backend, proxy_cpu, True,
                                     args.workers))  # fmt: skip
        targets.append(Target(FLOATGATE, ports["floatgate"], procs[-1]))
        floatgate = procs[-1]
        procs.append(start_floatgate(work, "quiet", ports["quiet"], backend, proxy_cpu, False,
                                     args.workers))  # fmt: skip
        targets.append(Target(QUIET, ports["quiet"], procs[-1]))
        for target in targets:
            wait_port(target.port, target.proc, target.label)
        tables: dict[int, list[dict[str, float | str]]] = {}
        for connections in counts:
            rounds: dict[str, list[Round]] = {t.label: [] for t in targets}
            for number in range(args.rounds):
                order = targets if number % 2 == 0 else list(reversed(targets))
                for target in order:
                    print(f"round {number + 1}/{args.rounds}: wrk -c{connections} "
                          f"-d{args.duration}s against {target.label} ...", flush=True)  # fmt: skip
                    rounds[target.label].append(
                        measure(target, connections, args.duration, other_cpus)
                    )
            tables[connections] = [median_row(t.label, rounds[t.label]) for t in targets]
            tables[connections][0]["cpu"] = tables[connections][0]["per_cpu"] = 0.0
        for connections, rows in tables.items():
            print_table(connections, rows)
        print(f"\nlog lines written: floatgate {lines(work / 'fg-access.log')}, "
              f"HAProxy {lines(work / 'haproxy-access.log')}")  # fmt: skip
        print()
        for connections, rows in tables.items():
            print(ratios(connections, rows))
        if args.workers:
            print(f"(floatgate with workers: {args.workers}; CPU and RSS are its process tree)")
        if args.scaling:
            scaling(work, backend, usable, args)
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
