"""A real ACME CA for the tests: Pebble (Let's Encrypt's test server, Debian package
``pebble``) with pebble-challtestsrv as its DNS, which resolves every name to the
address floatgate answers http-01 on. Optionally inside a lab namespace.

Pebble makes a new root for every start; :meth:`Pebble.root` fetches it so that only
the test's client trusts it. The directory's own TLS certificate comes from a dev CA
made here (``directory_ca`` in cluster.yaml)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from node.tls.devca import write_dev_ca
from tests.tools import require_tool


@dataclass
class Pebble:
    host: str
    port: int  # the ACME directory's
    management: int
    dns_port: int
    dns_management: int
    ca_file: Path  # what the directory's TLS certificate chains to
    netns: str | None
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def directory(self) -> str:
        return f"https://{self.host}:{self.port}/dir"

    def _command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def _fetch(self, url: str, data: bytes | None = None) -> bytes:
        """GET (or POST ``data``) from where Pebble runs (curl in the namespace, if any)."""
        if self.netns is None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            request = urllib.request.Request(url, data=data)
            with urllib.request.urlopen(request, timeout=5, context=context) as answer:
                return bytes(answer.read())
        argv = ["curl", "-sSf", "--max-time", "5", "--cacert", str(self.ca_file), url]
        if data is not None:
            argv += ["--data-binary", data.decode()]
        return subprocess.run(self._command(*argv), capture_output=True, check=True,
                              timeout=10).stdout  # fmt: skip

    def root(self) -> bytes:
        """Pebble's root for this run (PEM): the only trust anchor of the test client."""
        return self._fetch(f"https://{self.host}:{self.management}/roots/0")

    def point(self, name: str, address: str) -> None:
        """Resolve ``name`` to ``address`` from now on (a DNS name pointing elsewhere)."""
        body = json.dumps({"host": name, "addresses": [address]}).encode()
        self._fetch(f"http://{self.host}:{self.dns_management}/add-a", body)

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the CA: its clients' requests hang until it thaws."""
        self.procs[-1].send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()

    def start(self, work: Path, resolve_to: str, http_port: int = 80) -> Pebble:
        """Start challtestsrv and Pebble; returns once the directory answers."""
        pebble = require_tool("pebble", "pebble")
        challtestsrv = require_tool("pebble-challtestsrv", "pebble")
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "directory-tls" / "server.pem").exists():
            write_dev_ca(work / "directory-tls", (self.host,))
        config = work / "pebble.json"
        server = str(work / "directory-tls" / "server.pem")
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"{self.host}:{self.port}",
            "managementListenAddress": f"{self.host}:{self.management}",
            "certificate": server, "privateKey": server,
            "httpPort": http_port, "tlsPort": 5001, "ocspResponderURL": "",
            "externalAccountBindingRequired": False}}))  # fmt: skip
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}  # fmt: skip
        out = self.log.open("ab")
        dns = self._command(
            challtestsrv, "-dns01", f"{self.host}:{self.dns_port}", "-defaultIPv4", resolve_to,
            "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-management", f"{self.host}:{self.dns_management}")  # fmt: skip
        self.procs.append(subprocess.Popen(dns, stdout=out, stderr=out))
        self.procs.append(subprocess.Popen(self._command(
            pebble, "-config", str(config), "-dnsserver", f"{self.host}:{self.dns_port}"),
            stdout=out, stderr=out, env=env))  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                self._fetch(self.directory)
                return self
            except (OSError, subprocess.SubprocessError) as exc:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                    self.stop()
                    said = self.log.read_text(errors="replace")
                    raise AssertionError(f"Pebble did not start ({exc}):\n{said}") from exc
                time.sleep(0.1)
