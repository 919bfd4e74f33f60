"""PROXY protocol: sent to servers (HTTP and passthrough, health checks included) and
accepted from trusted sources only."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from node.proxy.wire.proxyproto import decode, encode_v1, encode_v2, needed
from tests.conftest import cluster_yaml, free_port
from tests.functional.pki import Pki
from tests.functional.rawhttp import RecordingBackend, raw_exchange
from tests.functional.test_tls import client_context


class ProxyRequiringServer:
    """Answers HTTP only after a valid PROXY header; records the client address. With
    ``tls``, the header comes in clear and TLS after it, as HAProxy sends it and as
    nginx's ``listen ... ssl proxy_protocol`` expects."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.sources: list[tuple[str, int] | None] = []
        self.refused = 0
        self.port = 0
        self.tls = tls

    async def start(self) -> None:
        """The header is read from the socket a byte at a time, so nothing behind it (a
        ClientHello) is consumed before TLS starts, as a real server must do."""
        loop = asyncio.get_running_loop()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener

        async def accept() -> None:
            while True:
                conn, _ = await loop.sock_accept(listener)
                self._tasks.add(loop.create_task(serve(conn)))

        async def serve(conn: socket.socket) -> None:
            data = b""
            while not (want := _complete(data)):
                byte = await loop.sock_recv(conn, 1)
                if not byte:
                    break
                data += byte
            if want <= 0:  # closed early, or not a PROXY header (-1)
                self.refused += 1
                conn.close()
                return
            self.sources.append(decode(data[:want]).src)
            reader = asyncio.StreamReader()
            try:
                transport, protocol = await loop.connect_accepted_socket(
                    lambda: asyncio.StreamReaderProtocol(reader), conn, ssl=self.tls
                )
            except (ssl.SSLError, OSError):
                self.refused += 1
                conn.close()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        self._tasks: set[asyncio.Task[None]] = {loop.create_task(accept())}


def _complete(data: bytes) -> int:
    try:
        want = needed(data)
    except ValueError:
        return -1
    return want if want and len(data) >= want else 0


async def test_send_proxy_v1_to_http_server_and_checks(proxy: Any) -> None:
    server = ProxyRequiringServer()
    await server.start()
    port = free_port()
    extra = "    send_proxy: v1\n    check: {type: http, interval: 100ms, fall: 1, rise: 1}"
    await proxy(cluster_yaml(port, [f"127.0.0.1:{server.port}"], backend_extra=extra))
    await asyncio.sleep(0.35)  # a few health checks, each with a PROXY UNKNOWN header
    for _ in range(2):  # never a shared connection: one header per client connection
        reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert reply.status == 200 and reply.body == b"ok"
    assert server.refused == 0
    clients = [s for s in server.sources if s is not None]
    assert len(clients) == 2 and all(s[0] == "127.0.0.1" for s in clients)
    assert None in server.sources  # the health checks named no client


async def test_send_proxy_to_a_tls_server_goes_before_the_handshake(proxy: Any, pki: Pki) -> None:
    """send_proxy with tls to the server: the PROXY header first, in clear, then TLS,
    for requests and for health checks alike."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.path("app.pem"))
    server = ProxyRequiringServer(context)
    await server.start()
    port = free_port()
    extra = ("    send_proxy: v1\n    tls: {verify: required, ca: root, sni: app.test}\n"
             "    check: {type: http, interval: 200ms, timeout: 1s, fall: 1, rise: 1}")  # fmt: skip
    text = cluster_yaml(port, [f"127.0.0.1:{server.port}"], backend_extra=extra)
    await proxy(text.replace("frontends:", "client_cas: {root: ca.pem}\nfrontends:"), pki.dir)
    await asyncio.sleep(0.6)  # health checks, each with a header then a handshake
    for _ in range(2):
        reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert reply.status == 200 and reply.body == b"ok"
    assert server.refused == 0
    clients = [s for s in server.sources if s is not None]
    assert len(clients) == 2 and all(s[0] == "127.0.0.1" for s in clients)


async def test_send_proxy_v2_in_passthrough(proxy: Any) -> None:
    received = bytearray()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    backend = server.sockets[0].getsockname()[1]
    port = free_port()
    await proxy(f"""
cluster: c
frontends:
  - {{name: p, bind: "127.0.0.1:{port}", mode: tcp, default_backend: b}}
backends:
  - {{name: b, mode: tcp, send_proxy: v2, servers: [{{name: s, address: "127.0.0.1:{backend}"}}]}}
""")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    local_port = writer.get_extra_info("sockname")[1]
    writer.write(b"not tls at all")
    await asyncio.wait_for(reader.read(), 5)
    want = needed(bytes(received))
    assert decode(bytes(received[:want])).src == ("127.0.0.1", local_port)
    assert bytes(received[want:]) == b"not tls at all"


async def _send_from(source: str, port: int, data: bytes) -> bytes:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""  # refused with a reset: nothing was answered
    finally:
        writer.close()


async def test_accept_proxy_only_from_trusted_sources(proxy: Any) -> None:
    backend = RecordingBackend()
    await backend.start()
    port = free_port()
    extra = "    forwardfor: true\n    accept_proxy: {trusted: [127.0.0.1/32]}"
    await proxy(cluster_yaml(port, [f"127.0.0.1:{backend.port}"], frontend_extra=extra))
    header = encode_v1(("203.0.113.7", 5555), ("10.0.0.1", 80))
    request = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    answer = await _send_from("127.0.0.1", port, header + request)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"X-Forwarded-For: 203.0.113.7\r\n" in backend.received
    # A trusted source without a header: refused before any HTTP is read.
    assert await _send_from("127.0.0.1", port, request) == b""
    # An untrusted source cannot claim an address: its PROXY line is bad HTTP.
    answer = await _send_from("127.0.0.2", port, header + request)
    assert answer.startswith(b"HTTP/1.1 400")
    assert backend.request_count() == 1


async def test_hello_timeout_bounds_the_proxy_header_on_http_frontends(proxy: Any) -> None:
    """`hello_timeout` is accepted on http frontends too (it bounds the PROXY header
    there; it used to be refused as an unknown key, leaving a fixed 5 s)."""
    backend = RecordingBackend()
    await backend.start()
    port = free_port()
    extra = "    accept_proxy: {trusted: [127.0.0.1/32]}\n    hello_timeout: 300ms"
    await proxy(cluster_yaml(port, [f"127.0.0.1:{backend.port}"], frontend_extra=extra))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"PROXY TCP4 203.0.113.7 ")  # and never the rest
        try:  # dropped (closed or reset) well before the 5 s default
            assert await asyncio.wait_for(reader.read(), 4) == b""
        except ConnectionResetError:
            pass
    finally:
        writer.close()
    assert backend.request_count() == 0


async def test_accept_proxy_v2_before_tls(backends: Any, proxy: Any, pki: Pki) -> None:
    app = await backends("a")
    port = free_port()
    await proxy(
        f"""
cluster: c
certificates: {{app: app.pem}}
frontends:
  - name: https
    bind: "127.0.0.1:{port}"
    default_backend: b
    forwardfor: true
    accept_proxy: {{trusted: [127.0.0.0/8]}}
    tls: {{certificates: [app]}}
backends:
  - {{name: b, servers: [{{name: s, address: "{app.address}"}}]}}
""",
        pki.dir,
    )
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(encode_v2(("198.51.100.9", 1234), ("10.0.0.1", 443)))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(
        sock=sock, ssl=client_context(pki), server_hostname="app.test"
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
    assert app.headers[0]["X-Forwarded-For"] == ["198.51.100.9"]
