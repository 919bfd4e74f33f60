"""Automatic certificates on a standalone node, against a real ACME CA (Pebble): issued
through http-01 on the node's own port-80 frontend, served with its whole chain (the
test client trusts only Pebble's root of this run), renewed on request, kept across a
restart, and the failures (CA down, a name pointing elsewhere) backing off while the
current certificate keeps serving."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from node.acme.orderer import LOOK_EVERY
from node.tls.acme import is_placeholder, thumbprint
from node.tls.certfile import fingerprint
from tests.acmeca import Pebble
from tests.conftest import REPO, FloatgateProcess, free_port

ADDRESS = "127.0.0.61"  # what Pebble's DNS answers for every name; floatgate's port 80
DOMAINS = ("blog.example.test", "www.example.test")
Make = Callable[..., FloatgateProcess]


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Pebble]:
    tls_ca = tmp_path / "pebble" / "directory-tls" / "ca.pem"
    ca = Pebble("127.0.0.1", free_port(), free_port(), free_port(), free_port(), tls_ca, None,
                tmp_path / "pebble.log")  # fmt: skip
    yield ca
    ca.stop()


def _node(
    tmp_path: Path, pebble: Pebble, backend: str, extra_web: str = "", workers: int = 0
) -> dict[str, Any]:
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    (pebble.ca_file.parent).mkdir(parents=True, exist_ok=True)
    if not pebble.ca_file.exists():  # the directory's TLS CA exists before Pebble runs
        from node.tls.devca import write_dev_ca

        write_dev_ca(pebble.ca_file.parent, (pebble.host,))
    (certs / "directory-ca.pem").write_bytes(pebble.ca_file.read_bytes())
    secure, admin = free_port(), free_port()
    (tmp_path / "node.yaml").write_text(
        f'name: solo\ndata_dir: {tmp_path / "data"}\nadmin: {{listen: "127.0.0.1:{admin}"}}\n'
        f"workers: {workers}\n"
    )
    cluster = f"""
cluster: acme
certificates:
  blog:
    acme:
      directory: {pebble.directory}
      directory_ca: directory-ca.pem
      email: ops@example.test
      domains: [{", ".join(DOMAINS)}]
frontends:
  - name: web
    bind: "{ADDRESS}:80"
    default_backend: app
{extra_web}
  - name: secure
    bind: "127.0.0.1:{secure}"
    tls: {{certificates: [blog]}}
    default_backend: app
backends:
  - name: app
    servers: [{{name: a, address: "{backend}"}}]
"""
    return {"cluster": cluster, "secure": secure, "admin": admin, "certs": certs,
            "node": tmp_path / "node.yaml", "data": tmp_path / "data"}  # fmt: skip


def _start(make: Make, node: dict[str, Any]) -> FloatgateProcess:
    arguments = ("--node", str(node["node"]), "--certs", str(node["certs"]))
    process = make(node["cluster"], run_args=arguments)
    process.wait_listening(node["admin"])
    process.wait_listening(node["secure"])
    return process


def _status(admin: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/status", timeout=5) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def _blog(admin: int) -> dict[str, Any]:
    certificates: dict[str, Any] = _status(admin)["acme"]["certificates"]
    return dict(certificates.get("blog") or {})


def _wait_issued(admin: int) -> None:
    _wait("the first certificate", lambda: bool(_blog(admin).get("last_success")))


def _failures(admin: int) -> int:
    return int(_blog(admin).get("consecutive_failures") or 0)


def _metrics(admin: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def _wait(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _served(port: int, name: str, root: bytes | None) -> x509.Certificate:
    """The certificate a client gets for SNI ``name``; with ``root``, verified against
    that root alone (so the node must send the intermediate: the chain is complete)."""
    if root is not None:
        context = ssl.create_default_context(cadata=root.decode())
    else:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _renew(node: dict[str, Any]) -> str:
    result = subprocess.run([sys.executable, "-m", "node.cli", "acme", "renew", "blog",
                             "--node", str(node["node"])], cwd=REPO, capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _http(path: str, method: str = "GET", port: int = 80) -> tuple[int, bytes]:
    with socket.create_connection((ADDRESS, port), timeout=5) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: blog.example.test\r\n"
                  "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
async def test_a_standalone_node_orders_serves_renews_on_request_and_keeps_it(
    tmp_path: Path, pebble: Pebble, backends: Any, floatgate_process: Make, workers: int
) -> None:
    app = await backends("a")
    node = _node(tmp_path, pebble, app.address, workers=workers)
    await asyncio.to_thread(pebble.start, tmp_path / "pebble", ADDRESS)
    process = await asyncio.to_thread(_start, floatgate_process, node)
    await asyncio.to_thread(_wait_issued, node["admin"])
    root = await asyncio.to_thread(pebble.root)
    first = _served(node["secure"], "blog.example.test", root)  # verifies: chain complete
    names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == set(DOMAINS)
    assert fingerprint(_served(node["secure"], "www.example.test", root)) == fingerprint(first)
    issued = (node["data"] / "acme" / "blog.pem").stat()
    assert issued.st_mode & 0o777 == 0o600
    assert "valid until" in _blog(node["admin"])["next"]

    said = await asyncio.to_thread(_renew, node)
    assert "renewal of blog requested" in said
    await asyncio.to_thread(
        _wait, "the renewed certificate",
        lambda: fingerprint(_served(node["secure"], "blog.example.test", root))
        != fingerprint(first))  # fmt: skip
    second = _served(node["secure"], "blog.example.test", root)
    assert not (node["data"] / "acme" / "renew" / "blog").exists()  # the request is done
    metrics = await asyncio.to_thread(_metrics, node["admin"])
    assert 'floatgate_acme_consecutive_failures{certificate="blog"} 0.0' in metrics
    assert "floatgate_acme_orderer 1.0" in metrics

    process.stop()  # a restart serves what was issued at once, and orders nothing
    again = await asyncio.to_thread(_start, floatgate_process, node)
    assert fingerprint(_served(node["secure"], "blog.example.test", root)) == fingerprint(second)
    await asyncio.to_thread(_wait, "the orderer's first look",
                            lambda: bool(_blog(node["admin"]).get("next")))  # fmt: skip
    state = _blog(node["admin"])
    assert state["last_success"] is None and "valid until" in state["next"], state
    again.stop()


async def test_a_renew_before_longer_than_the_lifetime_does_not_reorder_every_pass(
    tmp_path: Path, pebble: Pebble, backends: Any, floatgate_process: Make
) -> None:
    app = await backends("a")
    node = _node(tmp_path, pebble, app.address)
    longer = "      renew_before: 36500d\n      email:"
    node["cluster"] = node["cluster"].replace("      email:", longer)
    await asyncio.to_thread(pebble.start, tmp_path / "pebble", ADDRESS)
    process = await asyncio.to_thread(_start, floatgate_process, node)
    await asyncio.to_thread(_wait_issued, node["admin"])
    first = fingerprint(_served(node["secure"], "blog.example.test", None))
    state = _blog(node["admin"])
    assert "renewal due" in state["next"] and "renew_before is longer" in state["next"], state
    await asyncio.sleep(2.5 * LOOK_EVERY)  # two more passes of the orderer
    assert fingerprint(_served(node["secure"], "blog.example.test", None)) == first
    assert _blog(node["admin"])["last_success"] == state["last_success"]  # no second order
    process.stop()


async def test_challenges_are_answered_before_rules_on_plain_frontends_only(
    tmp_path: Path,
    pebble: Pebble,
    backends: Any,
    floatgate_process: Make,
) -> None:
    app = await backends("a")
    deny_all = "    rules:\n      - {deny: {status: 403}}"
    node = _node(tmp_path, pebble, app.address, deny_all)  # the CA is not even running
    await asyncio.to_thread(_start, floatgate_process, node)
    account = thumbprint((node["data"] / "acme" / "account.key").read_bytes())
    status, body = await asyncio.to_thread(_http, "/.well-known/acme-challenge/Tok_en-1")
    assert (status, body) == (200, f"Tok_en-1.{account}".encode())
    assert (await asyncio.to_thread(_http, "/.well-known/acme-challenge/a.b"))[0] == 404
    assert (await asyncio.to_thread(_http, "/.well-known/acme-challenge/"))[0] == 404
    assert (await asyncio.to_thread(_http, "/.well-known/acme-challenge/x", "POST"))[0] == 405
    assert (await asyncio.to_thread(_http, "/anything-else"))[0] == 403  # rules still apply
    assert app.requests == []
    # a TLS frontend does not answer http-01: the path goes to the backend as any other
    answer = await asyncio.to_thread(_tls_get, node["secure"], "/.well-known/acme-challenge/Tok")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"a")
    assert app.requests == [("GET", "/.well-known/acme-challenge/Tok")]


def _tls_get(port: int, path: str) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="blog.example.test") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    return answer


async def test_an_unreachable_ca_backs_off_the_placeholder_serves_and_a_request_goes_ahead(
    tmp_path: Path,
    pebble: Pebble,
    backends: Any,
    floatgate_process: Make,
) -> None:
    app = await backends("a")
    node = _node(tmp_path, pebble, app.address)
    await asyncio.to_thread(_start, floatgate_process, node)  # Pebble is not started
    await asyncio.to_thread(_wait, "the first failure",
                            lambda: _failures(node["admin"]) == 1)  # fmt: skip
    state = _blog(node["admin"])
    assert state["last_failure"].startswith("unreachable:"), state
    assert state["next_at"] > time.time() + 25  # a minute, give or take the jitter
    assert is_placeholder(_served(node["secure"], "blog.example.test", None))
    await asyncio.sleep(3)
    assert _blog(node["admin"])["failures"] == {"unreachable": 1}  # no retry storm
    metrics = await asyncio.to_thread(_metrics, node["admin"])
    assert 'floatgate_acme_failures_total{certificate="blog",reason="unreachable"} 1.0' in metrics

    await asyncio.to_thread(pebble.start, tmp_path / "pebble", ADDRESS)
    await asyncio.to_thread(_renew, node)  # an operator's request does not wait the backoff
    await asyncio.to_thread(_wait_issued, node["admin"])
    root = await asyncio.to_thread(pebble.root)
    assert not is_placeholder(_served(node["secure"], "blog.example.test", root))
    assert _blog(node["admin"])["consecutive_failures"] == 0


async def test_a_name_pointing_elsewhere_fails_the_challenge_and_the_certificate_stays(
    tmp_path: Path,
    pebble: Pebble,
    backends: Any,
    floatgate_process: Make,
) -> None:
    app = await backends("a")
    node = _node(tmp_path, pebble, app.address)
    await asyncio.to_thread(pebble.start, tmp_path / "pebble", ADDRESS)
    await asyncio.to_thread(_start, floatgate_process, node)
    await asyncio.to_thread(_wait_issued, node["admin"])
    root = await asyncio.to_thread(pebble.root)
    before = fingerprint(_served(node["secure"], "blog.example.test", root))
    await asyncio.to_thread(pebble.point, "www.example.test", "127.0.0.62")  # nobody there
    await asyncio.to_thread(_renew, node)
    await asyncio.to_thread(_wait, "the failed renewal",
                            lambda: _failures(node["admin"]) == 1)  # fmt: skip
    state = _blog(node["admin"])
    assert state["last_failure"].startswith("challenge_failed:"), state
    assert "www.example.test" in state["last_failure"]
    assert fingerprint(_served(node["secure"], "blog.example.test", root)) == before


def test_check_says_what_will_be_ordered_and_refuses_what_cannot_be(tmp_path: Path) -> None:
    node = _node(tmp_path, Pebble("127.0.0.1", 1, 2, 3, 4, tmp_path / "ca.pem", None,
                                  tmp_path / "log"), "127.0.0.1:9")  # fmt: skip
    config = tmp_path / "cluster.yaml"
    config.write_text(node["cluster"])

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "node.cli", "check", str(config), "--certs",
                               str(node["certs"]), *extra], cwd=REPO, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    done = check()
    assert done.returncode == 0, done.stderr
    assert (f"certificate blog: ACME from https://127.0.0.1:1/dir for {', '.join(DOMAINS)} "
            "(http-01)") in done.stdout  # fmt: skip
    assert "no certificate issued yet: serving a self-signed placeholder" in done.stdout
    assert not (node["data"]).exists()  # check writes nothing (no account key)
    config.write_text(node["cluster"].replace(f'"{ADDRESS}:80"', f'"{ADDRESS}:8080"')
                      .replace("www.example.test", "'*.example.test'"))  # fmt: skip
    refused = check()
    assert refused.returncode == 2
    assert "is a wildcard: a CA validates wildcards only by dns-01" in refused.stderr
    assert "http-01 needs a plain HTTP frontend bound to port 80" in refused.stderr
