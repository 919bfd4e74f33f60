"""The key bundle test, in the network-namespace lab: push bundle A (certificate X,
verify: optional, the /ghost/ redirect), check through the VIP; push bundle B
(certificate Y, a changed rule, a new client CA), both nodes apply it; kill -9 the
active: the new active serves exactly B; roll back to A; a restarted node fetches and
serves the same."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.lab.netlab import HOSTS, VIP, SwitchedLab, admin_tls_yaml, admin_url, wait_for
from node.bundle import secret as secret_file
from node.tls.devca import cert_pem, issue, key_pem
from tests.cluster.labkit import Monitor
from tests.functional.pki import make_pki
from tests.lab import REPO, cluster_lab_marks
from tests.metricnames import dashboard_queries, names_in, sample_names
from tests.tools import require_tool

pytestmark = cluster_lab_marks()


def cluster_yaml(cert: str, ca: str, redirect_to: str) -> str:
    return f"""
cluster: lab
election: {{lease_ttl: 2s}}
vip: {{address: {VIP}/24, garp: {{count: 3, interval: 100ms}}}}
certificates: {{site: {cert}}}
client_cas: {{private_ca: {ca}}}
frontends:
  - name: https_termination
    bind: "{VIP}:443"
    tls:
      certificates: [site]
      client_auth: {{ca: private_ca, verify: optional}}
    forwardfor: true
    rules:
      - if: {{path_beg: /ghost/, client_cert: false}}
        redirect: {{location: {redirect_to}, code: 302}}
    default_backend: ghost
backends:
  - name: ghost
    check: {{type: tcp, interval: 500ms, rise: 1, fall: 2}}
    servers: [{{name: web1, address: "{HOSTS["web"]}:8080"}}]
"""


class BundleLab:
    def __init__(self, workdir: Path, workers: int = 0) -> None:
        self.workdir = workdir
        self.lab = SwitchedLab(workdir)
        self.certs = workdir / "certs"
        pki = make_pki(self.certs)
        self.root_ca = pki.path("ca.pem")
        ca_b = issue("Bundle B CA", None, ca=True)
        bob = issue("bob", ca_b, client=True)
        (self.certs / "ca-b.pem").write_bytes(cert_pem(ca_b.cert))
        (self.certs / "bob.pem").write_bytes(cert_pem(bob.cert) + key_pem(bob.key))
        secret_file.generate(workdir / "cluster.secret")
        (workdir / "admin.token").write_text("bundle-lab-token\n")
        for name, priority in (("n1", 900), ("n2", 100)):
            tls = admin_tls_yaml(self.lab.admin_pki, name)  # HTTPS: the token is sent
            (workdir / f"{name}.yaml").write_text(f"""
name: {name}
etcd: {{endpoints: ["http://{HOSTS["etcd"]}:2379"]}}
interface: eth0
priority: {priority}
admin: {{listen: "{HOSTS[name]}:9100", token_file: {workdir / "admin.token"}, tls: {tls}}}
secret_file: {workdir / "cluster.secret"}
data_dir: {workdir / f"data-{name}"}
workers: {workers}
""")

    def up(self) -> None:
        """The lab, etcd and the web backend."""
        self.lab.up()
        self.lab.start_etcd()
        self.lab.start("web", "web", sys.executable, "-m", "deploy.lab.echo_backend",
                       HOSTS["web"], "8080")  # fmt: skip

    def node_logs(self) -> dict[str, str]:
        """The nodes' logs without access lines, for a failed test to print."""
        return {n: self.lab.events(n, 4000) for n in ("n1", "n2")
                if (self.workdir / f"{n}.log").exists()}  # fmt: skip

    def client(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.lab.ns["client"], *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    def admin(self, *argv: str, path: str, node: str) -> subprocess.CompletedProcess[str]:
        """curl (options in ``argv``) a node's admin API over HTTPS, trusting the lab CA."""
        return self.client(*self.lab.admin_curl(), *argv, admin_url(node, path))

    def push(self, cert: str, ca: str, redirect_to: str, message: str) -> None:
        self.push_text(cluster_yaml(cert, ca, redirect_to), message)

    def push_text(self, text: str, message: str) -> None:
        (self.certs / "cluster.yaml").write_text(text)
        done = self.client(sys.executable, "-m", "node.cli", "push", "--cluster",
                           str(self.certs / "cluster.yaml"), "--certs", str(self.certs),
                           "--node", str(self.workdir / "n1.yaml"), "-m", message)  # fmt: skip
        assert done.returncode == 0, done.stderr

    def start_node(self, name: str) -> None:
        self.lab.start(name, name, sys.executable, "-m", "node.cli", "run", "--node",
                       str(self.workdir / f"{name}.yaml"), "--cluster-name", "lab")  # fmt: skip

    def applied(self, name: str) -> Any:
        out = self.admin("-s", "-m", "2", path="/status", node=name).stdout
        try:
            return json.loads(out).get("bundle", {}).get("revision")
        except ValueError:
            return None

    def seen(self, sni: str, cert: str) -> dict[str, Any]:
        out = self.client(sys.executable, "-m", "tests.cluster.bundlecheck", VIP, sni,
                          self.root_ca, str(self.certs / cert))  # fmt: skip
        assert out.returncode == 0, out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        return result


@pytest.fixture
def blab(request: pytest.FixtureRequest) -> Iterator[BundleLab]:
    os.chdir(REPO)
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-blab-"))
    lab = BundleLab(workdir, getattr(request, "param", 0))  # workers on both nodes
    failed_before = request.session.testsfailed
    try:
        lab.up()
        yield lab
    finally:
        # printed when the test failed (a fixture's teardown sees no exception: the
        # session's failure count tells)
        logs = lab.node_logs()
        lab.lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
        if request.session.testsfailed > failed_before:
            print(json.dumps(logs, indent=1))


@pytest.mark.parametrize("blab", [0, 2], indirect=True, ids=["in-process", "2-workers"])
def test_bundles_survive_a_failover_and_roll_back(blab: BundleLab) -> None:
    blab.push("app.pem", "ca.pem", "/", "A: certificate X")
    blab.start_node("n1")
    wait_for(lambda: blab.lab.holders() == ["n1"], 30, "n1 to hold the VIP")
    blab.start_node("n2")
    wait_for(lambda: blab.applied("n2") == 1, 30, "n2 to apply revision 1")

    a = blab.seen("app.test", "client.pem")
    assert a["anonymous"]["status"] == 302 and a["anonymous"]["location"] == "/"
    assert a["with_cert"]["status"] == 200 and a["with_cert"]["verify"] == "SUCCESS"
    assert "CN=alice" in a["with_cert"]["subject"]
    print_a = a["anonymous"]["fingerprint"]

    blab.push("other.pem", "ca-b.pem", "/login", "B: certificate Y, new CA, new rule")
    wait_for(lambda: blab.applied("n1") == 2 and blab.applied("n2") == 2, 20,
             "both nodes to apply revision 2")  # fmt: skip
    b = blab.seen("other.test", "bob.pem")
    assert b["anonymous"]["status"] == 302 and b["anonymous"]["location"] == "/login"
    assert b["with_cert"]["status"] == 200 and "CN=bob" in b["with_cert"]["subject"]
    assert b["anonymous"]["fingerprint"] != print_a

    def settled() -> bool:
        """`floatgate status` reads each node's revision from its member record in etcd,
        which a node rewrites after it applied a bundle: it may lag /status briefly."""
        node = str(blab.workdir / "n1.yaml")
        out = blab.client(sys.executable, "-m", "node.cli", "status", "--node", node,
                          "--cluster-name", "lab").stdout  # fmt: skip
        return "bundle: current revision 2" in out and "STALE" not in out

    wait_for(settled, 15, "floatgate status to show both nodes on revision 2")
    resumer = subprocess.Popen(
        ["ip", "netns", "exec", blab.lab.ns["client"], sys.executable, "-m",
         "tests.cluster.bundlecheck", "resume", VIP, "other.test", blab.root_ca],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert resumer.stdout is not None and resumer.stdin is not None
    assert resumer.stdout.readline().strip() == "ready"  # a session from n1

    blab.lab.signal("n1", signal.SIGKILL)
    wait_for(lambda: blab.lab.holders() == ["n2"], 15, "n2 to take the VIP")
    time.sleep(0.3)
    resumer.stdin.write("go\n")
    resumer.stdin.flush()
    assert json.loads(resumer.stdout.readline()) == {"resumed": True}  # on n2
    resumer.wait(10)
    after = blab.seen("other.test", "bob.pem")
    for key in ("status", "location", "fingerprint"):
        assert after["anonymous"][key] == b["anonymous"][key]  # exactly B
    assert after["with_cert"]["status"] == 200 and after["with_cert"]["subject"] == b[
        "with_cert"]["subject"]  # fmt: skip

    back = blab.client(sys.executable, "-m", "node.cli", "rollback", "1", "--node",
                       str(blab.workdir / "n1.yaml"), "--cluster-name", "lab")  # fmt: skip
    assert back.returncode == 0, back.stderr
    wait_for(lambda: blab.applied("n2") == 3, 20, "n2 to apply the rollback (revision 3)")
    blab.lab.procs["n1"].wait(5)
    blab.start_node("n1")  # restarted: fetches the current bundle at start-up
    wait_for(lambda: blab.applied("n1") == 3, 30, "the restarted n1 to serve revision 3")
    rolled = blab.seen("app.test", "client.pem")
    assert rolled["anonymous"]["fingerprint"] == print_a
    assert rolled["anonymous"]["location"] == "/" and rolled["with_cert"]["status"] == 200
    time.sleep(0.5)
    assert blab.lab.holders() == ["n2"]  # nopreempt: the restarted n1 stays standby
    check_scrape_against_dashboard(blab)


def check_scrape_against_dashboard(blab: BundleLab) -> None:
    """The active's /metrics after all this (TLS, bundles, a takeover) passes promtool,
    and every metric the Grafana dashboard queries is one the node really exports."""
    scrape = blab.admin("-sf", "-m", "5", path="/metrics", node="n2")
    assert scrape.returncode == 0, scrape.stderr
    text = scrape.stdout
    promtool = require_tool("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    exported = sample_names(text)
    missing = {
        title: sorted(names_in(expr) - exported)
        for title, exprs in dashboard_queries().items()
        for expr in exprs
        if names_in(expr) - exported
    }
    assert not missing, f"dashboard panels query metrics no node exports: {missing}"
    assert 'floatgate_bundle_revision_info{revision="3"} 1.0' in text
    assert 'floatgate_node_role{role="active"} 1.0' in text
    assert "floatgate_takeover_duration_seconds_count 1.0" in text


BLOCKER = ("import socket, time\n"
           "s = socket.socket()\n"
           "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
           "s.bind(('0.0.0.0', 8444))\n"
           "s.listen()\n"
           "time.sleep(3600)\n")  # fmt: skip


def test_a_stale_node_is_reported_refused_as_successor_and_takes_over_late(
    blab: BundleLab,
) -> None:
    """Invariant 5 in the lab: revision 2 cannot be applied on n2 (a port it must bind is
    taken there), so n2 keeps serving revision 1 and says so (status, metrics); a
    switchover to it is refused; when n1 dies, n2 campaigns only after a whole extra TTL,
    with the alarm in its reason."""
    blab.push("app.pem", "ca.pem", "/", "A")
    blab.start_node("n1")
    wait_for(lambda: blab.lab.holders() == ["n1"], 30, "n1 to hold the VIP")
    blab.start_node("n2")
    wait_for(lambda: blab.applied("n2") == 1, 30, "n2 to apply revision 1")
    blab.lab.start("blocker", "n2", sys.executable, "-c", BLOCKER)
    time.sleep(0.5)
    extra = f'  - {{name: more, bind: "{VIP}:8444", default_backend: ghost}}\nbackends:'
    text = cluster_yaml("app.pem", "ca.pem", "/").replace("backends:", extra)
    text = text.replace("lease_ttl: 2s", "lease_ttl: 3s")  # applied only at a restart
    (blab.certs / "cluster.yaml").write_text(text)
    done = blab.client(sys.executable, "-m", "node.cli", "push", "--cluster",
                       str(blab.certs / "cluster.yaml"), "--certs", str(blab.certs),
                       "--node", str(blab.workdir / "n1.yaml"), "-m", "B: port 8444")  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: blab.applied("n1") == 2, 20, "n1 to apply revision 2")
    n1 = json.loads(blab.admin("-s", path="/status", node="n1").stdout)
    assert n1["bundle"]["restart_needed"] == ["election"], n1["bundle"]
    n1_metrics = blab.admin("-s", path="/metrics", node="n1").stdout
    assert "floatgate_bundle_restart_needed 1.0" in n1_metrics
    assert "restarts (restart nodes one at a time)" in blab.lab.log("n1")

    def n2_bundle() -> dict[str, Any]:
        out = blab.admin("-s", "-m", "2", path="/status", node="n2").stdout
        return json.loads(out).get("bundle", {})  # type: ignore[no-any-return]

    wait_for(lambda: n2_bundle().get("failures") == 1, 20, "n2 to refuse revision 2")
    bundle = n2_bundle()
    assert bundle["revision"] == 1 and bundle["current"] == 2 and bundle["uptodate"] is False
    assert "8444" in bundle["error"]
    metrics = blab.admin("-s", "-m", "2", path="/metrics", node="n2").stdout
    for line in ("floatgate_bundle_uptodate 0.0", "floatgate_bundle_apply_failures_total 1.0",
                 'floatgate_bundle_revision_info{revision="1"} 1.0'):  # fmt: skip
        assert line in metrics, line
    status = blab.client(sys.executable, "-m", "node.cli", "status", "--node",
                         str(blab.workdir / "n1.yaml"), "--cluster-name", "lab")  # fmt: skip
    assert "STALE" in status.stdout, status.stdout

    for target in ("?to=n2", ""):  # named, or "the best standby": there is none
        refused = blab.admin("-s", "-m", "3", "-X", "POST", "-w", "\n%{http_code}",
                             "-H", "Authorization: Bearer bundle-lab-token",
                             path=f"/switchover{target}", node="n1")  # fmt: skip
        body, code = refused.stdout.rsplit("\n", 1)
        assert code == "409" and "STALE" in json.loads(body)["error"], refused.stdout
    assert blab.lab.holders() == ["n1"]  # nothing changed
    blab.lab.signal("n1", signal.SIGKILL)
    killed = time.monotonic()
    took = wait_for(lambda: blab.lab.holders() == ["n2"], 20, "n2 to take the VIP at last")
    print(f"stale n2 took the VIP {took:.2f}s after n1 died (an up-to-date node: ~0.2 s)")
    # n1's crash guard ends its reign at once; a stale n2 still waits a whole TTL (2 s)
    # after it saw the seat empty (an up-to-date node takes it ~0.2 s after the kill)
    assert took > 2.0
    assert "campaigning with a STALE configuration (alarm)" in blab.lab.log("n2")
    assert time.monotonic() - killed < 20


def test_a_stale_active_hands_over_to_an_up_to_date_standby(blab: BundleLab) -> None:
    """Invariant 5 on the active: revision 2 cannot be applied on n1 (a port it must
    bind is taken there) while n2 applies it. n1 keeps serving revision 1, says so, and
    hands the VIP over to n2 after one lease TTL; never two holders, and n1 (higher
    priority, stale) does not take it back."""
    blab.push("app.pem", "ca.pem", "/", "A")
    blab.start_node("n1")
    wait_for(lambda: blab.lab.holders() == ["n1"], 30, "n1 to hold the VIP")
    blab.start_node("n2")
    wait_for(lambda: blab.applied("n2") == 1, 30, "n2 to apply revision 1")
    blab.lab.start("blocker", "n1", sys.executable, "-c", BLOCKER)
    time.sleep(0.5)
    monitor = Monitor(blab.lab)
    extra = f'  - {{name: more, bind: "{VIP}:8444", default_backend: ghost}}\nbackends:'
    (blab.certs / "cluster.yaml").write_text(
        cluster_yaml("app.pem", "ca.pem", "/").replace("backends:", extra)
    )
    done = blab.client(sys.executable, "-m", "node.cli", "push", "--cluster",
                       str(blab.certs / "cluster.yaml"), "--certs", str(blab.certs),
                       "--node", str(blab.workdir / "n1.yaml"), "-m", "B: port 8444")  # fmt: skip
    assert done.returncode == 0, done.stderr
    pushed = time.monotonic()
    wait_for(lambda: blab.applied("n2") == 2, 20, "n2 to apply revision 2")
    took = wait_for(lambda: blab.lab.holders() == ["n2"], 20, "n1 to hand the VIP to n2")
    moved = time.monotonic()
    print(f"stale n1 handed over {time.monotonic() - pushed:.2f}s after the push")
    time.sleep(3.0)  # n1 stays standby: it is stale, n2 is up to date
    monitor.stop()
    assert blab.lab.holders() == ["n2"] and took > 1.0  # it waited a TTL for n1 to catch up
    assert blab.applied("n1") == 1
    assert "a bundle was refused): handing over to n2, which is up to date" in blab.lab.log("n1")
    assert monitor.double_holders() == [], monitor.double_holders()[:5]
    monitor.assert_one_arp_answer(pushed, moved + 0.5, "n2")
