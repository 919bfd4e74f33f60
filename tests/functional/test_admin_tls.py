"""The admin API over TLS, on a real `floatgate run` process: HTTPS with and without
client certificates, the admin client presenting the node's certificate, the token kept
off plain HTTP, a bare-port listen on loopback only, and node.yaml errors that name the
file and key. The server's refusal of a token sent in clear from another host needs a
non-loopback address: it runs in the namespace lab (root)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.admin.client import AdminClient, AdminClientError, PlainTokenRefused
from node.config import ConfigError
from node.config.model import NodeConfig
from node.snapshot import load_node
from node.tls.devca import write_etcd_pki
from tests.conftest import REPO, FloatgateProcess, free_port
from tests.functional.pki import Pki
from tests.lab import TwoHostLab, two_host_lab

TOKEN = "admin-tls-test-token"


def _cluster_yaml(web: int) -> str:
    return f"""
cluster: admintls
frontends:
  - {{name: web, bind: "127.0.0.1:{web}", default_backend: app}}
backends:
  - name: app
    servers: [{{name: a, address: "127.0.0.1:9"}}]
"""


@pytest.fixture(scope="module")
def admin_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The etcd-pki layout the Ansible role ships: ca.pem, n1-admin.pem/.key (server
    and client use, SAN 127.0.0.1), ops-client.pem/.key (an operator)."""
    out = tmp_path_factory.mktemp("admin-pki")
    write_etcd_pki(out, {"etcd1": "127.0.0.1"}, ("ops",), {"n1": "127.0.0.1", "n2": "10.199.0.11"})
    return out


def _node_yaml(path: Path, listen: str, tls: str = "") -> Path:
    token = path.parent / "admin.token"
    token.write_text(TOKEN + "\n")
    path.write_text(f"name: n1\nadmin:\n  listen: {listen}\n  token_file: {token}\n{tls}")
    return path


def _tls(pki: Path, verify: str, name: str = "n1") -> str:
    return (f"  tls:\n    cert: {pki / f'{name}-admin.pem'}\n    key: {pki / f'{name}-admin.key'}\n"
            f"    ca: {pki / 'ca.pem'}\n    verify: {verify}\n")  # fmt: skip


def _start(
    tmp_path: Path,
    floatgate_process: Callable[..., FloatgateProcess],
    listen: str,
    tls: str = "",
) -> tuple[FloatgateProcess, Path]:
    node = _node_yaml(tmp_path / "node.yaml", listen, tls)
    process = floatgate_process(_cluster_yaml(free_port()), run_args=("--node", str(node)))
    return process, node


def _tls_get(port: int, context: ssl.SSLContext) -> bytes:
    """GET /status over TLS; whatever came back (b"" when the server hung up)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """The handshake failed or the server hung up without an HTTP answer (with TLS 1.3
    the client learns that its certificate was refused only when it reads)."""
    try:
        return _tls_get(port, context) == b""
    except (ssl.SSLError, ConnectionError):
        return True


@pytest.fixture
def required(
    tmp_path: Path, admin_pki: Path, floatgate_process: Callable[..., FloatgateProcess]
) -> tuple[int, NodeConfig]:
    port = free_port()
    process, node = _start(tmp_path, floatgate_process, f'"127.0.0.1:{port}"',
                           _tls(admin_pki, "required"))  # fmt: skip
    process.wait_listening(port)
    return port, load_node(node)


async def test_https_status_with_the_nodes_client_certificate(
    required: tuple[int, NodeConfig],
) -> None:
    port, node = required
    async with AdminClient.for_node(node) as client:
        status = await client.status(f"https://127.0.0.1:{port}")
    assert status.get("node") == "n1" and "error" not in status, status


async def test_client_without_certificate_is_refused_when_required(
    required: tuple[int, NodeConfig], admin_pki: Path, pki: Pki
) -> None:
    port, _ = required
    anonymous = ssl.create_default_context(cafile=str(admin_pki / "ca.pem"))
    assert await asyncio.to_thread(_refused, port, anonymous)
    stranger = ssl.create_default_context(cafile=str(admin_pki / "ca.pem"))
    stranger.load_cert_chain(pki.path("stranger.pem"))  # a CA the node does not trust
    assert await asyncio.to_thread(_refused, port, stranger)
    operator = ssl.create_default_context(cafile=str(admin_pki / "ca.pem"))
    operator.load_cert_chain(str(admin_pki / "ops-client.pem"), str(admin_pki / "ops-client.key"))
    answer = await asyncio.to_thread(_tls_get, port, operator)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


async def test_token_travels_over_https_and_plain_http_gets_no_answer(
    required: tuple[int, NodeConfig],
) -> None:
    port, node = required
    async with AdminClient.for_node(node, TOKEN) as client:
        reply = await client.post(f"https://127.0.0.1:{port}", "/switchover")
        # the token was accepted: a standalone node has nothing to switch over
        assert reply.status == 409 and "standalone" in reply.body["error"], reply
    async with AdminClient.for_node(node, "wrong") as client:
        assert (await client.post(f"https://127.0.0.1:{port}", "/switchover")).status == 401
    async with AdminClient.for_node(node) as client:
        with pytest.raises(AdminClientError):  # the listener speaks TLS only
            await client.get(f"127.0.0.1:{port}", "/status")


async def test_the_server_certificate_is_verified(
    required: tuple[int, NodeConfig], pki: Pki
) -> None:
    port, _ = required
    # trusting another CA: the node's certificate is not accepted
    other = ssl.create_default_context(cafile=pki.path("ca.pem"))
    async with AdminClient(other) as client:
        answer = await client.status(f"https://127.0.0.1:{port}")
    assert "error" in answer and "certificate" in answer["error"].lower(), answer


async def test_optional_client_certificates(
    tmp_path: Path, admin_pki: Path, floatgate_process: Callable[..., FloatgateProcess]
) -> None:
    port = free_port()
    process, node = _start(tmp_path, floatgate_process, f'"127.0.0.1:{port}"',
                           _tls(admin_pki, "optional"))  # fmt: skip
    await asyncio.to_thread(process.wait_listening, port)
    anonymous = ssl.create_default_context(cafile=str(admin_pki / "ca.pem"))
    answer = await asyncio.to_thread(_tls_get, port, anonymous)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    async with AdminClient.for_node(load_node(node)) as client:
        assert (await client.status(f"https://127.0.0.1:{port}")).get("node") == "n1"


@pytest.mark.parametrize("listen", ["PORT", '":PORT"', '"PORT"'])
async def test_a_bare_port_listens_on_loopback_only(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess], listen: str
) -> None:
    port = free_port()
    process, node = _start(tmp_path, floatgate_process, listen.replace("PORT", str(port)))
    await asyncio.to_thread(process.wait_listening, port)
    assert _listening_addresses(port) == {"127.0.0.1"}
    with pytest.raises(ConnectionRefusedError):  # another loopback address: not bound
        socket.create_connection(("127.0.0.2", port), timeout=2).close()
    # plain HTTP from loopback: the token may be used (and a wrong one is a 401, not 403)
    async with AdminClient.for_node(load_node(node), TOKEN) as client:
        assert (await client.post(f"127.0.0.1:{port}", "/switchover")).status == 409
    async with AdminClient.for_node(load_node(node), "wrong") as client:
        assert (await client.post(f"127.0.0.1:{port}", "/switchover")).status == 401


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of TCP sockets listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hexport = fields[1].partition(":")
            if int(hexport, 16) == port and fields[3] == "0A":  # LISTEN
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    found.add(address)
    return found


async def test_the_client_never_sends_the_token_in_clear_to_another_host() -> None:
    """192.0.2.10 (TEST-NET-1) is never contacted: the refusal comes before any packet."""
    context = ssl.create_default_context()
    for address in ("192.0.2.10:9100", "http://192.0.2.10:9100", "admin.example:9100"):
        started = time.monotonic()
        async with AdminClient(context, TOKEN, timeout=30) as client:
            with pytest.raises(PlainTokenRefused, match=r"configure admin\.tls"):
                await client.post(address, "/switchover")
        assert time.monotonic() - started < 1.0


# node.yaml errors name the file and the key


def _errors(tmp_path: Path, tls: str, listen: str = '"127.0.0.1:9100"') -> list[str]:
    node = _node_yaml(tmp_path / "node.yaml", listen, tls)
    with pytest.raises(ConfigError) as caught:
        load_node(node)
    return [e.removeprefix(f"{node}: ") for e in caught.value.errors]


def test_node_yaml_admin_tls_errors(tmp_path: Path, admin_pki: Path, pki: Pki) -> None:
    ca, cert, key = admin_pki / "ca.pem", admin_pki / "n1-admin.pem", admin_pki / "n1-admin.key"
    missing = tmp_path / "missing.pem"
    assert _errors(tmp_path, f"  tls: {{cert: {missing}, key: {key}}}\n") == [
        f"admin.tls.cert: cannot read {missing}: No such file or directory"
    ]
    assert _errors(tmp_path, f"  tls: {{cert: {cert}, key: {cert}}}\n") == [
        f"admin.tls.key: {cert} holds no PEM private key"
    ]
    wrong_key = admin_pki / "ops-client.key"
    (error,) = _errors(tmp_path, f"  tls: {{cert: {cert}, key: {wrong_key}}}\n")
    assert error.startswith(f"admin.tls.key: {wrong_key} cannot be used with the certificate")
    assert _errors(tmp_path, f"  tls: {{cert: {cert}, key: {key}, ca: {key}}}\n") == [
        f"admin.tls.ca: {key} holds no PEM certificate"
    ]
    assert _errors(tmp_path, f"  tls: {{cert: {cert}, key: {key}, verify: required}}\n") == [
        "admin.tls.ca: is required with verify: required (the CA that signs client certificates)"
    ]
    assert _errors(tmp_path, f"  tls: {{cert: {cert}, key: {key}, ca: {ca}, verify: yes}}\n") == [
        "admin.tls.verify: True is not one of none, optional, required"
    ]
    assert _errors(tmp_path, f"  tls: {{cert: {cert}, key: {key}, ca: {ca}, verify: all}}\n") == [
        "admin.tls.verify: 'all' is not one of none, optional, required"
    ]
    (unknown, required) = _errors(tmp_path, f"  tls: {{certificate: {cert}, key: {key}}}\n")
    assert unknown.startswith("admin.tls.certificate: unknown key (allowed here: ca, cert, ")
    assert required == "admin.tls.cert: is required"
    assert _errors(tmp_path, "", listen="70000") == [
        "admin.listen: 70000 is not a port (1-65535) or host:port"
    ]
    good = _node_yaml(tmp_path / "node.yaml", "9100", _tls(admin_pki, "optional"))
    admin = load_node(good).admin
    assert admin is not None and admin.tls is not None and admin.tls.verify == "optional"
    assert str(admin.listen) == "127.0.0.1:9100"


def test_floatgate_check_reports_admin_tls_errors(tmp_path: Path, admin_pki: Path) -> None:
    missing = tmp_path / "gone.key"
    tls = f"  tls: {{cert: {admin_pki / 'n1-admin.pem'}, key: {missing}}}\n"
    node = _node_yaml(tmp_path / "node.yaml", '"127.0.0.1:9100"', tls)
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(_cluster_yaml(8080))
    result = subprocess.run([sys.executable, "-m", "node.cli", "check", str(cluster), "--node",
                             str(node)], capture_output=True, text=True, timeout=60,
                            cwd=REPO)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{node}: admin.tls.key: cannot read {missing}: No such file" in result.stderr


# from another host (the namespace lab): a token in clear is refused by the server


@pytest.fixture
def two_hosts() -> Iterator[TwoHostLab]:
    with two_host_lab() as lab:
        yield lab


def _in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def _serve_in(lab: TwoHostLab, tmp_path: Path, tls: str) -> tuple[subprocess.Popen[bytes], Path]:
    node = _node_yaml(tmp_path / "node.yaml", '"10.199.0.11:9100"', tls)
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(_cluster_yaml(8080))
    log = tmp_path / "floatgate.log"
    process = subprocess.Popen(
        ["ip", "netns", "exec", lab.a, sys.executable, "-m", "node.cli", "run", "--cluster",
         str(cluster), "--node", str(node)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=REPO,
    )  # fmt: skip
    return process, log


def _wait_answering(lab: TwoHostLab, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        probe = "import socket; socket.create_connection(('10.199.0.11', 9100), 1).close()"
        if _in_ns(lab.b, sys.executable, "-c", probe).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"the admin listener did not come up: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.mark.lab
def test_server_refuses_a_token_sent_in_clear_from_another_host(
    two_hosts: TwoHostLab, tmp_path: Path
) -> None:
    process, log = _serve_in(two_hosts, tmp_path, "")
    try:
        _wait_answering(two_hosts, process, log)
        url = "http://10.199.0.11:9100"
        read = _in_ns(two_hosts.b, "curl", "-s", "-m", "5", f"{url}/status")
        assert json.loads(read.stdout)["node"] == "n1"  # reading needs no token
        write = _in_ns(two_hosts.b, "curl", "-s", "-m", "5", "-w", "\n%{http_code}", "-X", "POST",
                       "-H", f"Authorization: Bearer {TOKEN}", f"{url}/switchover")  # fmt: skip
        body, _, code = write.stdout.rpartition("\n")
        assert code == "403", write
        assert "admin.tls" in json.loads(body)["error"]
    finally:
        _stop(process)
    text = log.read_text()
    assert "refused POST /switchover from 10.199.0.12" in text and "enable admin.tls" in text


@pytest.mark.lab
def test_over_tls_the_token_is_accepted_from_another_host(
    two_hosts: TwoHostLab, tmp_path: Path, admin_pki: Path
) -> None:
    process, log = _serve_in(two_hosts, tmp_path, _tls(admin_pki, "required", "n2"))
    ca = ["--cacert", str(admin_pki / "ca.pem")]
    ops = ["--cert", str(admin_pki / "ops-client.pem"), "--key", str(admin_pki / "ops-client.key")]
    try:
        _wait_answering(two_hosts, process, log)
        write = _in_ns(two_hosts.b, "curl", "-s", "-m", "5", "-w", "\n%{http_code}", "-X", "POST",
                       *ca, *ops,
                       "-H", f"Authorization: Bearer {TOKEN}",
                       "https://10.199.0.11:9100/switchover")  # fmt: skip
        body, _, code = write.stdout.rpartition("\n")
        assert code == "409" and "standalone" in json.loads(body)["error"], write
        anonymous = _in_ns(
            two_hosts.b, "curl", "-s", "-m", "5", *ca, "https://10.199.0.11:9100/status"
        )
        assert anonymous.returncode != 0 and not anonymous.stdout, anonymous
    finally:
        _stop(process)
