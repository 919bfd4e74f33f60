"""Bundles against a real etcd: push (CLI) validates and stores one encrypted revision;
races, bad input and an unreachable etcd change nothing; a node applies a new bundle
without a restart (a real TLS client sees the new certificate), refuses damaged or
foreign bundles while serving the last good one, caches it, and rolls back."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.bundle import secret as secret_file
from node.bundle.apply import BundleApplier, cached
from node.bundle.build import collect
from node.bundle.commands import store_for
from node.bundle.errors import BundleError, PushConflict
from node.bundle.format import Bundle, seal, unseal
from node.snapshot import load_node
from node.tls.devca import crl
from node.tls.tickets import TICKET_KEY_FILE, new_key_file
from tests.conftest import free_port
from tests.etcd import EtcdProcess
from tests.functional.pki import Pki

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd not installed")
REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def etcd() -> Iterator[EtcdProcess]:
    process = EtcdProcess()
    yield process
    process.stop()


def _setup(tmp: Path, pki: Pki, etcd_port: int, cert: str = "app.pem") -> tuple[Path, Path]:
    """A certs dir with the PKI files, cluster.yaml serving ``cert``, and node.yaml."""
    certs = tmp / "certs"
    shutil.copytree(pki.dir, certs, dirs_exist_ok=True)
    secret_file.generate(tmp / "cluster.secret") if not (tmp / "cluster.secret").exists() else None
    (tmp / "node.yaml").write_text(f"""
name: n1
etcd: {{endpoints: ["http://127.0.0.1:{etcd_port}"]}}
secret_file: {tmp / "cluster.secret"}
data_dir: {tmp / "data"}
""")
    write_cluster(certs / "cluster.yaml", cert, free_port())
    return certs / "cluster.yaml", tmp / "node.yaml"


def write_cluster(path: Path, cert: str, port: int, backend: str = "127.0.0.1:9") -> None:
    path.write_text(f"""
cluster: edge
vip: {{address: 192.0.2.10/24}}
certificates: {{site: {cert}}}
client_cas: {{root: ca.pem}}
frontends:
  - name: https
    bind: "127.0.0.1:{port}"
    default_backend: app
    tls: {{certificates: [site]}}
backends:
  - name: app
    servers: [{{name: s1, address: "{backend}"}}]
""")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_push_history_and_keys_encrypted_at_rest(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess
) -> None:
    cluster, node = _setup(tmp_path, pki, etcd.client_port)
    done = cli("push", "--cluster", str(cluster), "--certs", str(cluster.parent),
               "--node", str(node), "-m", "first")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pushed revision 1" in done.stdout
    raw = etcd.etcdctl("get", "--prefix", "/floatgate/edge/")
    assert "/floatgate/edge/bundle/current" in raw and "cluster: edge" in raw
    assert "PRIVATE KEY" not in raw  # an etcd backup alone reveals no private key
    again = cli("push", "--cluster", str(cluster), "--certs", str(cluster.parent),
                "--node", str(node), "-m", "second", "--json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is True
    same = cli("push", "--cluster", str(cluster), "--certs", str(cluster.parent),
               "--node", str(node), "--if-changed", "--json")  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout) == {
        **json.loads(same.stdout),
        "changed": False,
        "revision": 2,
    }  # nothing stored: still revision 2
    history = cli("history", "--node", str(node), "--cluster-name", "edge")
    assert history.returncode == 0
    lines = history.stdout.splitlines()
    assert lines[0].startswith("current: revision 2") and "second" in lines[1]
    assert "first" in lines[2]
    write_cluster(cluster, "other.pem", free_port())
    third = cli("push", "--cluster", str(cluster), "--certs", str(cluster.parent),
                "--node", str(node), "-m", "third: certificate Y")  # fmt: skip
    assert third.returncode == 0, third.stderr
    changes = cli("diff", "1", "--node", str(node), "--cluster-name", "edge")
    assert changes.returncode == 0, changes.stderr
    assert "-certificates: {site: app.pem}" in changes.stdout
    assert "+certificates: {site: other.pem}" in changes.stdout
    assert "added other.pem  (holds a private key: content not shown)" in changes.stdout
    assert "+ " in changes.stdout and "CN=other.test" in changes.stdout  # by fingerprint
    assert "PRIVATE KEY" not in changes.stdout


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("yaml", "not valid YAML"),
        ("schema", "frontends[0].bind"),
        ("missing", "cannot read"),
        ("mismatch", "certificates.site"),
        ("expired", "certificates.site"),
        ("crl", "crls.old"),
        ("novip", "vip: a bundle serves cluster nodes"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess, damage: str, expected: str
) -> None:
    cluster, node = _setup(tmp_path, pki, etcd.client_port)
    if damage == "yaml":
        cluster.write_text("cluster: [unclosed\n")
    elif damage == "schema":
        cluster.write_text(cluster.read_text().replace('bind: "127.0.0.1:', 'bind: "127.0.0.1:9'))
    elif damage == "missing":
        (cluster.parent / "app.pem").unlink()
    elif damage == "crl":  # a CRL past its next-update
        (cluster.parent / "old-crl.pem").write_bytes(crl(pki.root, days=-0.001))
        cluster.write_text(
            cluster.read_text().replace("client_cas:", "crls: {old: old-crl.pem}\nclient_cas:")
        )
    elif damage == "novip":  # fine for a standalone node, never for a cluster's
        cluster.write_text(cluster.read_text().replace("vip: {address: 192.0.2.10/24}\n", ""))
    else:
        write_cluster(cluster, f"{damage}.pem", free_port())
    refused = cli("push", "--cluster", str(cluster), "--certs", str(cluster.parent),
                  "--node", str(node))  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert expected in refused.stderr and "nothing was stored" in refused.stderr
    assert etcd.etcdctl("get", "--prefix", "/floatgate/edge/").strip() == ""


def test_push_with_etcd_unreachable_says_so(tmp_path: Path, pki: Pki) -> None:
    cluster, node = _setup(tmp_path, pki, free_port())  # nothing listens there
    refused = cli("push", "--cluster", str(cluster), "--certs", str(cluster.parent),
                  "--node", str(node))  # fmt: skip
    assert refused.returncode == 1
    assert "no etcd endpoint answered" in refused.stderr and "nothing was changed" in refused.stderr


async def test_two_pushes_from_the_same_parent_cannot_both_win(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess
) -> None:
    _, node_path = _setup(tmp_path, pki, etcd.client_port)
    node = load_node(node_path)
    store = store_for(node, "edge")
    key = secret_file.load(node.secret_file)
    first = seal(Bundle("cluster: edge\n", {}, {"author": "alice", "message": "a"}), key)
    second = seal(Bundle("cluster: edge\n", {}, {"author": "bob", "message": "b"}), key)
    await store.push(*first, {"author": "alice", "message": "a"}, None, False)
    with pytest.raises(PushConflict, match="revision 1 was pushed meanwhile by alice"):
        await store.push(*second, {"author": "bob", "message": "b"}, None, False)
    forced = await store.push(*second, {"author": "bob", "message": "b"}, None, True)
    assert forced["revision"] == 2 and forced["parent"] == 1


def test_rollback_to_a_revision_without_vip_is_refused(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess
) -> None:
    """A revision stored before push checked for vip: rolling back to it is refused too
    (a cluster node could not start with it), and nothing is stored."""
    _, node_path = _setup(tmp_path, pki, etcd.client_port)
    node = load_node(node_path)
    key = secret_file.load(node.secret_file)
    old = f"""cluster: edge
frontends:
  - {{name: web, bind: "127.0.0.1:{free_port()}", default_backend: app}}
backends:
  - {{name: app, servers: [{{name: s1, address: "127.0.0.1:9"}}]}}
"""
    meta = {"author": "old", "message": "no vip"}
    asyncio.run(store_for(node, "edge").push(*seal(Bundle(old, {}, meta), key), meta, None, False))
    refused = cli("rollback", "1", "--node", str(node_path), "--cluster-name", "edge")
    assert refused.returncode == 2, refused.stderr
    assert "vip: a bundle serves cluster nodes" in refused.stderr
    assert "nothing was stored" in refused.stderr
    history = cli("history", "--node", str(node_path), "--cluster-name", "edge", "--json")
    assert [e["revision"] for e in json.loads(history.stdout)["revisions"]] == [1]


async def test_the_first_push_after_an_upgrade_keeps_the_ticket_key(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess
) -> None:
    """The current bundle is format 1 (no MAC, pushed by an older floatgate): nodes refuse
    it, and the next push keeps its sealed session-ticket key (sessions still resume)."""
    cluster, node_path = _setup(tmp_path, pki, etcd.client_port)
    node = load_node(node_path)
    key = secret_file.load(node.secret_file)
    meta = {"author": "old", "message": "format 1"}
    bundle = collect(cluster, cluster.parent, meta, {TICKET_KEY_FILE: new_key_file()})
    data = json.loads(seal(bundle, key)[1])
    del data["mac"]
    data["format"] = 1
    old = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    store = store_for(node, "edge")
    await store.push(hashlib.sha256(old).hexdigest(), old, meta, None, False)
    done = await asyncio.to_thread(
        cli,
        "push",
        "--cluster",
        str(cluster),
        "--certs",
        str(cluster.parent),
        "--node",
        str(node_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ticket_key"] == "kept"
    current = await store.current()
    assert current is not None and current["revision"] == 2
    new = unseal(current["sha"], await store.document(current["sha"]), key)
    assert new.files[TICKET_KEY_FILE] == bundle.files[TICKET_KEY_FILE]


def _tls_fingerprint(port: int, pki: Pki) -> str:
    context = ssl.create_default_context(cafile=pki.path("ca.pem"))
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
        with context.wrap_socket(raw) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()


async def test_node_applies_refuses_caches_and_rolls_back(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess, proxy: Any
) -> None:
    cluster, node_path = _setup(tmp_path, pki, etcd.client_port)
    node = load_node(node_path)
    port = free_port()
    write_cluster(cluster, "app.pem", port)
    push = ["push", "--cluster", str(cluster), "--certs", str(cluster.parent), "--node",
            str(node_path)]  # fmt: skip
    assert cli(*push, "-m", "A").returncode == 0
    plane = await proxy(cluster.read_text(), cluster.parent)
    applier = BundleApplier(store_for(node, "edge"), secret_file.load(node.secret_file),
                            Path(node.data_dir), plane.reload)  # fmt: skip
    assert await applier.check()  # revision 1 (same content as serving) applied + cached
    a_print = await asyncio.to_thread(_tls_fingerprint, port, pki)
    write_cluster(cluster, "other.pem", port)
    assert cli(*push, "-m", "B").returncode == 0
    assert await applier.check()
    b_print = await asyncio.to_thread(_tls_fingerprint, port, pki)
    assert b_print != a_print  # the running node serves B's certificate, no restart
    assert applier.status()["revision"] == 2 and applier.status()["error"] is None
    found = cached(Path(node.data_dir))
    assert found is not None and found[1]["revision"] == 2
    assert stat.S_IMODE(os.stat(Path(node.data_dir) / "current").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(Path(node.data_dir) / "current" / "other.pem").st_mode) == 0o600

    # damaged in etcd by hand: refused, B keeps serving, the error is reported
    write_cluster(cluster, "app.pem", port)
    assert cli(*push, "-m", "C").returncode == 0
    current = await applier.store.current()
    assert current is not None
    etcd.etcdctl("put", f"/floatgate/edge/bundles/{current['sha']}", "garbage")
    assert not await applier.check()
    assert "does not match its SHA-256" in str(applier.status()["error"])
    assert (
        applier.status()["revision"] == 2
        and await asyncio.to_thread(_tls_fingerprint, port, pki) == b_print
    )

    # forged in etcd by someone without the cluster secret: a new backend, a correct
    # SHA-256, a current record pointing at it -- refused, B keeps serving
    good_sha = (await applier.store.history())[1]["sha"]  # revision 2, B
    data = json.loads(await applier.store.document(good_sha))
    data["cluster_yaml"] = data["cluster_yaml"].replace("127.0.0.1:9", "127.0.0.1:1")
    forged = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    sha = hashlib.sha256(forged).hexdigest()
    etcd.etcdctl("put", f"/floatgate/edge/bundles/{sha}", forged.decode())
    etcd.etcdctl(
        "put",
        "/floatgate/edge/bundle/current",
        json.dumps(
            {**current, "revision": current["revision"] + 1, "sha": sha, "author": "mallory"}
        ),
    )
    assert not await applier.check()
    assert "MAC does not verify" in str(applier.status()["error"])
    assert (
        applier.status()["revision"] == 2
        and await asyncio.to_thread(_tls_fingerprint, port, pki) == b_print
    )
    assert "127.0.0.1:1" not in (Path(node.data_dir) / "current" / "cluster.yaml").read_text()

    # an old genuine revision put back as current (a replay: current has no MAC):
    # refused, B keeps serving; so is current naming another revision than the sealed one
    history = await applier.store.history()
    first = next(r for r in history if r["revision"] == 1)
    etcd.etcdctl("put", "/floatgate/edge/bundle/current", json.dumps(first))
    assert not await applier.check()
    assert "revision 1 is not newer than revision 2, which this node serves" in str(
        applier.status()["error"]
    )
    etcd.etcdctl("put", "/floatgate/edge/bundle/current",
                 json.dumps({**first, "revision": 99}))  # fmt: skip
    fresh = BundleApplier(applier.store, applier.secret, tmp_path / "fresh", plane.reload)
    assert not await fresh.check()  # even a node serving nothing yet
    assert "names revision 99 but the document is sealed as revision 1" in str(
        fresh.status()["error"]
    )
    assert (
        applier.status()["revision"] == 2
        and await asyncio.to_thread(_tls_fingerprint, port, pki) == b_print
    )
    # ... and at a restart: the cache (revision 2) is newer than what current names
    etcd.etcdctl("put", "/floatgate/edge/bundle/current", json.dumps(first))
    restarted = BundleApplier(applier.store, applier.secret, Path(node.data_dir), plane.reload)
    with pytest.raises(BundleError, match="not newer than revision 2"):
        await restarted.fetch_to_cache()
    assert cached(Path(node.data_dir))[1]["revision"] == 2  # type: ignore[index]
    etcd.etcdctl("put", "/floatgate/edge/bundle/current", json.dumps(current))

    # a node with another cluster secret refuses, and says why
    secret_file.generate(tmp_path / "other.secret")
    foreign = BundleApplier(applier.store, secret_file.load(tmp_path / "other.secret"),
                            tmp_path / "foreign", plane.reload)  # fmt: skip
    assert cli(*push, "-m", "D").returncode == 0
    assert not await foreign.check()
    assert "does not verify with this cluster secret" in str(foreign.status()["error"])

    # rollback to A: a new revision with A's content, applied
    back = cli("rollback", "1", "--node", str(node_path), "--cluster-name", "edge")
    assert back.returncode == 0, back.stderr
    assert await applier.check()
    assert await asyncio.to_thread(_tls_fingerprint, port, pki) == a_print
    assert applier.status()["revision"] == 5  # current was put back at C (3); D was 4

    # etcd restored from an older backup: current is behind what the nodes serve (their
    # member entries say so); a push continues above it, and the node takes it
    etcd.etcdctl("put", "/floatgate/edge/bundle/current", json.dumps(first))
    etcd.etcdctl("put", "/floatgate/edge/election/members/n1",
                 json.dumps({"name": "n1", "bundle_revision": 5}))  # fmt: skip
    write_cluster(cluster, "other.pem", port)
    pushed = cli(*push, "-m", "after restore", "--json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["revision"] == 6
    assert await applier.check() and applier.status()["revision"] == 6
    assert await asyncio.to_thread(_tls_fingerprint, port, pki) == b_print
    # a document sealed without a revision number (an older floatgate's push): refused
    # by a node that serves a bundle
    old = seal(Bundle("cluster: edge\n", {}, {"author": "old"}), applier.secret)
    await applier.store.push(*old, {"author": "old"}, 6, False)
    assert not await applier.check()
    assert "no sealed revision number" in str(applier.status()["error"])


def _resume(port_a: int, port_b: int, pki: Pki) -> bool:
    """Full handshake on A (TLS 1.3, reading the response so the ticket arrives), then
    a new connection to B offering that session: was it resumed?"""
    context = ssl.create_default_context(cafile=pki.path("ca.pem"))
    context.check_hostname = False

    def get(port: int, session: ssl.SSLSession | None) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=3)
        tls = context.wrap_socket(raw, server_hostname="app.test", session=session)
        tls.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        while tls.recv(65536):
            pass
        return tls

    first = get(port_a, None)
    session = first.session
    first.close()
    second = get(port_b, session)
    reused = second.session_reused
    second.close()
    return bool(reused)


async def test_a_shared_ticket_key_resumes_sessions_on_another_node(
    tmp_path: Path, pki: Pki, proxy: Any, backends: Any
) -> None:
    """Two data planes (two nodes) from the same bundle files: a session from one
    resumes on the other only when the bundle carries the session-ticket key."""
    from node.tls.tickets import TICKET_KEY_FILE, new_key_file

    backend = await backends("a")
    certs = tmp_path / "certs"
    shutil.copytree(pki.dir, certs)
    ports = [free_port() for _ in range(4)]
    for port in ports[:2]:
        write_cluster(certs / "c.yaml", "app.pem", port, backend.address)
        await proxy((certs / "c.yaml").read_text(), certs)
    assert not await asyncio.to_thread(_resume, ports[0], ports[1], pki)  # own random keys
    (certs / TICKET_KEY_FILE).write_bytes(new_key_file())
    for port in ports[2:]:
        write_cluster(certs / "c.yaml", "app.pem", port, backend.address)
        await proxy((certs / "c.yaml").read_text(), certs)
    assert await asyncio.to_thread(_resume, ports[2], ports[3], pki)  # the cluster's key


async def test_a_node_restarted_while_etcd_is_down_starts_from_its_cache(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess
) -> None:
    from node.bundle.errors import BundleError
    from node.bundle.startup import initial_bundle

    cluster, node_path = _setup(tmp_path, pki, etcd.client_port)
    node = load_node(node_path)
    with pytest.raises(BundleError, match="no bundle in etcd yet"):
        await asyncio.to_thread(initial_bundle, node, "edge")
    push = ["push", "--cluster", str(cluster), "--certs", str(cluster.parent), "--node",
            str(node_path)]  # fmt: skip
    assert cli(*push, "-m", "A").returncode == 0
    fetched = await asyncio.to_thread(initial_bundle, node, "edge")  # etcd up: fetched
    assert fetched == Path(node.data_dir) / "current" / "cluster.yaml"
    etcd.stop()
    again = await asyncio.to_thread(initial_bundle, node)  # etcd down, name from the cache
    assert again == fetched and "cluster: edge" in again.read_text()
    shutil.rmtree(node.data_dir)
    with pytest.raises(BundleError, match="no cached bundle"):
        await asyncio.to_thread(initial_bundle, node, "edge")


async def test_the_watch_applies_a_push_at_once(
    tmp_path: Path, pki: Pki, etcd: EtcdProcess, proxy: Any
) -> None:
    cluster, node_path = _setup(tmp_path, pki, etcd.client_port)
    node = load_node(node_path)
    push = ["push", "--cluster", str(cluster), "--certs", str(cluster.parent), "--node",
            str(node_path)]  # fmt: skip
    assert (await asyncio.to_thread(cli, *push, "-m", "A")).returncode == 0
    plane = await proxy(cluster.read_text(), cluster.parent)
    applier = BundleApplier(store_for(node, "edge"), secret_file.load(node.secret_file),
                            Path(node.data_dir), plane.reload, poll=60.0)  # fmt: skip
    task = asyncio.create_task(applier.run())
    try:
        for _ in range(100):
            if applier.status()["revision"] == 1:
                break
            await asyncio.sleep(0.05)
        assert applier.status()["revision"] == 1
        assert (await asyncio.to_thread(cli, *push, "-m", "B")).returncode == 0
        pushed = time.monotonic()
        while applier.status()["revision"] != 2:
            assert time.monotonic() - pushed < 3.0, "the watch did not fire (poll is 60 s)"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
