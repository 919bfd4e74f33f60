"""Re-encryption: TLS from floatgate to the servers (verify, CA, SNI, client certificate),
for requests and health checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.functional.pki import Pki
from tests.functional.rawhttp import raw_exchange


@pytest.fixture
def tls_backend(pki: Pki, https_server: Any) -> Any:
    """An HTTPS server with the app.test certificate that records each client's CN."""

    async def start(require_client_cert: bool = False) -> tuple[int, list[str]]:
        seen: list[str] = []

        async def handler(request: web.Request) -> web.Response:
            ssl_object = request.transport.get_extra_info("ssl_object")  # type: ignore[union-attr]
            peer = ssl_object.getpeercert() if ssl_object else None
            seen.append(str(dict(x[0] for x in peer["subject"])["commonName"]) if peer else "-")
            return web.Response(text=f"tls:{request.headers.get('Host')}")

        client_ca = pki.path("ca.pem") if require_client_cert else None
        return await https_server(handler, pki.path("app.pem"), client_ca), seen

    return start


def yaml_for(port: int, backend_port: int, tls: str, check: str = "") -> str:
    return f"""
cluster: c
certificates:
  alice: client.pem
client_cas:
  root: ca.pem
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: secure}}
backends:
  - name: secure
    retries: 0
    tls: {tls}
{check}
    servers: [{{name: s1, address: "127.0.0.1:{backend_port}"}}]
"""


GET = b"GET /x HTTP/1.1\r\nHost: www.example\r\n\r\n"


async def test_verified_tls_to_backend(proxy: Any, pki: Pki, tls_backend: Any) -> None:
    backend_port, seen = await tls_backend()
    port = free_port()
    await proxy(
        yaml_for(port, backend_port, "{verify: required, ca: root, sni: app.test}"), pki.dir
    )
    reply = await raw_exchange(port, GET)
    assert reply.status == 200 and reply.body == b"tls:www.example"
    assert seen == ["-"]


async def test_name_mismatch_refused_unless_verify_none(
    proxy: Any, pki: Pki, tls_backend: Any
) -> None:
    backend_port, seen = await tls_backend()
    strict, lax = free_port(), free_port()
    await proxy(yaml_for(strict, backend_port, "{verify: required, ca: root, sni: wrong.test}"),
                pki.dir)  # fmt: skip
    await proxy(yaml_for(lax, backend_port, "{verify: none}"), pki.dir)
    assert (await raw_exchange(strict, GET)).status == 503
    assert seen == []  # the handshake failed: no request reached the server
    assert (await raw_exchange(lax, GET)).status == 200


async def test_client_certificate_to_backend(proxy: Any, pki: Pki, tls_backend: Any) -> None:
    backend_port, seen = await tls_backend(require_client_cert=True)
    with_cert, without = free_port(), free_port()
    tls = "{verify: required, ca: root, sni: app.test, client_certificate: alice}"
    await proxy(yaml_for(with_cert, backend_port, tls), pki.dir)
    await proxy(yaml_for(without, backend_port, "{verify: required, ca: root, sni: app.test}"),
                pki.dir)  # fmt: skip
    assert (await raw_exchange(with_cert, GET)).status == 200
    assert seen == ["alice"]
    assert (await raw_exchange(without, GET)).status in (502, 503)


async def test_health_check_over_tls(
    proxy: Any, pki: Pki, tls_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    caplog.set_level(logging.WARNING, "floatgate.health")
    backend_port, seen = await tls_backend()
    good, bad = free_port(), free_port()
    check = "    check: {type: http, path: /health, interval: 100ms, fall: 1, rise: 1}"
    await proxy(yaml_for(good, backend_port, "{ca: root, sni: app.test}", check), pki.dir)
    await proxy(yaml_for(bad, backend_port, "{ca: root, sni: nope.test}", check), pki.dir)
    await asyncio.sleep(0.5)
    assert "TLS handshake failed" in caplog.text and "is DOWN" in caplog.text
    assert (await raw_exchange(good, GET)).status == 200
    assert seen.count("-") >= 3  # health checks and the request reached it over TLS
