"""Passthrough benchmark: a 1 GiB HTTPS download through HAProxy 2.6 (mode tcp,
nbthread 1) and through floatgate (mode tcp, one process), in one run. nginx-light
terminates TLS and serves the file; curl downloads it to /dev/null. Prints MB/s and
the floatgate/HAProxy ratio (and the direct rate for reference).

    .venv/bin/python bench/passthrough.py [--size-mib 1024] [--runs 2]

Not a test. Everything on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from common import ensure_tools, free_port, stop_all, wait_port

from node.tls.devca import write_dev_ca


def start_nginx_tls(work: Path, port: int, pem: Path, root: Path) -> subprocess.Popen[bytes]:
    conf = work / "nginx-tls.conf"
    conf.write_text(f"""
worker_processes 1;
pid {work}/nginx-tls.pid;
error_log {work}/nginx-tls.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {pem};
    ssl_certificate_key {pem};
    root {root};
  }}
}}
""")
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work), "-g", "daemon off;"],
                            stderr=subprocess.DEVNULL)  # fmt: skip


def start_haproxy(work: Path, port: int, backend: int) -> subprocess.Popen[bytes]:
    return common.start_haproxy(
        work,
        "haproxy-tcp",
        f"""
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend pass
  bind 127.0.0.1:{port}
  tcp-request inspect-delay 5s
  tcp-request content accept if {{ req_ssl_hello_type 1 }}
  use_backend tls if {{ req_ssl_sni -i bench.test }}
backend tls
  server s1 127.0.0.1:{backend}
""",
    )


def start_floatgate(work: Path, port: int, backend: int) -> subprocess.Popen[bytes]:
    return common.start_floatgate(
        work,
        "cluster-tcp",
        f"""
cluster: bench
frontends:
  - name: pass
    bind: "127.0.0.1:{port}"
    mode: tcp
    routes: [{{sni: bench.test, backend: tls}}]
    timeout: {{client: 60s}}
backends:
  - {{name: tls, mode: tcp, servers: [{{name: s1, address: "127.0.0.1:{backend}"}}]}}
""",
    )


def download(port: int, ca: Path) -> float:
    """MB/s (10^6 bytes) for one download of /big through ``port``."""
    out = subprocess.run(
        ["curl", "-fsS", "-o", "/dev/null", "-w", "%{speed_download}", "--cacert", str(ca),
         "--resolve", f"bench.test:{port}:127.0.0.1", f"https://bench.test:{port}/big"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    return float(out) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="floatgate-pass-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        paths = write_dev_ca(work / "pki", ("bench.test",))
        work.chmod(0o755)  # nginx workers (www-data) read the file and the certificate
        root = work / "www"
        root.mkdir(mode=0o755)
        with (root / "big").open("wb") as big:  # real bytes, not a sparse file
            block = bytes(range(256)) * 4096
            for _ in range(args.size_mib):
                big.write(block)
        (root / "big").chmod(0o644)
        for path in (work / "pki", paths["server.pem"]):
            path.chmod(0o755 if path.is_dir() else 0o644)
        ports = {"direct": free_port(), "haproxy": free_port(), "floatgate": free_port()}
        procs.append(start_nginx_tls(work, ports["direct"], paths["server.pem"], root))
        wait_port(ports["direct"], procs[-1], "nginx")
        procs.append(start_haproxy(work, ports["haproxy"], ports["direct"]))
        wait_port(ports["haproxy"], procs[-1], "haproxy")
        procs.append(start_floatgate(work, ports["floatgate"], ports["direct"]))
        wait_port(ports["floatgate"], procs[-1], "floatgate")
        results: dict[str, float] = {}
        for name, port in ports.items():
            print(f"{args.size_mib} MiB through {name} x{args.runs} ...", flush=True)
            results[name] = max(download(port, paths["ca.pem"]) for _ in range(args.runs))
        print(f"\n{'path':<24}{'MB/s':>10}")
        labels = {"direct": "nginx direct (TLS)", "haproxy": "HAProxy 2.6 mode tcp",
                  "floatgate": "floatgate mode tcp"}  # fmt: skip
        for name, rate in results.items():
            print(f"{labels[name]:<24}{rate:>10.0f}")
        print(f"\nfloatgate/HAProxy MB/s ratio: {results['floatgate'] / results['haproxy']:.2f}")
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
