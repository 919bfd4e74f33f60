"""Real etcd processes for tests: single members on free loopback ports, with a
temporary data directory, stopped by PID."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port


@dataclass(frozen=True)
class EtcdTlsSetup:
    """Client TLS for a test etcd: its server certificate, the CA that signs clients
    (etcd then requires a client certificate), and a client certificate for etcdctl."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


class EtcdProcess:
    def __init__(
        self,
        name: str = "t1",
        tls: EtcdTlsSetup | None = None,
        root_password: str | None = None,
        election_timeout_ms: int = 100,
    ) -> None:
        """``election_timeout_ms``: etcd's --election-timeout (heartbeat a tenth of it);
        its minimum lease TTL is ceil(1.5 x that)."""
        self.name = name
        self.tls = tls
        self.auth: tuple[str, str] | None = None
        self.client_port, self.peer_port = free_port(), free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="floatgate-etcd-"))
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"
        scheme = "https" if tls else "http"
        client = f"{scheme}://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        secure = [] if tls is None else [
            "--cert-file", tls.server_cert, "--key-file", tls.server_key,
            "--client-cert-auth", "--trusted-ca-file", tls.ca]  # fmt: skip
        self.proc = subprocess.Popen(
            ["etcd", "--name", name, "--data-dir", str(self.data_dir),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
             "--election-timeout", str(election_timeout_ms),
             "--heartbeat-interval", str(max(10, election_timeout_ms // 5)), *secure],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
        )  # fmt: skip
        self._wait_ready()
        if root_password is not None:
            self.etcdctl("user", "add", f"root:{root_password}")
            self.etcdctl("auth", "enable")
            self.auth = ("root", root_password)

    def etcdctl(self, *args: str) -> str:
        flags = [f"--endpoints=127.0.0.1:{self.client_port}"]
        if self.tls is not None:
            flags += [f"--cacert={self.tls.ca}", f"--cert={self.tls.client_cert}",
                      f"--key={self.tls.client_key}"]  # fmt: skip
        if self.auth is not None:
            flags.append(f"--user={self.auth[0]}:{self.auth[1]}")
        result = subprocess.run(["etcdctl", *flags, *args], capture_output=True, text=True,
                                env={"ETCDCTL_API": "3"}, timeout=10)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log.read_text()[-2000:]}")
            try:
                self.etcdctl("endpoint", "health")
                return
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log.unlink(missing_ok=True)


class EtcdCluster:
    """A 3-member etcd cluster on loopback (members started together: quorum)."""

    def __init__(self, size: int = 3) -> None:
        self.members: list[dict[str, object]] = []
        peers = []
        for index in range(size):
            member = {"name": f"m{index}", "client": free_port(), "peer": free_port(),
                      "dir": Path(tempfile.mkdtemp(prefix="floatgate-etcd-"))}  # fmt: skip
            peers.append(f"m{index}=http://127.0.0.1:{member['peer']}")
            self.members.append(member)
        for member in self.members:
            client, peer = (
                f"http://127.0.0.1:{member['client']}",
                f"http://127.0.0.1:{member['peer']}",
            )
            member["proc"] = subprocess.Popen(
                ["etcd", "--name", str(member["name"]), "--data-dir", str(member["dir"]),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", ",".join(peers), "--initial-cluster-state", "new",
                 "--election-timeout", "100", "--heartbeat-interval", "20"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        endpoints = ",".join(f"127.0.0.1:{m['client']}" for m in self.members)
        while time.monotonic() < deadline:
            result = subprocess.run(["etcdctl", f"--endpoints={endpoints}", "endpoint", "health"],
                                    capture_output=True, env={"ETCDCTL_API": "3"})  # fmt: skip
            if result.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the 3-member etcd cluster did not become healthy")

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", int(str(m["client"]))) for m in self.members]

    def kill(self, index: int) -> None:
        proc = self.members[index]["proc"]
        assert isinstance(proc, subprocess.Popen)
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for member in self.members:
            proc = member.get("proc")
            if isinstance(proc, subprocess.Popen) and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            shutil.rmtree(str(member["dir"]), ignore_errors=True)
