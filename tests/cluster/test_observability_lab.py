"""The status page in a real browser during a real failover, and the cluster metrics a
takeover leaves behind. Headless Chromium runs in the lab's client namespace and loads
the page from the standby's admin listener; n1 (active) is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab.netlab import HOSTS, NODES, SwitchedLab, admin_url, wait_for
from tests.cluster.browser import Browser, trust_keys_flag
from tests.cluster.labkit import running_cluster
from tests.lab import REPO, cluster_lab_marks
from tests.tools import require_tool

pytestmark = cluster_lab_marks()

ARTIFACTS = Path(os.environ.get("FLOATGATE_ARTIFACTS", REPO / "test-artifacts"))
ROWS = """JSON.stringify(Array.from(document.querySelectorAll('#%s tr'))
  .map(r => Array.from(r.cells).map(c => c.innerText.trim())))"""


@pytest.fixture
def cluster() -> Iterator[SwitchedLab]:
    with running_cluster() as lab:
        yield lab


def _metrics(lab: SwitchedLab, node: str) -> dict[str, float]:
    out = subprocess.run(
        ["ip", "netns", "exec", lab.ns["client"], *lab.admin_curl(), "-sf", "-m", "3",
         admin_url(node, "/metrics")],
        capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    values = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def _rows(browser: Browser, table: str) -> list[list[str]]:
    return json.loads(browser.evaluate(ROWS % table) or "[]")  # type: ignore[no-any-return]


def _role(rows: list[list[str]], node: str) -> str | None:
    return next((r[1] for r in rows if r and r[0] == node), None)


def test_status_page_follows_a_failover_without_errors(cluster: SwitchedLab) -> None:
    chromium = require_tool("chromium", "chromium")
    before = _metrics(cluster, "n1")
    assert before['floatgate_node_role{role="active"}'] == 1
    assert before["floatgate_vip_present"] == 1
    old_token = before["floatgate_fencing_token"]
    assert old_token > 0
    assert _metrics(cluster, "n2")["floatgate_fencing_token"] == old_token  # as n2 sees it

    pki = cluster.admin_pki  # the admin listeners serve HTTPS with the lab CA's certificates
    trust = trust_keys_flag(*(pki / f"{node}-admin.pem" for node in NODES))
    browser = Browser(chromium, ("ip", "netns", "exec", cluster.ns["client"]), (trust,))
    try:
        browser.open(admin_url("n2", "/"))
        wait_for(lambda: _role(_rows(browser, "nodes"), "n1") == "active"
                 and _role(_rows(browser, "nodes"), "n2") == "standby", 30,
                 "the page to show n1 active and n2 standby")  # fmt: skip
        assert browser.evaluate("document.getElementById('vip-holder').textContent") == "n1"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(ARTIFACTS / "status-page-before-failover.png")

        cluster.signal("n1", signal.SIGKILL)
        wait_for(lambda: cluster.holders() == ["n2"], 15, "n2 to take the VIP")
        wait_for(lambda: _role(_rows(browser, "nodes"), "n2") == "active", 15,
                 "the page to show n2 active")  # fmt: skip
        wait_for(lambda: any(r[1:3] == ["n1", "n2"] for r in _rows(browser, "failovers")), 10,
                 "the page to list the failover n1 -> n2")  # fmt: skip
        time.sleep(1.5)  # a few more refreshes with n1 gone
        browser.screenshot(ARTIFACTS / "status-page-after-failover.png")
        failover = next(r for r in _rows(browser, "failovers") if r[1:3] == ["n1", "n2"])
        assert failover[3] == "crash"  # kill -9: n1's crash guard ended the reign
        assert browser.evaluate("document.getElementById('vip-holder').textContent") == "n2"
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
    assert (ARTIFACTS / "status-page-after-failover.png").stat().st_size > 10_000

    after = _metrics(cluster, "n2")
    assert after['floatgate_node_role{role="active"}'] == 1
    assert after['floatgate_node_role{role="standby"}'] == 0
    assert after["floatgate_vip_present"] == 1
    assert after["floatgate_fencing_token"] > old_token
    assert after["floatgate_leader_changes_total"] >= 1
    assert after["floatgate_takeover_duration_seconds_count"] == 1
    takeover = after["floatgate_takeover_last_duration_seconds"]
    assert 0.0 < takeover < 6.0, takeover
    assert after["floatgate_garp_sent_total"] >= 3
    assert after["floatgate_lease_remaining_seconds"] > 0
    # the takeover and the election/VIP events are logged with their fencing token
    log = cluster.log("n2")
    token = int(after["floatgate_fencing_token"])
    assert re.search(rf"takeover from n1 \(crash\) took [0-9.]+s.*\[fencing token {token}\]", log)
    assert f"acquired the lease as leader (fencing token {token})" in log
    assert re.search(rf"VIP .*: .*\[fencing token {token}\]", log)
    print(f"takeover measured by n2: {takeover:.3f}s (fencing token {old_token:.0f} -> {token})")


def test_real_prometheus_pages_when_the_cluster_has_no_leader(cluster: SwitchedLab) -> None:
    """Prometheus itself (Debian's package), in the client namespace, scraping both
    nodes with deploy/prometheus/alerts.yml: quiet while n1 leads; with etcd gone no
    node may lead, and FloatgateNoActiveNode fires after its 15 s."""
    prometheus = require_tool("prometheus", "prometheus")
    rules = REPO / "deploy" / "prometheus" / "alerts.yml"
    config = cluster.workdir / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: floatgate
    scheme: https
    tls_config: {{ca_file: "{cluster.admin_pki / "ca.pem"}"}}
    static_configs:
      - targets: ["{HOSTS["n1"]}:9100", "{HOSTS["n2"]}:9100"]
        labels: {{cluster: lab}}
""")
    cluster.start("prometheus", "client", prometheus, f"--config.file={config}",
                  f"--storage.tsdb.path={cluster.workdir / 'tsdb'}",
                  "--web.listen-address=127.0.0.1:9090")  # fmt: skip

    def api(path: str, query: str | None = None) -> dict[str, object]:
        params = ["-G", "--data-urlencode", f"query={query}"] if query else []
        out = subprocess.run(
            ["ip", "netns", "exec", cluster.ns["client"], "curl", "-s", "-m", "2", *params,
             f"http://127.0.0.1:9090/api/v1/{path}"], capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        try:
            return json.loads(out)["data"]  # type: ignore[no-any-return]
        except (ValueError, KeyError):
            return {}

    def value(query: str) -> float | None:
        result = api("query", query).get("result") or []
        return float(result[0]["value"][1]) if result else None  # type: ignore[index]

    def firing() -> set[str]:
        alerts = api("alerts").get("alerts") or []
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}  # type: ignore[index]

    try:
        wait_for(lambda: value('sum(floatgate_node_role{role="active"})') == 1, 30,
                 "Prometheus to scrape one active node")  # fmt: skip
    except AssertionError:
        raise AssertionError(f"{api('targets')}\n{cluster.log('prometheus')[-3000:]}") from None
    assert value("sum(floatgate_vip_present)") == 1
    time.sleep(3)
    assert "FloatgateNoActiveNode" not in firing() and "FloatgateMultipleActive" not in firing()

    cluster.signal("etcd", signal.SIGKILL)
    wait_for(lambda: value('sum(floatgate_node_role{role="active"})') == 0, 15,
             "no node to report active")  # fmt: skip
    gone = time.monotonic()
    wait_for(lambda: "FloatgateNoActiveNode" in firing(), 40, "FloatgateNoActiveNode to fire")
    print(f"FloatgateNoActiveNode fired {time.monotonic() - gone:.1f}s after the last active")
    assert "FloatgateMultipleActive" not in firing()
