"""Ansible against the namespace lab: three etcd hosts and two floatgate nodes, each a
network namespace, reached with ``ansible_connection=local`` and a per-host Python that
enters the host's namespace (``ip netns exec``). The hosts share one filesystem, so
every path a role writes is prefixed with a per-host root (``etcd_root``,
``floatgate_root``), and services run under start-stop-daemon (there is no systemd in
the lab): ``*_service_manager: lab``. floatgate is installed offline from a wheelhouse
built here, as on an air-gapped site.

    python -m deploy.lab.ansible_lab WORKDIR   # site.yml, then prints how to reach it
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.lab.netlab import ETCD_HOSTS, HOSTS, REPO, SwitchedLab, lab_cluster_yaml

ANSIBLE = REPO / "ansible"
NODES = ("n1", "n2")


class AnsibleLab:
    def __init__(self, workdir: Path, tag: str = "") -> None:
        self.workdir = workdir
        self.lab = SwitchedLab(workdir, etcd_members=3, tag=tag or f"fga{os.getpid() % 10000}")
        self.inventory = workdir / "inventory.yml"

    def root(self, host: str) -> Path:
        return self.workdir / "hosts" / host

    def prepare(self, wheelhouse: Path | None = None) -> None:
        """Namespaces, a backend, and the controller's files: PKI, secret, token,
        cluster.yaml, wheelhouse, interpreter wrappers, inventory."""
        from node.bundle.secret import generate
        from node.tls.devca import write_etcd_pki

        self.lab.up()
        self.lab.start("web", "web", sys.executable, "-m", "http.server", "8080",
                       "--bind", HOSTS["web"])  # fmt: skip
        files = self.workdir / "files"
        write_etcd_pki(files / "etcd-pki", {h: HOSTS[h] for h in ETCD_HOSTS}, (*NODES, "ops"),
                       {n: HOSTS[n] for n in NODES})  # fmt: skip
        generate(files / "cluster.secret")
        (files / "admin.token").write_text("lab-ansible-token\n")
        (files / "admin.token").chmod(0o600)
        cluster = files / "cluster"
        cluster.mkdir(parents=True)
        # the LAN profile lets etcd grant the 1 s leases of lease_ttl: 1s
        (cluster / "cluster.yaml").write_text(lab_cluster_yaml(lease_ttl="1s"))
        if wheelhouse is None:
            wheelhouse = self.workdir / "wheelhouse"
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir",
                            str(wheelhouse), "-c", str(REPO / "constraints.txt"), str(REPO)],
                           check=True, timeout=600, capture_output=True)  # fmt: skip
        bin_dir = self.workdir / "bin"
        bin_dir.mkdir()
        hosts: dict[str, dict[str, dict[str, object]]] = {"etcd": {}, "floatgate": {}}
        for host in (*ETCD_HOSTS, *NODES):
            wrapper = bin_dir / f"python-{host}"
            wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {self.lab.ns[host]} '
                               f'/usr/bin/python3 "$@"\n')  # fmt: skip
            wrapper.chmod(0o755)
            common = {"ansible_connection": "local", "ansible_python_interpreter": str(wrapper)}
            if host in ETCD_HOSTS:  # inventory names differ from the group's name
                hosts["etcd"][f"lab-{host}"] = {**common, "etcd_address": HOSTS[host],
                                                "etcd_name": host,
                                                "etcd_root": str(self.root(host))}  # fmt: skip
            else:
                hosts["floatgate"][host] = {
                    **common, "floatgate_address": HOSTS[host],
                    "floatgate_root": str(self.root(host)),
                    "floatgate_priority": 900 if host == "n1" else 100,
                }  # fmt: skip
        lab_vars = {
            "etcd_pki_source": str(files / "etcd-pki"), "etcd_install": False,
            "etcd_user": "root", "etcd_service_manager": "lab",
            "etcd_profile": "lan",
            "floatgate_etcd_pki_source": str(files / "etcd-pki"),
            "floatgate_secret_source": str(files / "cluster.secret"),
            "floatgate_admin_token_source": str(files / "admin.token"),
            "floatgate_cluster_source": str(cluster), "floatgate_cluster_name": "lab",
            "floatgate_service_manager": "lab", "floatgate_install_packages": False,
            "floatgate_wheelhouse": str(wheelhouse), "floatgate_log_format": "text",
        }  # fmt: skip
        document = {"all": {"vars": lab_vars, "children": {
            group: {"hosts": members} for group, members in hosts.items()}}}  # fmt: skip
        self.inventory.write_text(json.dumps(document, indent=1))  # JSON is YAML

    def playbook(
        self, name: str, *extra: str, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        binary = Path(sys.executable).parent / "ansible-playbook"
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
               "ANSIBLE_REMOTE_TEMP": str(self.workdir / "ansible-remote-tmp")}  # fmt: skip
        return subprocess.run(
            [str(binary), "-i", str(self.inventory), str(ANSIBLE / name), *extra],
            cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def admin_curl(self) -> list[str]:
        """curl with what the nodes' admin APIs require (admin.tls, client certificates):
        the lab CA and the operator's client certificate."""
        pki = self.workdir / "files" / "etcd-pki"
        return ["curl", "--cacert", str(pki / "ca.pem"), "--cert", str(pki / "ops-client.pem"),
                "--key", str(pki / "ops-client.key")]  # fmt: skip

    def client(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.lab.ns["client"], *argv],
                              capture_output=True, text=True, timeout=30)  # fmt: skip

    def service_pids(self) -> dict[Path, int]:
        pids = {}
        for pidfile in self.workdir.glob("hosts/*/run/*/*.pid"):
            try:
                pids[pidfile] = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
        return pids

    def stop_services(self) -> None:
        """Stop what the roles started, by the PIDs in their pidfiles (after checking the
        PID still runs etcd or floatgate)."""
        live = {}
        for pidfile, pid in self.service_pids().items():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"etcd" in cmdline or b"floatgate" in cmdline:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
                live[pidfile] = pid
        deadline = time.monotonic() + 15
        while live and time.monotonic() < deadline:
            live = {f: p for f, p in live.items() if Path(f"/proc/{p}").exists()}
            time.sleep(0.1)
        for pid in live.values():
            os.kill(pid, signal.SIGKILL)

    def down(self) -> None:
        self.stop_services()
        self.lab.down()


def main() -> int:
    workdir = Path(sys.argv[1]).resolve()
    workdir.mkdir(parents=True, exist_ok=False)
    lab = AnsibleLab(workdir)
    lab.prepare()
    done = lab.playbook("site.yml")
    print(done.stdout[-4000:], done.stderr[-2000:])
    print(
        f"inventory: {lab.inventory}; stop with: python -c 'from deploy.lab.ansible_lab "
        f"import AnsibleLab; ...' (or delete the namespaces {sorted(lab.lab.ns.values())})"
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
