"""A minimal network-namespace lab for tests: two namespaces joined by a veth pair,
10.199.0.0/24 inside them only (nothing is added to the root namespace). Always
deleted, even after a failed test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from deploy.lab.netlab import REPO, run


class TwoHostLab:
    def __init__(self) -> None:
        tag = f"fgt{os.getpid() % 100000}"
        self.a, self.b = f"{tag}a", f"{tag}b"
        self.if_a, self.if_b = "veth-a", "veth-b"
        self.addr_a, self.addr_b = "10.199.0.11/24", "10.199.0.12/24"

    def up(self) -> None:
        self.down()
        run("ip", "netns", "add", self.a)
        run("ip", "netns", "add", self.b)
        run("ip", "link", "add", self.if_a, "netns", self.a, "type", "veth",
            "peer", "name", self.if_b, "netns", self.b)  # fmt: skip
        for ns, interface, address in ((self.a, self.if_a, self.addr_a),
                                       (self.b, self.if_b, self.addr_b)):  # fmt: skip
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", interface, "up")
            run("ip", "-n", ns, "addr", "add", address, "dev", interface)

    def down(self) -> None:
        for ns in (self.a, self.b):
            run("ip", "netns", "del", ns, check=False)

    def driver(self, ns: str, *args: str) -> object:
        out = run("ip", "netns", "exec", ns, sys.executable, "-m", "tests.vipdriver", *args)
        return json.loads(out.strip().splitlines()[-1])

    def driver_background(self, ns: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.vipdriver", *args],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip


def lab_available() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        return "needs iproute2"
    return None


def cluster_lab_marks() -> list[pytest.MarkDecorator]:
    """The marks of a test that needs the namespace lab and etcd (a lab test: with
    FLOATGATE_REQUIRE_LAB=1 a skip fails)."""
    reason = lab_available()
    return [
        pytest.mark.lab,
        pytest.mark.skipif(reason is not None, reason=str(reason)),
        pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd not installed"),
    ]


@contextmanager
def two_host_lab() -> Iterator[TwoHostLab]:
    """The two-namespace lab, up for the block and always torn down (skips, as a lab
    test, where it cannot run)."""
    reason = lab_available()
    if reason is not None:
        pytest.skip(reason)
    os.chdir(REPO)
    lab = TwoHostLab()
    lab.up()
    try:
        yield lab
    finally:
        lab.down()
