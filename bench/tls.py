"""TLS benchmark: HAProxy 2.6 and floatgate with the same certificate and policy (Mozilla
intermediate, ALPN http/1.1), in one run, against an nginx-light backend:

- new full TLS handshakes per second (``openssl s_time -new``), ECDSA P-256 and RSA-2048;
- HTTPS keep-alive req/s, p50, p99 (wrk, 1 thread, same connections and duration).

    .venv/bin/python bench/tls.py [--duration 8] [--connections 50]

Not a test. One process / one thread each; everything on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from common import ensure_tools, free_port, start_nginx, stop_all, wait_port, wrk

from node.tls.context import INTERMEDIATE_CIPHERS
from node.tls.devca import write_dev_ca


def start_haproxy(work: Path, port: int, backend: int, pem: Path) -> subprocess.Popen[bytes]:
    return common.start_haproxy(
        work,
        f"haproxy-{port}",
        f"""
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-ciphers {INTERMEDIATE_CIPHERS}
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend web
  bind 127.0.0.1:{port} ssl crt {pem} alpn http/1.1
  default_backend app
backend app
  server s1 127.0.0.1:{backend}
""",
    )


def start_floatgate(work: Path, port: int, backend: int, pem: Path) -> subprocess.Popen[bytes]:
    return common.start_floatgate(work, f"cluster-{port}", common.tls_cluster(port, backend, pem))


def handshakes(port: int, seconds: int) -> float:
    """New full handshakes per second (no session reuse), TLS 1.3."""
    out = subprocess.run(
        ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    match = re.search(r"(\d+) connections in ([\d.]+)s", out)
    if not match:
        raise SystemExit(f"openssl s_time gave no result:\n{out}")
    return int(match.group(1)) / float(match.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="floatgate-tls-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pems = {kind: write_dev_ca(work / kind, ("bench.test",), kind)["server.pem"]
                for kind in ("ecdsa", "rsa")}  # fmt: skip
        nginx = free_port()
        procs.append(start_nginx(work, nginx))
        wait_port(nginx, procs[-1], "nginx")
        rows = []
        for kind, pem in pems.items():
            ports = {"haproxy": free_port(), "floatgate": free_port()}
            procs.append(start_haproxy(work, ports["haproxy"], nginx, pem))
            wait_port(ports["haproxy"], procs[-1], "haproxy")
            procs.append(start_floatgate(work, ports["floatgate"], nginx, pem))
            wait_port(ports["floatgate"], procs[-1], "floatgate")
            result = {}
            for name, port in ports.items():
                print(f"{kind}: handshakes and HTTPS keep-alive against {name} ...", flush=True)
                rate = handshakes(port, args.duration)
                wrk(port, args.connections, 2, "https")  # warm-up
                result[name] = (rate, *wrk(port, args.connections, args.duration, "https"))
            rows.append((kind, result))
        print(
            f"\n{'key':<7}{'target':<12}{'handshakes/s':>14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        )
        for kind, result in rows:
            for name, (rate, rps, p50, p99) in result.items():
                print(f"{kind:<7}{name:<12}{rate:>14.0f}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}")
            h = result["floatgate"][0] / result["haproxy"][0]
            r = result["floatgate"][1] / result["haproxy"][1]
            print(f"{kind:<7}{'ratio':<12}{h:>14.2f}{r:>10.2f}   (floatgate/HAProxy)")
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
