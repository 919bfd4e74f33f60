"""ACME in bundles, against a real etcd: a push creates the cluster's account key
(sealed like every private key) and carries it and the issued certificates over; the
active's result is a new revision stored only under its fencing token, so an order
that finishes after its reign ended (a takeover mid-order) stores nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.acme.errors import LeadershipLost
from node.acme.outlets import ClusterOutlet, renew_key
from node.bundle import secret as secret_file
from node.bundle.commands import store_for
from node.bundle.format import unseal
from node.snapshot import load_node
from node.tls.acme import ACCOUNT_KEY_FILE, thumbprint
from node.tls.devca import cert_pem, issue, key_pem
from tests.conftest import REPO, free_port
from tests.etcd import EtcdProcess

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd not installed")
LEADER = "/floatgate/edge/election/leader"


@pytest.fixture
def etcd() -> Iterator[EtcdProcess]:
    process = EtcdProcess()
    yield process
    process.stop()


def _files(tmp: Path, etcd: EtcdProcess) -> tuple[Path, Path]:
    certs = tmp / "certs"
    certs.mkdir()
    secret_file.generate(tmp / "cluster.secret")
    (tmp / "node.yaml").write_text(f"""
name: n1
etcd: {{endpoints: ["http://127.0.0.1:{etcd.client_port}"]}}
secret_file: {tmp / "cluster.secret"}
data_dir: {tmp / "data"}
""")
    (certs / "cluster.yaml").write_text(f"""
cluster: edge
vip: {{address: 192.0.2.10/24}}
certificates:
  blog:
    acme: {{directory: "https://ca.example.test/dir", domains: [blog.example.test]}}
frontends:
  - {{name: plain, bind: ":80", default_backend: app}}
  - name: https
    bind: "127.0.0.1:{free_port()}"
    default_backend: app
    tls: {{certificates: [blog]}}
backends:
  - name: app
    servers: [{{name: s1, address: "127.0.0.1:9"}}]
""")
    return certs / "cluster.yaml", tmp / "node.yaml"


def _push(cluster: Path, node: Path, message: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "node.cli", "push", "--cluster", str(cluster),
                           "--certs", str(cluster.parent),
                           "--node", str(node), "-m", message, "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _issued() -> bytes:
    """A chain as a CA would issue it (root -> intermediate -> leaf), and the key."""
    root = issue("Test ACME Root", None, ca=True)
    intermediate = issue("Test ACME Intermediate", root, ca=True)
    leaf = issue("blog.example.test", intermediate, names=("blog.example.test",))
    return cert_pem(leaf.cert, intermediate.cert) + key_pem(leaf.key)


def _leader_token(etcd: EtcdProcess) -> int:
    etcd.etcdctl("put", LEADER, '{"name": "n1"}')
    found = json.loads(etcd.etcdctl("get", LEADER, "-w", "json"))
    return int(found["kvs"][0]["create_revision"])


async def test_the_account_key_is_made_once_sealed_and_carried(
    tmp_path: Path, etcd: EtcdProcess
) -> None:
    cluster, node_path = _files(tmp_path, etcd)
    _push(cluster, node_path, "first")
    raw = etcd.etcdctl("get", "--prefix", "/floatgate/edge/")
    assert ACCOUNT_KEY_FILE in raw and "PRIVATE KEY" not in raw  # sealed at rest
    node = load_node(node_path)
    store, key = store_for(node, "edge"), secret_file.load(node.secret_file)

    async def account() -> str:
        current = await store.current()
        assert current is not None
        bundle = unseal(current["sha"], await store.document(current["sha"]), key)
        return thumbprint(bundle.files[ACCOUNT_KEY_FILE])

    first = await account()
    _push(cluster, node_path, "second")
    assert await account() == first  # the cluster keeps one ACME account


async def test_the_active_stores_a_revision_only_under_its_fencing_token(
    tmp_path: Path, etcd: EtcdProcess
) -> None:
    cluster, node_path = _files(tmp_path, etcd)
    _push(cluster, node_path, "first")
    node = load_node(node_path)
    store, key = store_for(node, "edge"), secret_file.load(node.secret_file)
    token = _leader_token(etcd)
    pem = _issued()
    await ClusterOutlet(store, key, "edge", "n1", lambda: token).store(
        "blog", pem, "acme: issued blog (expires soon)"
    )
    current = await store.current()
    assert current is not None and current["revision"] == 2
    assert (
        current["author"] == "acme@n1" and current["message"] == "acme: issued blog (expires soon)"
    )
    bundle = unseal(current["sha"], await store.document(current["sha"]), key)
    assert bundle.files["acme/blog.pem"] == pem
    assert "PRIVATE KEY" not in etcd.etcdctl("get", "--prefix", "/floatgate/edge/bundles/")

    etcd.etcdctl("del", LEADER)  # the reign ends; another begins (a takeover mid-order)
    newer = _leader_token(etcd)
    assert newer != token
    late = ClusterOutlet(store, key, "edge", "n1", lambda: token)
    with pytest.raises(LeadershipLost, match=f"fencing token {token} ended"):
        await late.store("blog", _issued(), "acme: renewed blog (expires later)")
    with pytest.raises(LeadershipLost):  # no longer the active at all
        await ClusterOutlet(store, key, "edge", "n1", lambda: None).store("blog", pem, "x")
    again = await store.current()
    assert again is not None and again["revision"] == 2  # nothing was stored

    etcd.etcdctl("put", renew_key("edge", "blog").decode(), "now")
    assert await late.requested() == {"blog"}
    await late.done("blog")  # a stale reign cannot clear the request either
    assert "blog" in etcd.etcdctl("get", "--prefix", renew_key("edge").decode())
    await ClusterOutlet(store, key, "edge", "n1", lambda: newer).done("blog")
    assert etcd.etcdctl("get", "--prefix", renew_key("edge").decode()).strip() == ""

    pushed = _push(cluster, node_path, "an operator's change")  # carries what was issued
    assert pushed["revision"] == 3
    current = await store.current()
    assert current is not None
    bundle = unseal(current["sha"], await store.document(current["sha"]), key)
    assert bundle.files["acme/blog.pem"] == pem
