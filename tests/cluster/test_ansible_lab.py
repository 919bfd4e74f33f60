"""A real run of ansible/site.yml against the namespace lab: 3 etcd members over TLS with
client certificates and 2 floatgate nodes installed offline from a wheelhouse. After it
the VIP answers; a second run changes nothing; push.yml ships a changed cluster.yaml
that both nodes apply; drill.yml passes, and fails when its threshold cannot be met."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab.ansible_lab import AnsibleLab
from deploy.lab.netlab import HOSTS, VIP, wait_for
from tests.lab import cluster_lab_marks

pytestmark = cluster_lab_marks()


@pytest.fixture
def alab() -> Iterator[AnsibleLab]:
    workdir = Path(tempfile.mkdtemp(prefix="floatgate-ansible-"))
    lab = AnsibleLab(workdir)
    try:
        lab.prepare()
        yield lab
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


def _recap(output: str) -> dict[str, dict[str, int]]:
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def _status(lab: AnsibleLab, node: str) -> dict[str, object]:
    url = f"https://{HOSTS[node]}:9100/status"  # the role turns admin.tls on
    out = lab.client(*lab.admin_curl(), "-s", "-m", "2", url).stdout
    try:
        data = json.loads(out)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _revision(lab: AnsibleLab, node: str) -> object:
    bundle = _status(lab, node).get("bundle")
    return bundle.get("revision") if isinstance(bundle, dict) else None


def test_site_push_and_drill_playbooks_in_the_lab(alab: AnsibleLab) -> None:
    first = alab.playbook("site.yml")
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
    recap = _recap(first.stdout)
    assert set(recap) == {"lab-etcd", "lab-etcd2", "lab-etcd3", "n1", "n2"}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values())

    answer = alab.client("curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                         f"http://{VIP}/")  # fmt: skip
    keys = ("role", "healthy", "unhealthy_reason", "decision", "etcd_reachable")
    seen = {n: {k: _status(alab, n).get(k) for k in keys} for n in ("n1", "n2")}
    assert answer.stdout == "200", json.dumps(seen)
    wait_for(lambda: _status(alab, "n2").get("role") == "standby", 20, "n2 to be standby")
    roles = {n: _status(alab, n).get("role") for n in ("n1", "n2")}
    # the admin API speaks HTTPS only and wants a client certificate
    plain = alab.client("curl", "-s", "-m", "2", f"http://{HOSTS['n1']}:9100/status")
    assert not plain.stdout.startswith("{"), plain
    anonymous = alab.client("curl", "-s", "-m", "2", "--cacert",
                            str(alab.workdir / "files/etcd-pki/ca.pem"),
                            f"https://{HOSTS['n1']}:9100/status")  # fmt: skip
    assert anonymous.returncode != 0 and not anonymous.stdout, anonymous
    assert sorted(roles.values()) == ["active", "standby"], roles
    # etcd_profile: lan: etcd grants the 1 s leases of lease_ttl: 1s
    etcd_yml = (alab.root("etcd") / "etc/etcd/etcd.yml").read_text()
    assert "heartbeat-interval: 50\n" in etcd_yml and "election-timeout: 500\n" in etcd_yml
    assert "auto-compaction-mode: periodic\n" in etcd_yml  # leader-key writes: bounded history
    granted = {n: _status(alab, n).get("lease_ttl_granted") for n in ("n1", "n2")}
    assert 1 in granted.values() and _status(alab, "n1").get("vip_fence") == "bpf", granted
    assert _revision(alab, "n1") == 1 and _revision(alab, "n2") == 1
    # the roles wrote secrets with tight modes
    config = alab.root("n1") / "etc/floatgate"
    for secret in ("cluster.secret", "admin.token", "etcd/client.key", "admin/admin.key"):
        assert (config / secret).stat().st_mode & 0o777 == 0o600, secret
    assert (alab.root("etcd") / "etc/etcd/pki/etcd.key").stat().st_mode & 0o777 == 0o600

    second = alab.playbook("site.yml")
    assert second.returncode == 0, second.stdout[-5000:]
    changed = {host: r["changed"] for host, r in _recap(second.stdout).items()}
    assert changed == dict.fromkeys(changed, 0), changed

    cluster = alab.workdir / "files/cluster/cluster.yaml"
    cluster.write_text(cluster.read_text().replace("interval: 500ms", "interval: 400ms"))
    pushed = alab.playbook("push.yml", "-e", "floatgate_push_message=faster checks")
    assert pushed.returncode == 0, pushed.stdout[-3000:]
    assert "pushed revision 2" in pushed.stdout
    wait_for(lambda: _revision(alab, "n1") == 2 and _revision(alab, "n2") == 2, 20,
             "both nodes to apply revision 2")  # fmt: skip

    drill = alab.playbook("drill.yml", "-e", "floatgate_drill_max_outage=2.0")
    assert drill.returncode == 0, drill.stdout[-4000:]
    assert re.search(r"outage [0-9.]+s\s+<= 2.0s", drill.stdout), drill.stdout[-3000:]
    wait_for(lambda: len(_status(alab, "n1").get("members", [])) == 2, 20,  # type: ignore[arg-type]
             "both nodes registered again")  # fmt: skip
    # bundle-mode nodes: isolating the active cuts its election and its bundle watcher
    isolate = alab.playbook("drill.yml", "-e", "floatgate_drill_scenario=isolate-active",
                            "-e", "floatgate_drill_max_outage=4")  # fmt: skip
    assert isolate.returncode == 0, isolate.stdout[-4000:]
    wait_for(lambda: all(len(_status(alab, n).get("members", [])) == 2  # type: ignore[arg-type]
                         for n in ("n1", "n2")), 40, "the isolated node to rejoin")  # fmt: skip

    strict = alab.playbook("drill.yml", "-e", "floatgate_drill_max_outage=0.0001")
    assert strict.returncode != 0, strict.stdout[-3000:]
    assert "FAILED: outage" in strict.stdout
    log = alab.root("n2") / "var/lib/floatgate/drills.jsonl"
    reports = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["scenario"] for r in reports] == ["switchover", "isolate-active", "switchover"]
    assert [r["verdict"] == "ok" for r in reports] == [True, True, False]
