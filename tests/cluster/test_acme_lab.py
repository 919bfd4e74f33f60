"""ACME in the lab, against a real CA: Pebble in its own namespace, its DNS resolving
the test domains to the VIP. Two nodes; the active orders, the certificate arrives as
a bundle revision on both; the active is killed and the standby serves the same
certificate at once; a renewal requested after the failover is done by the new
active. Pebble's root is trusted only by the test client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.netlab import HOSTS, VIP, admin_url, wait_for
from tests.acmeca import Pebble
from tests.cluster.browser import Browser, trust_keys_flag
from tests.cluster.test_bundle_lab import BundleLab
from tests.cluster.test_observability_lab import ARTIFACTS, ROWS
from tests.lab import REPO, cluster_lab_marks
from tests.tools import require_tool

pytestmark = cluster_lab_marks()
DOMAINS = ("blog.lab.test", "www.lab.test")


def cluster_yaml(directory: str) -> str:
    return f"""
cluster: lab
election: {{lease_ttl: 2s}}
vip: {{address: {VIP}/24, garp: {{count: 3, interval: 100ms}}}}
certificates:
  blog:
    acme:
      directory: {directory}
      directory_ca: acme-directory-ca.pem
      email: ops@lab.test
      domains: [{", ".join(DOMAINS)}]
frontends:
  - name: plain
    bind: "{VIP}:80"
    default_backend: web
  - name: secure
    bind: "{VIP}:443"
    tls: {{certificates: [blog]}}
    default_backend: web
backends:
  - name: web
    check: {{type: tcp, interval: 500ms, rise: 1, fall: 2}}
    servers: [{{name: web1, address: "{HOSTS["web"]}:8080"}}]
"""


@pytest.fixture
def alab(request: pytest.FixtureRequest) -> Iterator[tuple[BundleLab, Pebble]]:
    os.chdir(REPO)
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-alab-"))
    lab = BundleLab(workdir)
    ca = Pebble(HOSTS["acme"], 14000, 15000, 8053, 8055,
                workdir / "pebble" / "directory-tls" / "ca.pem", lab.lab.ns["acme"],
                workdir / "pebble.log")  # fmt: skip
    failed_before = request.session.testsfailed
    try:
        lab.up()
        ca.start(workdir / "pebble", VIP)
        shutil.copy(ca.ca_file, lab.certs / "acme-directory-ca.pem")
        yield lab, ca
    finally:
        logs = lab.node_logs()
        ca.stop()
        lab.lab.down()
        if request.session.testsfailed > failed_before:
            print(json.dumps(logs, indent=1))
            print((workdir / "pebble.log").read_text(errors="replace")[-3000:])
        shutil.rmtree(workdir, ignore_errors=True)


def _served(lab: BundleLab, root: Path) -> dict[str, Any]:
    out = lab.client(sys.executable, "-m", "tests.cluster.bundlecheck", "served", VIP,
                     DOMAINS[0], str(root))  # fmt: skip
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _history(lab: BundleLab) -> list[dict[str, Any]]:
    out = lab.client(sys.executable, "-m", "node.cli", "history", "--node",
                     str(lab.workdir / "n1.yaml"), "--cluster-name", "lab", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    revisions: list[dict[str, Any]] = json.loads(out.stdout)["revisions"]
    return revisions


def test_the_active_orders_the_standby_has_it_and_the_new_active_renews(
    alab: tuple[BundleLab, Pebble],
) -> None:
    lab, ca = alab
    lab.push_text(cluster_yaml(ca.directory), "blog by ACME")
    lab.start_node("n1")
    wait_for(lambda: lab.lab.holders() == ["n1"], 30, "n1 to hold the VIP")
    lab.start_node("n2")
    wait_for(lambda: lab.applied("n1") == 2 and lab.applied("n2") == 2, 60,
             "the issued certificate (revision 2) on both nodes")  # fmt: skip
    issued = _history(lab)[-1]
    assert issued["author"] == "acme@n1"
    assert issued["message"].startswith("acme: issued blog (expires ")
    root = lab.workdir / "pebble-root.pem"
    root.write_bytes(ca.root())
    first = _served(lab, root)  # verified against Pebble's root alone: the chain is whole
    assert first["status"] == 200, first
    standby = (lab.workdir / "data-n2" / "current" / "acme" / "blog.pem").read_bytes()
    assert b"-----BEGIN CERTIFICATE-----" in standby

    lab.lab.signal("n1", signal.SIGKILL)
    wait_for(lambda: lab.lab.holders() == ["n2"], 15, "n2 to take the VIP")
    wait_for(lambda: "error" not in _served(lab, root), 5, "n2 to serve TLS")
    assert _served(lab, root)["fingerprint"] == first["fingerprint"]  # the same, at once
    assert lab.applied("n2") == 2  # nothing was ordered or applied for the takeover

    asked = lab.client(sys.executable, "-m", "node.cli", "acme", "renew", "blog", "--node",
                       str(lab.workdir / "n1.yaml"), "--cluster-name", "lab")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    wait_for(lambda: lab.applied("n2") == 3, 60, "the renewal (revision 3) on n2")
    renewed = _history(lab)[-1]
    assert renewed["author"] == "acme@n2"  # the new active ordered it
    assert renewed["message"].startswith("acme: renewed blog (expires ")
    after = _served(lab, root)
    assert after["status"] == 200 and after["fingerprint"] != first["fingerprint"]
    status = lab.lab.admin_status("n2")
    acme = status["acme"]
    assert isinstance(acme, dict) and acme["orderer"] == "this node"
    assert "valid until" in acme["certificates"]["blog"]["next"]
    _status_page_shows_the_renewal(lab)


def _ordering(lab: BundleLab, node: str) -> object:
    acme = lab.lab.admin_status(node).get("acme")
    blog = acme.get("certificates", {}).get("blog", {}) if isinstance(acme, dict) else {}
    return blog.get("ordering")


def test_a_takeover_mid_order_restarts_it_on_the_new_active_and_the_old_one_writes_nothing(
    alab: tuple[BundleLab, Pebble],
) -> None:
    """n1 starts ordering while the CA hangs (SIGSTOPped), then freezes itself; n2 takes
    over and orders anew; the CA thaws and n2's certificate is the one revision. When n1
    thaws, with its order's requests answered late, it writes nothing: it is no longer
    the leader, and etcd would refuse its fenced write if it tried."""
    lab, ca = alab
    lab.push_text(cluster_yaml(ca.directory), "blog by ACME")
    ca.freeze()
    lab.start_node("n1")
    wait_for(lambda: lab.lab.holders() == ["n1"], 30, "n1 to hold the VIP")
    wait_for(lambda: _ordering(lab, "n1") is not None, 20, "n1 to be mid-order")
    lab.start_node("n2")
    wait_for(lambda: lab.applied("n2") == 1, 30, "n2 to apply revision 1")
    lab.lab.signal("n1", signal.SIGSTOP)
    wait_for(lambda: lab.lab.holders() == ["n2"], 15, "n2 to take the VIP")
    wait_for(lambda: _ordering(lab, "n2") is not None, 20, "n2 to order anew")
    ca.freeze(False)
    wait_for(lambda: lab.applied("n2") == 2, 60, "n2's certificate (revision 2)")
    lab.lab.signal("n1", signal.SIGCONT)
    wait_for(lambda: lab.applied("n1") == 2, 30, "n1, now standby, to apply revision 2")
    wait_for(lambda: _ordering(lab, "n2") is None, 30, "n2's order to end")
    time.sleep(5.0)  # time for anything n1 had in flight to come back
    acme = [r for r in _history(lab) if r["author"].startswith("acme@")]
    assert [(r["revision"], r["author"]) for r in acme] == [(2, "acme@n2")], acme
    assert lab.lab.holders() == ["n2"] and lab.applied("n1") == lab.applied("n2") == 2
    root = lab.workdir / "pebble-root.pem"
    root.write_bytes(ca.root())
    assert _served(lab, root)["status"] == 200


def _status_page_shows_the_renewal(lab: BundleLab) -> None:
    """The status page's ACME table, in headless Chromium from the client namespace."""
    chromium = require_tool("chromium", "chromium")
    trust = trust_keys_flag(*(lab.lab.admin_pki / f"{n}-admin.pem" for n in ("n1", "n2")))
    browser = Browser(chromium, ("ip", "netns", "exec", lab.lab.ns["client"]), (trust,))

    def rows() -> list[list[str]]:
        return json.loads(browser.evaluate(ROWS % "acme") or "[]")  # type: ignore[no-any-return]

    try:
        browser.open(admin_url("n2", "/"))
        wait_for(lambda: any(r[:2] == ["blog", "n2"] for r in rows()), 20,
                 "the status page to list blog, ordered by n2")  # fmt: skip
        shown = next(r for r in rows() if r[:2] == ["blog", "n2"])
        assert shown[2].startswith("valid until") and shown[3] == "0", shown
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(ARTIFACTS / "status-page-acme.png")
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
