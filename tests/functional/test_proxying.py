"""HTTP proxying through a real data plane on loopback: headers, bodies, methods,
WebSocket. Clients are aiohttp, raw sockets and curl."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import cluster_yaml, free_port
from tests.functional.rawhttp import raw_exchange


async def test_proxies_path_query_and_host_verbatim(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reply = await raw_exchange(
        port, b"GET /a%2Fb/../c?x=1&y=%20 HTTP/1.1\r\nHost: example.test\r\n\r\n"
    )
    assert reply.status == 200
    assert reply.body == b"a"
    assert backend.requests == [("GET", "/a%2Fb/../c?x=1&y=%20")]
    assert backend.headers[0]["Host"] == ["example.test"]


async def test_hop_by_hop_headers_removed_both_ways(backends: Any, proxy: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(
            text="ok",
            headers={
                "Keep-Alive": "timeout=5",
                "X-Private": "1",
                "Connection": "X-Private",
                "Proxy-Connection": "keep-alive",
                "X-End": "kept",
            },
        )

    seen: list[dict[str, str]] = []
    backend = await backends("a", handler)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reply = await raw_exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
        b"Keep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
        b"Upgrade: h2c\r\nTrailer: X-T\r\nX-Kept: yes\r\n\r\n",
    )
    sent = {k.lower() for k in seen[0]}
    for name in ("x-secret", "keep-alive", "te", "proxy-connection", "upgrade", "trailer"):
        assert name not in sent, name
    assert seen[0]["X-Kept"] == "yes"
    received = {k.lower() for k in reply.headers}
    assert "x-private" not in received
    assert "keep-alive" not in received
    assert "proxy-connection" not in received
    assert reply.headers["x-end"] == "kept"


async def test_forwarded_headers_replace_untrusted_values(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address], frontend_extra="    forwardfor: true"))
    async with aiohttp.ClientSession() as client:
        await client.get(
            f"http://127.0.0.1:{port}/",
            headers={
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.test",
                "Host": "good.test",
            },
        )
    headers = backend.headers[0]
    assert headers["X-Forwarded-For"] == ["127.0.0.1"]
    assert headers["X-Forwarded-Proto"] == ["http"]
    assert headers["X-Forwarded-Host"] == ["good.test"]


async def test_forwarded_headers_kept_for_trusted_client(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    extra = "    forwardfor: {trusted: [127.0.0.0/8]}"
    await proxy(cluster_yaml(port, [backend.address], frontend_extra=extra))
    async with aiohttp.ClientSession() as client:
        await client.get(
            f"http://127.0.0.1:{port}/",
            headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        )
    assert backend.headers[0]["X-Forwarded-For"] == ["203.0.113.9, 127.0.0.1"]
    assert backend.headers[0]["X-Forwarded-Proto"] == ["https"]


async def test_content_length_and_chunked_bodies(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reply = await raw_exchange(
        port, b"POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
    )
    assert reply.status == 200
    reply = await raw_exchange(
        port,
        b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: dropped\r\n\r\n",
    )
    assert reply.status == 200
    assert backend.bodies == [b"hello world", b"hello world"]
    assert backend.headers[0]["Content-Length"] == ["11"]
    assert "X-Trailer" not in backend.headers[1]


async def test_expect_100_continue(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"data")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert final.startswith(b"HTTP/1.1 200")
    writer.close()
    assert backend.bodies == [b"data"]


async def test_head_and_no_body_statuses(backends: Any, proxy: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path == "/204":
            return web.Response(status=204)
        if request.path == "/304":
            return web.Response(status=304, headers={"ETag": '"x"'})
        return web.Response(body=b"x" * 1234)

    backend = await backends("a", handler)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Three requests on one connection: any stray body byte would corrupt the next answer.
    writer.write(
        b"HEAD /big HTTP/1.1\r\nHost: h\r\n\r\nGET /204 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /304 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1234" in head
    no_content = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert no_content.startswith(b"HTTP/1.1 204")
    not_modified = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert not_modified.startswith(b"HTTP/1.1 304")
    writer.close()


async def test_streams_large_bodies_both_ways(backends: Any, proxy: Any) -> None:
    size = 32 * 1024 * 1024

    async def handler(request: web.Request) -> web.StreamResponse:
        received = 0
        async for chunk in request.content.iter_any():
            received += len(chunk)
        response = web.StreamResponse(headers={"X-Received": str(received)})
        await response.prepare(request)
        block = b"z" * 65536
        for _ in range(size // len(block)):
            await response.write(block)
        await response.write_eof()
        return response

    backend = await backends("a", handler)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))

    async def upload() -> Any:
        block = b"y" * 65536
        for _ in range(size // len(block)):
            yield block

    async with aiohttp.ClientSession() as client:
        async with client.post(f"http://127.0.0.1:{port}/big", data=upload()) as response:
            assert response.headers["X-Received"] == str(size)
            total = 0
            async for chunk in response.content.iter_any():
                total += len(chunk)
    assert total == size


async def test_websocket_proxied_both_ways(backends: Any, proxy: Any) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                if message.data == "bye":
                    await ws.close(code=4001, message=b"done")
                    break
                await ws.send_str(f"echo:{message.data}")
            elif message.type is aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    backend = await backends("a", handler)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"http://127.0.0.1:{port}/ws", protocols=("chat",)) as ws:
            assert ws.protocol == "chat"
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
            await ws.send_bytes(b"\x01\x02\x03")
            assert (await ws.receive(timeout=5)).data == b"\x03\x02\x01"
            await ws.send_str("bye")
            closing = await ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert closing.data == 4001


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_through_proxy(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    result = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", "-i", "--data-binary", "@-", f"http://127.0.0.1:{port}/curl"],
        input=b"from curl", capture_output=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 200")
    assert result.stdout.endswith(b"\r\n\r\na")
    assert backend.bodies == [b"from curl"]


async def test_keep_alive_reuses_client_connection(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"a"
    writer.close()
    assert len(backend.requests) == 3


async def test_pipelined_requests_answered_in_order(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    backend.delay = 0.05
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5)))
    for _ in range(5):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(1) == b"a"
    writer.close()
    assert [p for _, p in backend.requests] == ["/0", "/1", "/2", "/3", "/4"]


async def test_a_pipelined_request_split_across_reads_survives_an_idle_answer(
    backends: Any, proxy: Any
) -> None:
    """An idle connection gives its parser back between requests, but only at a
    message boundary: the first part of a pipelined request that came with the last
    complete one is kept while that one is answered, and the rest completes it later
    (dropped with the parser, the rest would be a 400). Plain keep-alive requests after
    an idle pause are parsed by a new parser."""
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HT")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(1) == b"a"
    await asyncio.sleep(0.3)
    writer.write(b"TP/1.1\r\nHost: h\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert await reader.readexactly(1) == b"a"
    await asyncio.sleep(0.3)  # idle at a boundary: the parser was given back
    writer.write(b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(1) == b"a"
    writer.close()
    assert [p for _, p in backend.requests] == ["/1", "/2", "/3"]


async def test_http10_client_keepalive_and_close(backends: Any, proxy: Any) -> None:
    async def no_length(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"streamed")
        await response.write_eof()
        return response

    backend = await backends("a", no_length)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    # Without a length, an HTTP/1.0 client learns the end of the body from the close.
    reply = await raw_exchange(port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert reply.status == 200 and reply.body == b"streamed" and reply.closed
    assert "transfer-encoding" not in reply.headers
    # The same response to HTTP/1.1 is chunked and the connection stays open.
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply.headers["transfer-encoding"] == "chunked" and not reply.closed
    assert reply.body.startswith(b"8\r\nstreamed\r\n0\r\n\r\n")


async def test_http10_keepalive_with_length(backends: Any, proxy: Any) -> None:
    backend = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reply = await raw_exchange(port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert reply.status == 200 and not reply.closed
    assert reply.headers["connection"].lower() == "keep-alive"
    reply = await raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    assert reply.status == 200 and reply.closed


async def test_pooled_connection_closed_by_server_is_not_an_error(proxy: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=0.2)
    await runner.setup()
    backend_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", backend_port).start()
    port = free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{backend_port}"], backend_extra="    retries: 0"))
    for _ in range(3):
        reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert reply.status == 200
        await asyncio.sleep(0.4)  # the server closes its idle keep-alive connection
    await runner.cleanup()


async def test_refused_upgrade_is_relayed_and_closed(backends: Any, proxy: Any) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text="no websockets here")

    backend = await backends("a", refuse)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    reply = await raw_exchange(
        port,
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert reply.status == 403 and reply.body == b"no websockets here" and reply.closed
