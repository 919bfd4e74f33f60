"""Shared pieces of the cluster lab tests: the holder/ARP monitor, the client probe,
the CLI run from the client namespace, and a lab fixture factory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.lab.netlab import VIP, SwitchedLab, wait_for
from tests.lab import REPO


@contextmanager
def running_cluster(**options: object) -> Iterator[SwitchedLab]:
    """A started lab cluster (n1 active); always torn down; node logs printed when the
    test failed."""
    os.chdir(REPO)
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-lab-"))
    lab = SwitchedLab(workdir, **options)  # type: ignore[arg-type]
    failed = True
    try:
        lab.start_cluster()
        wait_for(lambda: lab.holders() == ["n1"], 20, "n1 to hold the VIP")
        yield lab
        failed = False
    finally:
        logs = {name: lab.events(name, 3000) for name in lab.nodes
                if (workdir / f"{name}.log").exists()}  # fmt: skip
        etcd = lab.etcd_events()
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
        if failed:
            print(json.dumps(logs, indent=1))
            print(json.dumps(etcd, indent=1))


class Monitor:
    """Samples both nodes' addresses every 20 ms (any instant with two holders?) and
    records which MACs answer the client's ARP requests for the VIP."""

    def __init__(self, lab: SwitchedLab) -> None:
        self.lab = lab
        self.samples: list[tuple[float, list[str]]] = []
        self.claims: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._arp = lab.start_arp_watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # the watcher is asking before anything happens

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.lab.holders()))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.claims = self.lab.arp_claims(self._arp)

    def arp_macs(self, start: float, end: float = float("inf")) -> set[str]:
        """The MACs that claimed the VIP to the client between ``start`` and ``end``."""
        return {mac for t, mac in self.claims if start <= t <= end}

    def assert_one_arp_answer(self, fault: float, settled: float, holder: str | None) -> None:
        """Before the fault n1 held the VIP at every sample and alone answered for it;
        once the handover settled,
        only ``holder`` (nobody, if None) -- never two MACs."""
        steady = [holders for t, holders in self.samples if t < fault]
        assert steady and all(h == ["n1"] for h in steady), "the VIP flapped before the fault"
        assert self.arp_macs(0.0, fault) == {self.lab.mac("n1")}, self.claims
        expected = {self.lab.mac(holder)} if holder else set()
        assert self.arp_macs(settled) == expected, self.claims

    def double_holders(self) -> list[float]:
        return [t for t, holders in self.samples if len(holders) > 1]


def probe(
    lab: SwitchedLab, seconds: float, timeout: float = 0.5, h2: bool = False
) -> dict[str, float]:
    """deploy/lab/client_probe.py in the client namespace (``h2``: over one kept HTTP/2
    connection instead of a new HTTP/1.1 connection per request)."""
    proc = lab.start("probe", "client", sys.executable, "-m", "deploy.lab.client_probe",
                     VIP, str(seconds), str(timeout), *(["h2"] if h2 else []))  # fmt: skip
    proc.wait(seconds + 20)
    return json.loads(lab.log("probe").strip().splitlines()[-1])  # type: ignore[no-any-return]


def cli(lab: SwitchedLab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", lab.ns["client"], sys.executable, "-m", "node.cli", *args,
         "--node", str(lab.workdir / "n1.yaml"), "--cluster-name", "lab"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def probed_switchover(
    lab: SwitchedLab, h2: bool = False
) -> tuple[float, dict[str, float], Monitor]:
    """``floatgate switchover`` 1.5 s into a 5 s client probe (3 s timeout) of the VIP,
    with a monitor: returns the seconds until n2 alone held the VIP, the probe's
    result and the stopped monitor, which has already found one ARP answerer (n2)
    from the request on."""
    monitor = Monitor(lab)
    result: dict[str, dict[str, float]] = {}
    client = threading.Thread(target=lambda: result.update(r=probe(lab, 5.0, 3.0, h2)))
    client.start()
    time.sleep(1.5)
    asked = time.monotonic()
    done = cli(lab, "switchover")
    assert done.returncode == 0, done.stderr + lab.events("n1", 3000)
    moved = wait_for(lambda: lab.holders() == ["n2"], 10, "n2 to take the VIP")
    settled = time.monotonic() + 0.3
    client.join(30)
    monitor.stop()
    monitor.assert_one_arp_answer(asked, settled, "n2")
    return moved, result["r"], monitor
