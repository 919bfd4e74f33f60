"""TLS offload with real clients: Python ssl, curl and openssl s_client."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import free_port
from tests.functional.pki import Pki


def tls_yaml(port: int, backend: str, *, certs: str = "[app, other]", tls_extra: str = "",
             forwardfor: bool = True) -> str:  # fmt: skip
    return f"""
cluster: tls
certificates:
  app: app.pem
  other: {{cert: other.crt, key: other.key}}
client_cas:
  root: ca.pem
crls:
  root_crl: crl.pem
frontends:
  - name: https
    bind: "127.0.0.1:{port}"
    default_backend: app
    forwardfor: {str(forwardfor).lower()}
    tls:
      certificates: {certs}
      handshake_timeout: 500ms
{tls_extra}
backends:
  - name: app
    servers: [{{name: s1, address: "{backend}"}}]
"""


def client_context(pki: Pki, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.path("ca.pem"))
    if cert is not None:
        context.load_cert_chain(pki.path(cert))
    return context


async def https_get(
    port: int, context: ssl.SSLContext, server_name: str = "app.test", path: str = "/",
    extra: bytes = b"",
) -> tuple[bytes, ssl.SSLObject]:  # fmt: skip
    """One request over TLS; returns (raw response, the client's SSL object)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_name
    )
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + server_name.encode()
                 + b"\r\nConnection: close\r\n" + extra + b"\r\n")  # fmt: skip
    data = await asyncio.wait_for(reader.read(), 5)
    ssl_object = writer.get_extra_info("ssl_object")
    writer.close()
    return data, ssl_object


def peer_cn(ssl_object: ssl.SSLObject) -> str:
    subject = dict(x[0] for x in ssl_object.getpeercert()["subject"])  # type: ignore[index]
    return str(subject["commonName"])


async def test_https_terminated_and_forwarded(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(tls_yaml(port, backend.address), pki.dir)
    data, ssl_object = await https_get(port, client_context(pki))
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"a")
    assert ssl_object.selected_alpn_protocol() is None  # the client offered none
    assert backend.headers[0]["X-Forwarded-Proto"] == ["https"]
    assert backend.headers[0]["Host"] == ["app.test"]


async def test_sni_chooses_certificate(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(tls_yaml(port, backend.address), pki.dir)
    context = client_context(pki)
    assert peer_cn((await https_get(port, context, "app.test"))[1]) == "app.test"
    assert peer_cn((await https_get(port, context, "other.test"))[1]) == "other.test"
    assert peer_cn((await https_get(port, context, "deep.app.test"))[1]) == "app.test"
    context.check_hostname = False  # unknown name: the first certificate is the default
    assert peer_cn((await https_get(port, context, "unknown.test"))[1]) == "app.test"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_alpn_and_protocol_versions(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port, modern = free_port(), free_port()
    await proxy(tls_yaml(port, backend.address), pki.dir)
    await proxy(tls_yaml(modern, backend.address, tls_extra="      policy: modern"), pki.dir)
    context = client_context(pki)
    context.set_alpn_protocols(["h2", "http/1.1"])
    _, ssl_object = await https_get(port, context)
    assert ssl_object.selected_alpn_protocol() == "http/1.1"
    assert ssl_object.version() == "TLSv1.3"

    tls12 = client_context(pki)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    _, ssl_object = await https_get(port, tls12)
    assert ssl_object.version() == "TLSv1.2"
    assert ssl_object.cipher()[0].startswith("ECDHE-")  # type: ignore[index]
    assert await _refused(modern, tls12)  # modern: TLS 1.3 only

    old = client_context(pki)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    assert await _refused(port, old)

    weak = client_context(pki)
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:AES256-SHA:DES-CBC3-SHA")  # no forward secrecy, no AEAD
    assert await _refused(port, weak)


async def _refused(port: int, context: ssl.SSLContext) -> bool:
    """True when the server refused the client: handshake error, or (TLS 1.3, where the
    client finishes first) the connection closed before any response."""
    try:
        data, _ = await https_get(port, context)
    except (ssl.SSLError, ConnectionError):
        return True
    return data == b""


async def test_client_auth_required(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    extra = "      client_auth: {ca: root, crl: root_crl, verify: required}"
    await proxy(tls_yaml(port, backend.address, tls_extra=extra), pki.dir)
    assert await _refused(port, client_context(pki))
    assert await _refused(port, client_context(pki, "stranger.pem"))  # wrong CA
    assert await _refused(port, client_context(pki, "revoked.pem"))  # in the CRL
    data, _ = await https_get(port, client_context(pki, "client.pem"))
    assert data.startswith(b"HTTP/1.1 200")
    assert len(backend.requests) == 1
    headers = backend.headers[0]
    assert headers["X-SSL-Client-Verify"] == ["SUCCESS"]
    assert headers["X-SSL-Client-Subject"] == ["CN=alice,O=floatgate dev"]
    assert headers["X-SSL-Client-Issuer"] == ["CN=Test Root CA,O=floatgate dev"]
    der = pki.client.cert.public_bytes(serialization.Encoding.DER)
    assert headers["X-SSL-Client-SHA256"] == [hashlib.sha256(der).hexdigest()]


async def test_client_auth_optional_and_spoofing(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    extra = "      client_auth: {ca: root, verify: optional, forward_pem: true}"
    await proxy(tls_yaml(port, backend.address, tls_extra=extra), pki.dir)
    spoof = (b"X-SSL-Client-Verify: SUCCESS\r\nX-SSL-Client-Subject: CN=admin\r\n"
             b"X-SSL-Client-SHA256: 00\r\nX-SSL-Client-Cert: forged\r\n")  # fmt: skip
    data, _ = await https_get(port, client_context(pki), extra=spoof)
    assert data.startswith(b"HTTP/1.1 200")
    assert backend.headers[0]["X-SSL-Client-Verify"] == ["NONE"]
    for name in ("X-SSL-Client-Subject", "X-SSL-Client-SHA256", "X-SSL-Client-Cert"):
        assert name not in backend.headers[0]
    await https_get(port, client_context(pki, "client.pem"), extra=spoof)
    headers = backend.headers[1]
    assert headers["X-SSL-Client-Verify"] == ["SUCCESS"]
    assert headers["X-SSL-Client-Subject"] == ["CN=alice,O=floatgate dev"]
    assert headers["X-SSL-Client-Cert"][0].startswith("-----BEGIN%20CERTIFICATE-----")


async def test_plain_http_and_garbage_on_tls_port(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(tls_yaml(port, backend.address), pki.dir)
    for junk in (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"\x00" * 64,
        b"\x16\x03\x01\xff\xff" + b"A" * 300,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(junk)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing served
        writer.close()
    assert backend.requests == []
    data, _ = await https_get(port, client_context(pki))  # still serving everyone else
    assert data.startswith(b"HTTP/1.1 200")


async def test_stalled_handshakes_time_out(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(tls_yaml(port, backend.address), pki.dir)
    stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    data, _ = await https_get(port, client_context(pki))  # not blocked behind them
    assert data.startswith(b"HTTP/1.1 200")
    for reader, _ in stalled:  # handshake_timeout is 500ms
        assert await asyncio.wait_for(reader.read(), 5) == b""
    for _, writer in stalled:
        writer.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_with_client_certificate(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    extra = "      client_auth: {ca: root, verify: required}"
    await proxy(tls_yaml(port, backend.address, tls_extra=extra), pki.dir)
    base = ["curl", "-sS", "--cacert", pki.path("ca.pem"), "--resolve",
            f"app.test:{port}:127.0.0.1", f"https://app.test:{port}/curl"]  # fmt: skip
    ok = await asyncio.to_thread(subprocess.run, [*base, "--cert", pki.path("client.pem")],
                                 capture_output=True, timeout=20)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout == b"a", ok.stderr
    refused = await asyncio.to_thread(subprocess.run, base, capture_output=True, timeout=20)
    assert refused.returncode != 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_sees_complete_chain(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(tls_yaml(port, backend.address), pki.dir)
    result = await asyncio.to_thread(
        subprocess.run,
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "other.test",
         "-CAfile", pki.path("ca.pem"), "-alpn", "http/1.1", "-showcerts"],
        input=b"", capture_output=True, timeout=20,
    )  # fmt: skip
    out = result.stdout.decode()
    assert "Verify return code: 0 (ok)" in out
    assert "CN = other.test" in out and "CN = Test Intermediate CA" in out
    assert "ALPN protocol: http/1.1" in out


def _blocking_get(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[bytes, ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = context.wrap_socket(raw, server_hostname="app.test", session=session)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    return data, sock


@pytest.mark.parametrize("kind", ["tls1.2-session-id", "tls1.2-ticket", "tls1.3-ticket"])
async def test_resumed_sessions_keep_their_identity(
    kind: str, backends: Any, proxy: Any, pki: Pki
) -> None:
    """Resumption must not change who the client is: a resumed session of a client that
    proved a certificate is still SUCCESS; one that never did is still NONE, even if it
    now offers a certificate."""
    backend = await backends("a")
    port = free_port()
    extra = "      client_auth: {ca: root, verify: optional}"
    plane = await proxy(tls_yaml(port, backend.address, certs="[app]", tls_extra=extra), pki.dir)

    def server_stats() -> object:  # for the failure message: what the server's cache saw
        tls = plane.listeners[("127.0.0.1", port)].handler.route.tls
        return tls.selector.default.session_stats() if tls is not None else None

    def context(cert: str | None) -> ssl.SSLContext:
        ctx = client_context(pki, cert)
        if kind.startswith("tls1.2"):
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if kind == "tls1.2-session-id":
            ctx.options |= ssl.OP_NO_TICKET
        return ctx

    # A resumed handshake has no CertificateRequest, so what the client could offer the
    # second time does not matter; the server must report what the session proved.
    # A session whose connection the client closed without close_notify can be dropped
    # from the server's cache before the next ClientHello is read (OpenSSL; measured
    # here: ~2% of tries, with or without floatgate's self-check probes): up to three
    # tries for a resumed session, then what it proved is asserted.
    for ctx, expected in ((context("client.pem"), "SUCCESS"), (context(None), "NONE")):
        for _ in range(3):
            _, sock = await asyncio.to_thread(_blocking_get, port, ctx, None)
            session = sock.session  # (TLS 1.3: the ticket arrived with the response)
            sock.close()
            _, resumed = await asyncio.to_thread(_blocking_get, port, ctx, session)
            if resumed.session_reused:
                break
            resumed.close()
        assert resumed.session_reused, f"{kind}: session was not resumed: {server_stats()}"
        resumed.close()
        assert backend.headers[-1]["X-SSL-Client-Verify"] == [expected], kind


def test_bad_certificates_refused_by_check(pki: Pki, tmp_path: Path) -> None:
    import sys

    from tests.conftest import REPO

    cases = {
        "mismatch.pem": "key does not match certificate CN=app.test",
        "disorder.pem": "chain out of order",
        "expired.pem": "certificate CN=old.test expired on",
        "nosan.pem": "certificate CN=nosan.test has no subjectAltName",
        "missing.pem": "cannot read",
    }
    for filename, message in cases.items():
        config = tmp_path / "cluster.yaml"
        config.write_text(tls_yaml(8443, "127.0.0.1:1", certs="[app]").replace("app.pem", filename))
        result = subprocess.run(
            [sys.executable, "-m", "node.cli", "check", str(config), "--certs", str(pki.dir)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, filename
        assert f"certificates.app: {pki.dir / filename}: {message}" in result.stderr, result.stderr


def test_sighup_swaps_certificate_for_new_handshakes(
    pki: Pki, tmp_path: Path, floatgate_process: Any
) -> None:
    import signal
    import time

    from tests.functional.test_process import ThreadBackend

    backend = ThreadBackend("a")
    port = free_port()
    certs = tmp_path / "certs"
    shutil.copytree(pki.dir, certs)
    yaml = tls_yaml(port, backend.address, certs="[app]")
    for name in ("app.pem", "ca.pem", "crl.pem", "other.crt", "other.key"):
        yaml = yaml.replace(f" {name}", f" {certs / name}")  # absolute: our private copy
    process = floatgate_process(yaml)
    process.wait_listening(port)
    context = client_context(pki)
    context.check_hostname = False

    def fingerprint_of(sock: ssl.SSLSocket) -> str:
        return hashlib.sha256(sock.getpeercert(binary_form=True) or b"").hexdigest()

    def connect() -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        return context.wrap_socket(raw, server_hostname="app.test")

    def request(sock: ssl.SSLSocket) -> bytes:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        data = b""
        while not data.endswith(b"a:0"):
            data += sock.recv(4096)
        return data

    established = connect()
    assert request(established).startswith(b"HTTP/1.1 200")
    before = fingerprint_of(established)
    shutil.copy(certs / "other.pem", certs / "app.pem")  # new certificate, same file name
    process.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while fingerprint_of(fresh := connect()) == before and time.monotonic() < deadline:
        fresh.close()
        time.sleep(0.1)
    assert fingerprint_of(fresh) != before and "other.test" in str(fresh.getpeercert())
    fresh.close()
    assert request(established).startswith(b"HTTP/1.1 200")  # old connection undisturbed
    # A broken certificate is refused on reload: the current one keeps serving.
    shutil.copy(certs / "mismatch.pem", certs / "app.pem")
    process.signal(signal.SIGHUP)
    time.sleep(0.5)
    after = connect()
    assert "other.test" in str(after.getpeercert())
    after.close()
    established.close()
    assert "key does not match certificate" in process.log.read_text()
    backend.stop()


async def test_ticket_keys_rotate(backends: Any, proxy: Any, pki: Pki) -> None:
    """Tickets resume until the frontend's contexts are rebuilt (new ticket keys)."""
    backend = await backends("a")
    port = free_port()
    extra = "      ticket_rotation: 600ms"
    await proxy(tls_yaml(port, backend.address, certs="[app]", tls_extra=extra), pki.dir)
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # ticket resumption, no session cache
    _, first = await asyncio.to_thread(_blocking_get, port, context, None)
    session = first.session
    first.close()
    _, again = await asyncio.to_thread(_blocking_get, port, context, session)
    assert again.session_reused
    again.close()
    await asyncio.sleep(1.3)  # past at least one rotation
    _, after = await asyncio.to_thread(_blocking_get, port, context, session)
    assert not after.session_reused  # the old ticket's key is gone: full handshake
    after.close()


async def test_expired_client_cert_and_oversized_hello(backends: Any, proxy: Any, pki: Pki) -> None:
    backend = await backends("a")
    port = free_port()
    extra = "      client_auth: {ca: root, verify: required}"
    await proxy(tls_yaml(port, backend.address, tls_extra=extra), pki.dir)
    assert await _refused(port, client_context(pki, "expired-client.pem"))
    # A ClientHello record announcing 16 MiB of handshake: closed, nothing served.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x16\x03\x01\x40\x00\x01\xff\xff\xff" + b"\x00" * 16379)
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        answer = b""
    writer.close()
    assert answer == b"" or answer.startswith(b"\x15\x03")  # nothing, or a TLS alert
    data, _ = await https_get(port, client_context(pki, "client.pem"))
    assert data.startswith(b"HTTP/1.1 200")  # everyone else is still served
    assert len(backend.requests) == 1
