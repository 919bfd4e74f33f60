"""The floatgate lab (used by tests/cluster, the README demo and benchmarks).

A switched network-namespace lab: a bridge namespace as the switch and one namespace
per host (etcd, two floatgate nodes, a backend, a client), on 10.199.2.0/24, which
exists only inside these namespaces. Processes run inside with ``ip netns exec`` and
are stopped by PID; everything is deleted on exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def run(*argv: str, check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


HOSTS = {"etcd": "10.199.2.5", "n1": "10.199.2.11", "n2": "10.199.2.12",
         "web": "10.199.2.21", "client": "10.199.2.100"}  # fmt: skip
VIP = "10.199.2.50"


class SwitchedLab:
    def __init__(self, workdir: Path) -> None:
        tag = f"fgl{os.getpid() % 100000}"
        self.ns = {name: f"{tag}{name}" for name in [*HOSTS, "sw"]}
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def up(self) -> None:
        self.down()
        for ns in self.ns.values():
            run("ip", "netns", "add", ns)
        sw = self.ns["sw"]
        run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", sw, "link", "set", "br0", "up")
        for index, (host, address) in enumerate(HOSTS.items()):
            ns, port = self.ns[host], f"p{index}"
            run(
                "ip",
                "link",
                "add",
                "eth0",
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                sw,
            )
            run("ip", "-n", sw, "link", "set", port, "master", "br0")
            run("ip", "-n", sw, "link", "set", port, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")

    def start_cluster(self) -> None:
        """Lab up, then etcd, a backend (python http.server), floatgate n1 (priority
        900) until it holds the VIP, then n2 (priority 100) until it runs as standby.
        Started one after the other so n1 is always the first active (start-up times
        vary more than priority delays; priorities are tested on their own)."""
        self.up()
        self.start("etcd", "etcd", *etcd_argv(self.workdir / "etcd-data"))
        web = HOSTS["web"]
        self.start("web", "web", sys.executable, "-m", "http.server", "8080", "--bind", web)
        time.sleep(1.0)
        for name, priority in (("n1", 900), ("n2", 100)):
            cluster_yaml, node_yaml = node_files(self.workdir, name, priority)
            self.start(name, name, *floatgate_argv(cluster_yaml, node_yaml))
            if name == "n1":
                wait_for(lambda: self.holders() == ["n1"], 30, "n1 to hold the VIP")
        wait_for(lambda: "running in cluster" in self.log("n2"), 30, "n2 to start")
        time.sleep(0.5)  # n2's first election ticks: it sees n1 as leader

    def start(self, name: str, host: str, *argv: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("w")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[host], *argv],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.procs[name] = proc  # `ip netns exec` execs: this PID is the program's
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text()

    def holders(self) -> list[str]:
        """Which nodes have the VIP on their interface right now."""
        found = []
        for host in ("n1", "n2"):
            out = run("ip", "-n", self.ns[host], "-j", "-4", "addr", "show", "dev", "eth0")
            if any(a.get("local") == VIP for link in json.loads(out or "[]")
                   for a in link.get("addr_info", [])):  # fmt: skip
                found.append(host)
        return found

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.procs[name].send_signal(sig)

    def down(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        for ns in self.ns.values():
            run("ip", "netns", "del", ns, check=False)


def node_files(workdir: Path, name: str, priority: int) -> tuple[Path, Path]:
    cluster = workdir / "cluster.yaml"
    cluster.write_text(f"""
cluster: lab
election: {{lease_ttl: 2s, nopreempt: true, min_healthy_backends: 1}}
vip: {{address: {VIP}/24, garp: {{count: 3, interval: 100ms}}}}
shutdown_grace: 2s
frontends:
  - {{name: web, bind: "{VIP}:80", default_backend: app}}
backends:
  - name: app
    check: {{type: http, path: /, interval: 500ms, rise: 1, fall: 2}}
    servers: [{{name: web1, address: "{HOSTS["web"]}:8080"}}]
""")
    token = workdir / "admin.token"
    token.write_text("lab-secret-token\n")
    node = workdir / f"{name}.yaml"
    node.write_text(f"""
name: {name}
etcd: {{endpoints: ["http://{HOSTS["etcd"]}:2379"]}}
interface: eth0
priority: {priority}
admin: {{listen: "{HOSTS[name]}:9100", token_file: {token}}}
""")
    return cluster, node


def floatgate_argv(cluster: Path, node: Path) -> list[str]:
    return [sys.executable, "-m", "node.cli", "run", "--cluster", str(cluster), "--node", str(node)]


def etcd_argv(data_dir: Path) -> list[str]:
    client = f"http://{HOSTS['etcd']}:2379"
    return ["etcd", "--name", "e1", "--data-dir", str(data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "e1=http://127.0.0.1:2380",
            "--election-timeout", "100", "--heartbeat-interval", "20"]  # fmt: skip


def wait_for(predicate: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started
