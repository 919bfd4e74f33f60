"""Profile floatgate's HTTP request path under wrk load with py-spy.

    .venv/bin/python bench/profile_http.py [--duration 8] [--connections 50]
                                           [--log | --no-log] [--out DIR]

floatgate (one process, the same cluster.yaml as bench/http.py) is pinned to CPU 0,
wrk and nginx to CPU 1. py-spy samples the proxy for ``--duration`` seconds while wrk
loads it, and writes OUT/profile.txt (collapsed stacks, one line per stack and its
sample count). The summary printed last is the share of samples each function appears
in (inclusive) and is the top of a stack in (self), over the event loop's thread: the
table docs/BENCHMARKS.md keeps. py-spy
leaves out samples of a thread waiting in the kernel; ``--native`` adds C frames
(libc's write and read are the syscalls) but pauses the proxy for each sample.

Not a test: installs py-spy into the running interpreter's environment if missing.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import ensure_tools, free_port, load, start_nginx, stop_all, wait_port


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
        found = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    assert found is not None, "py-spy did not install"
    return found


def summarize(collapsed: Path, top: int) -> list[str]:
    """Inclusive and self shares per function from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        if "Thread._bootstrap" in stack:
            continue  # another thread (the access-log writer): the event loop's only
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", f"{'incl %':>7} {'self %':>7}  function"]
    for frame, count in inclusive.most_common(top):
        lines.append(f"{100 * count / total:7.1f} {100 * own[frame] / total:7.1f}  {frame}")
    lines.append("")
    lines.append("top self:")
    for frame, count in own.most_common(top):
        lines.append(f"{100 * count / total:7.1f}  {frame}")
    return lines


def _short(frame: str) -> str:
    """'handle (node/proxy/http/handler.py:123)' -> 'handle (node/proxy/http/handler.py)'"""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{common.REPO}/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--log", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--native", action="store_true",
        help="C frames too (py-spy pauses the proxy for each sample: slower)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    ensure_tools()
    spy = py_spy()
    cpus = os.sched_getaffinity(0)
    proxy_cpu, load_cpus = ("0", "1") if len(cpus) >= 2 else (None, None)
    out = args.out or Path(tempfile.mkdtemp(prefix="floatgate-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="floatgate-bench-") as tmp:
        work = Path(tmp)
        try:
            backend = free_port()
            procs.append(start_nginx(work, backend, load_cpus))
            port = free_port()
            proxy = common.start_floatgate(
                work, "fg", common.http_cluster(port, backend), proxy_cpu,
                log=work / "fg-access.log" if args.log else None,
            )  # fmt: skip
            procs.append(proxy)
            wait_port(port, proxy, "floatgate")
            load(port, args.connections, 2, load_cpus)  # warm-up
            collapsed = out / "profile.txt"
            mode = ["--native"] if args.native else ["--nonblocking"]
            spy_proc = subprocess.Popen(
                [spy, "record", "--pid", str(proxy.pid), "--duration", str(args.duration),
                 "--rate", "250", *mode, "--format", "raw", "--output", str(collapsed)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)
            result = load(port, args.connections, args.duration, load_cpus)
            spy_proc.wait(timeout=args.duration + 30)
            print(f"wrk -c{args.connections}: {result.requests / args.duration:.0f} req/s "
                  f"while sampled (sampling slows the proxy)")  # fmt: skip
        finally:
            stop_all(procs)
    for line in summarize(collapsed, args.top):
        print(line)
    print(f"\ncollapsed stacks: {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
