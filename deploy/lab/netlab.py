"""The floatgate lab (used by tests/cluster, the README demo and benchmarks).

A switched network-namespace lab: a bridge namespace as the switch and one namespace
per host (etcd, two floatgate nodes, a backend, a client), on 10.199.2.0/24, which
exists only inside these namespaces. Processes run inside with ``ip netns exec`` and
are stopped by PID; everything is deleted on exit.

The nodes' admin APIs serve HTTPS (``admin.tls``, verify: none) with certificates from
a lab CA in ``<workdir>/admin-pki`` (``ca.pem``, ``<node>-admin.pem/.key``): the admin
token is only ever sent over TLS. Reach them with :meth:`SwitchedLab.admin_curl` and
:func:`admin_url`."""

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


HOSTS = {"etcd": "10.199.2.5", "etcd2": "10.199.2.6", "etcd3": "10.199.2.7",
         "n1": "10.199.2.11", "n2": "10.199.2.12", "n3": "10.199.2.13",
         "web": "10.199.2.21", "client": "10.199.2.100",
         "acme": "10.199.2.30"}  # an ACME CA (Pebble) for the ACME lab test  # fmt: skip
ETCD_HOSTS = ("etcd", "etcd2", "etcd3")
VIP = "10.199.2.50"
ADMIN_PORT = 9100
NODES = ("n1", "n2", "n3")  # a lab runs the first two, or all three
PRIORITIES = {"n1": 900, "n2": 100, "n3": 50}


def admin_url(node: str, path: str = "") -> str:
    """A node's admin API (HTTPS: the lab nodes have admin.tls)."""
    return f"https://{HOSTS[node]}:{ADMIN_PORT}{path}"


def admin_pki_dir(workdir: Path) -> Path:
    """The lab's admin CA and node certificates, made on first use."""
    pki = workdir / "admin-pki"
    if not (pki / "ca.pem").exists():
        write_admin_pki(pki)
    return pki


def write_admin_pki(out: Path) -> None:
    """With the project's own dev CA code: ca.pem and, per node, <node>-admin.pem/.key
    (its address and name as SANs; server use for its listener, client use towards the
    other node's)."""
    from node.tls.devca import write_etcd_pki as write_pki

    write_pki(out, {}, (), {node: HOSTS[node] for node in NODES})


def admin_tls_yaml(pki: Path, name: str) -> str:
    """The ``admin.tls`` flow mapping for node ``name``: HTTPS, no client certificates
    required (curl, Prometheus and the browser in the tests bring none)."""
    return (f"{{cert: {pki / f'{name}-admin.pem'}, key: {pki / f'{name}-admin.key'}, "
            f"ca: {pki / 'ca.pem'}, verify: none}}")  # fmt: skip


class SwitchedLab:
    """``etcd_members``: 1 or 3 (each in its own namespace); ``etcd_tls``: etcd serves
    clients over TLS and requires a client certificate (a lab CA in the workdir)."""

    def __init__(
        self,
        workdir: Path,
        etcd_members: int = 1,
        etcd_tls: bool = False,
        tag: str = "",
        etcd_loss: str = "release",
        arp_probe: str = "50ms",
        lease_ttl: str = "2s",
        fence: str = "bpf",
        nodes: int = 2,
        workers: int = 0,
    ) -> None:
        tag = tag or f"fgl{os.getpid() % 100000}"
        self.nodes = NODES[:nodes]
        self.ns = {name: f"{tag}{name}" for name in [*HOSTS, "sw"]}
        self.workdir = workdir
        self.etcd_members = etcd_members
        self.etcd_tls = etcd_tls
        self.etcd_loss = etcd_loss
        self.arp_probe = arp_probe
        self.lease_ttl = lease_ttl
        self.fence = fence
        self.workers = workers  # node.yaml workers: on every node
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
        900) until it holds the VIP, then n2 (priority 100) and, with ``nodes=3``, n3
        (priority 50) until they run as standbys.
        Started one after the other so n1 is always the first active (start-up times
        vary more than priority delays; priorities are tested on their own)."""
        self.up()
        self.start_etcd()
        web = HOSTS["web"]
        self.start("web", "web", sys.executable, "-m", "http.server", "8080", "--bind", web)
        # the backend answers before any node checks it: a node whose first checks of a
        # backend still starting fail would hand the VIP over during the start
        wait_for(self._web_answers, 20, "the lab backend to answer")
        for name in self.nodes:
            priority = PRIORITIES[name]
            endpoints, tls = self.etcd_endpoints(), self.etcd_tls_files
            cluster_yaml, node_yaml = node_files(
                self.workdir,
                name,
                priority,
                endpoints,
                tls,
                self.etcd_loss,
                self.arp_probe,
                self.lease_ttl,
                self.fence,
                self.workers,
            )
            self.start(name, name, *floatgate_argv(cluster_yaml, node_yaml))
            if name == "n1":
                wait_for(lambda: self.holders() == ["n1"], 30, "n1 to hold the VIP")
        for name in self.nodes[1:]:
            wait_for(lambda n=name: "running in cluster" in self.log(n), 30, f"{name} to start")
        time.sleep(0.5)  # the standbys' first election ticks: they see n1 as leader

    @property
    def etcd_tls_files(self) -> dict[str, str] | None:
        if not self.etcd_tls:
            return None
        pki = self.workdir / "pki"
        return {"ca": str(pki / "ca.pem"), "cert": str(pki / "client.pem"),
                "key": str(pki / "client.key")}  # fmt: skip

    def etcd_endpoints(self) -> list[str]:
        scheme = "https" if self.etcd_tls else "http"
        return [f"{scheme}://{HOSTS[h]}:2379" for h in ETCD_HOSTS[: self.etcd_members]]

    def start_etcd(self) -> None:
        hosts = ETCD_HOSTS[: self.etcd_members]
        if self.etcd_tls:
            write_etcd_pki(self.workdir / "pki", [HOSTS[h] for h in hosts])
        cluster = ",".join(f"{h}=http://{HOSTS[h]}:2380" for h in hosts)
        pki = self.workdir / "pki" if self.etcd_tls else None
        for host in hosts:
            data = self.workdir / f"{host}-data"
            self.start(host, host, *etcd_argv(host, data, cluster, pki))
        wait_for(self._etcd_healthy, 30, "etcd to be healthy")

    def _web_answers(self) -> bool:
        result = subprocess.run(["ip", "netns", "exec", self.ns["client"], "curl", "-sf", "-m",
                                 "1", "-o", "/dev/null", f"http://{HOSTS['web']}:8080/"],
                                capture_output=True, timeout=10)  # fmt: skip
        return result.returncode == 0

    def _etcd_healthy(self) -> bool:
        flags = [f"--endpoints={','.join(self.etcd_endpoints())}"]
        if self.etcd_tls_files:
            files = self.etcd_tls_files
            flags += [f"--cacert={files['ca']}", f"--cert={files['cert']}", f"--key={files['key']}"]
        result = subprocess.run(["ip", "netns", "exec", self.ns["client"], "etcdctl", *flags,
                                 "endpoint", "health"], capture_output=True,
                                env={**os.environ, "ETCDCTL_API": "3"}, timeout=30)  # fmt: skip
        return result.returncode == 0

    def start(self, name: str, host: str, *argv: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("w")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[host], *argv],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.procs[name] = proc  # `ip netns exec` execs: this PID is the program's
        return proc

    @property
    def admin_pki(self) -> Path:
        return admin_pki_dir(self.workdir)

    def admin_curl(self) -> list[str]:
        """curl trusting the lab's admin CA (prefix of a command run in a namespace)."""
        return ["curl", "--cacert", str(self.admin_pki / "ca.pem")]

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text()

    def events(self, name: str, chars: int = 4000) -> str:
        """The end of a node's log without its access-log lines (under a probe they
        would fill any tail a failed test prints)."""
        lines = [line for line in self.log(name).splitlines() if " floatgate.access: " not in line]
        return "\n".join(lines)[-chars:]

    def etcd_events(self, chars: int = 3000) -> dict[str, str]:
        """Each etcd member's warnings and leader changes (the end of them): what a
        failed lab test prints next to the nodes' logs."""
        found = {}
        for host in ETCD_HOSTS[: self.etcd_members]:
            path = self.workdir / f"{host}.log"
            if path.exists():
                lines = [line for line in path.read_text(errors="replace").splitlines()
                         if '"level":"warn"' in line or "leader" in line]  # fmt: skip
                found[host] = "\n".join(lines)[-chars:]
        return found

    def holders(self) -> list[str]:
        """Which nodes have the VIP on their interface right now."""
        found = []
        for host in self.nodes:
            out = run("ip", "-n", self.ns[host], "-j", "-4", "addr", "show", "dev", "eth0")
            if any(a.get("local") == VIP for link in json.loads(out or "[]")
                   for a in link.get("addr_info", [])):  # fmt: skip
                found.append(host)
        return found

    def admin_status(self, node: str) -> dict[str, object]:
        """A node's /status over HTTPS, read from the client namespace."""
        out = run("ip", "netns", "exec", self.ns["client"], *self.admin_curl(), "-sf", "-m",
                  "3", admin_url(node, "/status"))  # fmt: skip
        return json.loads(out)  # type: ignore[no-any-return]

    def mac(self, host: str) -> str:
        out = run("ip", "-n", self.ns[host], "-j", "link", "show", "dev", "eth0")
        return str(json.loads(out)[0]["address"])

    def start_arp_watch(self) -> subprocess.Popen[bytes]:
        """The client asks for the VIP's MAC every 50 ms and records who answers."""
        return self.start("arpwatch", "client", sys.executable, "-m", "deploy.lab.arp_watch",
                          "eth0", HOSTS["client"], VIP)  # fmt: skip

    def arp_claims(self, proc: subprocess.Popen[bytes]) -> list[tuple[float, str]]:
        proc.terminate()
        proc.wait(10)
        lines = self.log("arpwatch").strip().splitlines()
        return [(float(t), str(m)) for t, m in json.loads(lines[-1])] if lines else []

    def restart_node(self, name: str) -> None:
        """Start node ``name`` again with its files (after a kill); its log is appended."""
        log = (self.workdir / f"{name}.log").open("a")
        cluster, node = self.workdir / "cluster.yaml", self.workdir / f"{name}.yaml"
        self.procs[name] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[name], *floatgate_argv(cluster, node)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

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


def node_files(
    workdir: Path,
    name: str,
    priority: int,
    endpoints: list[str] | None = None,
    tls: dict[str, str] | None = None,
    etcd_loss: str = "release",
    arp_probe: str = "50ms",
    lease_ttl: str = "2s",
    fence: str = "bpf",
    workers: int = 0,
) -> tuple[Path, Path]:
    endpoints = endpoints or [f"http://{HOSTS['etcd']}:2379"]
    tls_line = ("  tls: {" + ", ".join(f"{k}: {v}" for k, v in tls.items()) + "}\n") if tls else ""
    cluster = workdir / "cluster.yaml"
    cluster.write_text(lab_cluster_yaml(etcd_loss, arp_probe, lease_ttl, fence))
    token = workdir / "admin.token"
    token.write_text("lab-secret-token\n")
    tls_admin = admin_tls_yaml(admin_pki_dir(workdir), name)
    node = workdir / f"{name}.yaml"
    node.write_text(f"""
name: {name}
etcd:
  endpoints: {json.dumps(endpoints)}
{tls_line}interface: eth0
priority: {priority}
workers: {workers}
data_dir: {workdir / f"{name}-data"}
admin: {{listen: "{HOSTS[name]}:{ADMIN_PORT}", token_file: {token}, tls: {tls_admin}}}
""")
    return cluster, node


def lab_cluster_yaml(
    etcd_loss: str = "release", arp_probe: str = "50ms", lease_ttl: str = "2s", fence: str = "bpf"
) -> str:
    """The lab's cluster.yaml: the VIP, TTL 2 s, one HTTP frontend (HTTP/1.1, and HTTP/2
    with prior knowledge), the web backend."""
    return f"""cluster: lab
election: {{lease_ttl: {lease_ttl}, nopreempt: true, min_healthy_backends: 1,
           etcd_loss: {etcd_loss}}}
vip: {{address: {VIP}/24, arp_probe: {arp_probe}, fence: {fence},
      garp: {{count: 3, interval: 100ms}}}}
shutdown_grace: 2s
frontends:
  - {{name: web, bind: "{VIP}:80", default_backend: app, http2: {{cleartext: true}}}}
backends:
  - name: app
    check: {{type: http, path: /, interval: 500ms, rise: 1, fall: 3}}
    servers: [{{name: web1, address: "{HOSTS["web"]}:8080"}}]
"""


def floatgate_argv(cluster: Path, node: Path) -> list[str]:
    return [sys.executable, "-m", "node.cli", "run", "--cluster", str(cluster), "--node", str(node)]


def etcd_argv(host: str, data_dir: Path, cluster: str, pki: Path | None) -> list[str]:
    address = HOSTS[host]
    client = f"{'https' if pki else 'http'}://{address}:2379"
    peer = f"http://{address}:2380"
    secure = [] if pki is None else [
        "--cert-file", str(pki / f"{host}.pem"), "--key-file", str(pki / f"{host}.key"),
        "--client-cert-auth", "--trusted-ca-file", str(pki / "ca.pem")]  # fmt: skip
    return ["etcd", "--name", host, "--data-dir", str(data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--election-timeout", "100", "--heartbeat-interval", "20", *secure]  # fmt: skip


def write_etcd_pki(out: Path, addresses: list[str]) -> None:
    """A lab CA, a server certificate per etcd member (IP SAN) and one client
    certificate the nodes and the CLI present (etcd --client-cert-auth)."""
    from node.tls.devca import cert_pem, issue, key_pem

    out.mkdir(parents=True, exist_ok=True)
    ca = issue("floatgate lab etcd CA", None, ca=True)
    client = issue("floatgate-node", ca, client=True)
    files = {"ca.pem": cert_pem(ca.cert), "client.pem": cert_pem(client.cert),
             "client.key": key_pem(client.key)}  # fmt: skip
    for host, address in zip(ETCD_HOSTS, addresses, strict=False):
        server = issue(f"etcd {host}", ca, names=(address,))
        files[f"{host}.pem"], files[f"{host}.key"] = cert_pem(server.cert), key_pem(server.key)
    for name, data in files.items():
        (out / name).write_bytes(data)
        (out / name).chmod(0o600)


def wait_for(predicate: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started
