"""TLS passthrough (mode: tcp): SNI routing without terminating TLS, exact bytes both
ways, split ClientHellos, non-TLS input, timeouts, half-close, ssl-hello checks."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.functional.pki import Pki
from tests.functional.test_tls import client_context, peer_cn


@pytest.fixture
def tls_site(pki: Pki, https_server: Any) -> Any:
    """HTTPS servers terminating TLS themselves, each answering with its name."""

    async def start(name: str, pem: str) -> int:
        async def handler(request: web.Request) -> web.Response:
            body = await request.read()
            return web.Response(text=f"{name}:{hashlib.sha256(body).hexdigest()[:8]}")

        return int(await https_server(handler, pki.path(pem)))

    return start


class Echo:
    """A raw TCP server recording every byte and echoing it back; closes after EOF."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
            writer.write(b"<bye>")
            writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]


def passthrough_yaml(port: int, routes: str, backends: str, default: str = "",
                     extra: str = "") -> str:  # fmt: skip
    return f"""
cluster: pass
frontends:
  - name: pass
    bind: "127.0.0.1:{port}"
    mode: tcp
    hello_timeout: 300ms
    routes: {routes}
{default}
{extra}
backends:
{backends}
"""


def tcp_backend(name: str, port: int, check: str = "") -> str:
    return (f"  - name: {name}\n    mode: tcp\n{check}"
            f"    servers: [{{name: {name}1, address: \"127.0.0.1:{port}\"}}]\n")  # fmt: skip


async def https(
    port: int, context: ssl.SSLContext, name: str, body: bytes = b""
) -> tuple[bytes, ssl.SSLObject]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname=name)  # fmt: skip
    writer.write(b"POST / HTTP/1.1\r\nHost: %b\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%b"
                 % (name.encode(), len(body), body))  # fmt: skip
    data = await asyncio.wait_for(reader.read(), 10)
    ssl_object = writer.get_extra_info("ssl_object")
    writer.close()
    return data, ssl_object


async def test_routes_by_sni_and_client_sees_server_certificate(
    proxy: Any, pki: Pki, tls_site: Any
) -> None:
    app, other = await tls_site("app", "app.pem"), await tls_site("other", "other.pem")
    port = free_port()
    routes = (
        '[{sni: app.test, backend: app}, {sni: "*.app.test", backend: app}, '
        "{sni: other.test, backend: other}]"
    )
    backends = tcp_backend("app", app) + tcp_backend("other", other)
    await proxy(passthrough_yaml(port, routes, backends, "    default_backend: other"))
    context = client_context(pki)
    data, ssl_object = await https(port, context, "app.test", b"hello")
    assert data.startswith(b"HTTP/1.1 200") and b"app:" in data
    assert peer_cn(ssl_object) == "app.test"  # the backend's certificate, end to end
    data, ssl_object = await https(port, context, "www.app.test")
    assert b"app:" in data
    data, ssl_object = await https(port, context, "other.test")
    assert b"other:" in data and peer_cn(ssl_object) == "other.test"
    context.check_hostname = False
    data, _ = await https(port, context, "unknown.test")  # no route: default_backend
    assert b"other:" in data


async def test_bytes_relayed_exactly_and_half_close(proxy: Any) -> None:
    echo = Echo()
    await echo.start()
    port = free_port()
    await proxy(passthrough_yaml(port, "[{sni: echo.test, backend: echo}]",
                                 tcp_backend("echo", echo.port)))  # fmt: skip
    hello = _hello("echo.test")
    payload = hello + bytes(range(256)) * 4096  # 1 MiB after the ClientHello
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(0, len(hello), 7):  # the ClientHello arrives in 7-byte segments
        writer.write(hello[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0.001)
    writer.write(payload[len(hello) :])
    writer.write_eof()  # half-close: we are done sending, still reading
    echoed = await asyncio.wait_for(reader.read(), 10)
    assert echoed == payload + b"<bye>"
    assert bytes(echo.received) == payload


async def test_non_tls_goes_to_default_or_is_closed(proxy: Any) -> None:
    echo = Echo()
    await echo.start()
    with_default, without = free_port(), free_port()
    backends = tcp_backend("echo", echo.port)
    await proxy(passthrough_yaml(with_default, "[]", backends, "    default_backend: echo"))
    await proxy(passthrough_yaml(without, "[{sni: a.test, backend: echo}]", backends))
    reader, writer = await asyncio.open_connection("127.0.0.1", with_default)
    writer.write(b"SSH-2.0-client\r\n")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b"SSH-2.0-client\r\n<bye>"
    reader, writer = await asyncio.open_connection("127.0.0.1", without)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert bytes(echo.received) == b"SSH-2.0-client\r\n"


async def test_hello_timeout_malformed_and_unrouted(proxy: Any) -> None:
    echo = Echo()
    await echo.start()
    port = free_port()
    await proxy(passthrough_yaml(port, "[{sni: a.test, backend: echo}]",
                                 tcp_backend("echo", echo.port)))  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_hello("a.test")[:20])  # a ClientHello that never completes
    assert await asyncio.wait_for(reader.read(), 3) == b""  # hello_timeout is 300ms
    for data in (b"\x16\x03\x01\x00\x08\x01\xff\xff\xff\x00\x00\x00\x00", _hello("b.test")):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)  # oversized declared hello; then a valid hello for no route
        assert await asyncio.wait_for(reader.read(), 3) == b""
    assert echo.received == bytearray()


async def test_ssl_hello_check(
    proxy: Any, pki: Pki, tls_site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "floatgate.health")
    site = await tls_site("app", "app.pem")
    plain = Echo()
    await plain.start()
    port = free_port()
    check = "    check: {type: ssl-hello, interval: 100ms, fall: 1, rise: 1}\n"
    backends = tcp_backend("tls", site, check) + tcp_backend("plain", plain.port, check)
    routes = "[{sni: app.test, backend: tls}, {sni: p.test, backend: plain}]"
    await proxy(passthrough_yaml(port, routes, backends))
    await asyncio.sleep(0.5)
    assert (
        "server plain/plain1 is DOWN, reason: Layer6 invalid answer to a ClientHello" in caplog.text
    )
    assert "server tls/tls1 is DOWN" not in caplog.text


def _hello(name: str) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()
