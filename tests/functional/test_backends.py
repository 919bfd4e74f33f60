"""Balancing, health checks, retries, timeouts, queueing and error answers, against
real backends on loopback."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import aiohttp
import pytest

from tests.conftest import cluster_yaml, free_port
from tests.functional.rawhttp import RecordingBackend, raw_exchange


async def _names(port: int, count: int, headers: dict[str, str] | None = None,
                 paths: list[str] | None = None) -> list[str]:  # fmt: skip
    names = []
    async with aiohttp.ClientSession() as client:
        for i in range(count):
            path = paths[i % len(paths)] if paths else "/"
            async with client.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                names.append(r.headers.get("X-Backend", f"status {r.status}"))
    return names


async def _concurrent_statuses(port: int, count: int, stagger: float = 0.0) -> list[int]:
    """Send GET /0 .. /count-1 at once (request i after i*stagger s); their statuses."""
    async with aiohttp.ClientSession() as client:

        async def get(i: int) -> int:
            await asyncio.sleep(i * stagger)
            async with client.get(f"http://127.0.0.1:{port}/{i}") as r:
                return r.status

        return list(await asyncio.gather(*(get(i) for i in range(count))))


async def test_weighted_roundrobin_is_smooth(backends: Any, proxy: Any) -> None:
    a, b = await backends("a"), await backends("b")
    port = free_port()
    yaml = cluster_yaml(port, [a.address, b.address]).replace(
        f'address: "{a.address}"', f'address: "{a.address}", weight: 3'
    )
    await proxy(yaml)
    names = await _names(port, 8)
    assert collections.Counter(names) == {"a": 6, "b": 2}
    assert "a,a,a,a" not in ",".join(names)  # interleaved, not bursts


async def test_leastconn_prefers_idle_server(backends: Any, proxy: Any) -> None:
    slow, fast = await backends("slow"), await backends("fast")
    slow.delay = 1.0
    port = free_port()
    await proxy(cluster_yaml(port, [slow.address, fast.address],
                             backend_extra="    balance: leastconn"))  # fmt: skip
    async with aiohttp.ClientSession() as client:
        pending = asyncio.ensure_future(client.get(f"http://127.0.0.1:{port}/"))
        await asyncio.sleep(0.2)  # one request now occupies one server
        occupied = "slow" if slow.requests else "fast"
        names = await _names(port, 4)
        (await pending).release()
    if occupied == "slow":
        assert names == ["fast"] * 4


async def test_source_hash_is_sticky_and_uri_hash_spreads(backends: Any, proxy: Any) -> None:
    servers = [await backends(n) for n in "abc"]
    port = free_port()
    await proxy(cluster_yaml(port, [s.address for s in servers],
                             backend_extra="    balance: source"))  # fmt: skip
    assert len(set(await _names(port, 10))) == 1
    port2 = free_port()
    await proxy(cluster_yaml(port2, [s.address for s in servers],
                             backend_extra="    balance: uri"))  # fmt: skip
    paths = [f"/item/{i}" for i in range(30)]
    first = await _names(port2, 30, paths=paths)
    assert await _names(port2, 30, paths=paths) == first  # same URI, same server
    assert len(set(first)) == 3


async def test_backup_used_only_when_primaries_down(backends: Any, proxy: Any) -> None:
    primary, backup = await backends("primary"), await backends("backup")
    port = free_port()
    check = "    check: {type: http, path: /health, interval: 100ms, rise: 1, fall: 1}"
    yaml = cluster_yaml(port, [primary.address, backup.address], backend_extra=check)
    yaml = yaml.replace(
        f'address: "{backup.address}"', f'address: "{backup.address}", backup: true'
    )
    await proxy(yaml)
    assert set(await _names(port, 4)) == {"primary"}
    primary.status = 500
    await asyncio.sleep(0.4)
    assert set(await _names(port, 4)) == {"backup"}
    primary.status = 200
    await asyncio.sleep(0.4)
    assert set(await _names(port, 4)) == {"primary"}


async def test_http_check_logs_transitions_with_reason(
    backends: Any, proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a = await backends("a")
    port = free_port()
    check = ("    check: {type: http, path: /hc, interval: 100ms, rise: 2, fall: 2, "
             "expect: 200-299, host: health.test}")  # fmt: skip
    await proxy(cluster_yaml(port, [a.address], backend_extra=check))
    caplog.set_level(logging.WARNING, "floatgate.health")
    a.status = 503
    await asyncio.sleep(0.5)
    assert "server app/s0 is DOWN, reason: Layer7 wrong status, code: 503" in caplog.text
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply.status == 503
    a.status = 204
    await asyncio.sleep(0.5)
    assert "server app/s0 is UP, reason: Layer7 check passed, code: 204" in caplog.text
    assert ("GET", "/hc") in a.requests
    assert a.headers[a.requests.index(("GET", "/hc"))]["Host"] == ["health.test"]


async def test_all_servers_down_gives_503_at_once(proxy: Any) -> None:
    port, dead = free_port(), free_port()
    check = "    check: {type: tcp, interval: 100ms, fall: 1}"
    await proxy(cluster_yaml(port, [f"127.0.0.1:{dead}"], backend_extra=check))
    await asyncio.sleep(0.3)
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply.status == 503
    assert reply.elapsed < 0.5
    assert reply.headers["content-type"].startswith("text/plain")
    assert b"Traceback" not in reply.body and len(reply.body) < 200


async def test_retry_redispatches_on_connection_failure(backends: Any, proxy: Any) -> None:
    alive = await backends("alive")
    port, dead = free_port(), free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{dead}", alive.address],
                             backend_extra="    retries: 1"))  # fmt: skip
    async with aiohttp.ClientSession() as client:
        for _ in range(6):
            async with client.post(f"http://127.0.0.1:{port}/", data=b"body") as r:
                assert r.status == 200
                assert await r.text() == "alive"
    assert alive.bodies == [b"body"] * 6


async def test_connection_failure_without_retries_is_503(proxy: Any) -> None:
    port, dead = free_port(), free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{dead}"], backend_extra="    retries: 0"))
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply.status == 503


async def test_passive_marking_down(proxy: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "floatgate.health")
    port, dead = free_port(), free_port()
    extra = "    retries: 0\n    passive_fall: 2\n    check: {type: tcp, interval: 1m}"
    await proxy(cluster_yaml(port, [f"127.0.0.1:{dead}"], backend_extra=extra))
    for _ in range(3):
        await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert "is DOWN, reason: 2 consecutive connection failures" in caplog.text


async def test_server_timeout_gives_504(backends: Any, proxy: Any) -> None:
    slow = await backends("slow")
    slow.delay = 2.0
    port = free_port()
    await proxy(cluster_yaml(port, [slow.address], backend_extra="    timeout: {server: 300ms}"))
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply.status == 504
    assert 0.25 < reply.elapsed < 1.5


async def test_post_not_replayed_after_reaching_server(proxy: Any) -> None:
    """A server that drops the connection after reading a POST: 502, sent exactly once."""
    received: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    port = free_port()
    await proxy(cluster_yaml(port, [address], backend_extra="    retries: 3"))
    reply = await raw_exchange(
        port, b"POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert reply.status == 502
    assert len(received) == 1
    reply = await raw_exchange(port, b"GET /idem HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply.status == 502
    assert len(received) == 1 + 4  # an idempotent GET was retried 3 times
    server.close()


async def test_server_maxconn_queue_and_queue_timeout(backends: Any, proxy: Any) -> None:
    slow = await backends("slow")
    slow.delay = 0.6
    port = free_port()
    await proxy(cluster_yaml(port, [slow.address], server_extra=", maxconn: 1",
                             backend_extra="    timeout: {queue: 200ms}"))  # fmt: skip
    statuses = await _concurrent_statuses(port, 2)
    assert sorted(statuses) == [200, 503]


async def test_queue_serves_waiters_in_order(backends: Any, proxy: Any) -> None:
    slow = await backends("slow")
    slow.delay = 0.2
    port = free_port()
    await proxy(cluster_yaml(port, [slow.address], server_extra=", maxconn: 1",
                             backend_extra="    timeout: {queue: 5s}"))  # fmt: skip
    statuses = await _concurrent_statuses(port, 4, stagger=0.02)
    assert statuses == [200] * 4
    assert [p for _, p in slow.requests] == ["/0", "/1", "/2", "/3"]


async def test_maxqueue_full_is_503(backends: Any, proxy: Any) -> None:
    slow = await backends("slow")
    slow.delay = 0.5
    port = free_port()
    await proxy(cluster_yaml(port, [slow.address], server_extra=", maxconn: 1",
                             backend_extra="    maxqueue: 1"))  # fmt: skip
    statuses = await _concurrent_statuses(port, 3)
    assert sorted(statuses) == [200, 200, 503]


async def test_frontend_maxconn_holds_extra_connections(backends: Any, proxy: Any) -> None:
    a = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [a.address], frontend_extra="    maxconn: 1"))
    first_reader, first = await asyncio.open_connection("127.0.0.1", port)
    first.write(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.wait_for(first_reader.readuntil(b"\r\n\r\n"), 5)
    second_reader, second = await asyncio.open_connection("127.0.0.1", port)  # in backlog
    second.write(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(second_reader.readuntil(b"\r\n\r\n"), 0.5)
    first.close()
    head = await asyncio.wait_for(second_reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    second.close()


async def test_client_timeout_408_and_idle_close(backends: Any, proxy: Any) -> None:
    a = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [a.address], frontend_extra="    timeout: {client: 300ms}"))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n")  # headers never finished
    data = await asyncio.wait_for(reader.read(), 3)
    assert data.startswith(b"HTTP/1.1 408")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\na"), 3)
    assert await asyncio.wait_for(reader.read(), 3) == b""  # idle keep-alive closed
    assert a.requests == [("GET", "/")]


async def test_access_log_line(
    backends: Any, proxy: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The line reaches stderr (the default target) from the writer thread; the access
    log is on when its logger is at INFO (--log-level WARNING silences it)."""
    caplog.set_level(logging.INFO, "floatgate.access")
    a = await backends("a")
    port = free_port()
    await proxy(cluster_yaml(port, [a.address]))
    await raw_exchange(port, b"GET /logged?q=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    lines: list[str] = []
    for _ in range(50):  # flush_interval is 100 ms
        await asyncio.sleep(0.05)
        lines += [x.split("floatgate.access: ", 1)[1] for x in capfd.readouterr().err.splitlines()
                  if " INFO floatgate.access: " in x]  # fmt: skip
        if lines:
            break
    assert len(lines) == 1
    client, frontend, route, timers, status, size, *_ = lines[0].split(" ")
    assert (client, frontend, route, status, size) == ("127.0.0.1", "web", "app/s0", "200", "1")
    assert len(timers.split("/")) == 5 and all(t.isdigit() for t in timers.split("/"))
    assert lines[0].endswith('"GET /logged?q=1 HTTP/1.1"')


async def test_ambiguous_get_body_closes_both_connections(proxy: Any) -> None:
    backend = RecordingBackend()
    await backend.start()
    port = free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{backend.port}"]))
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
    assert reply.status == 200 and reply.closed
    await asyncio.sleep(0.2)
    assert backend.closed == [True]
    await backend.stop()


async def test_client_abort_mid_response_is_not_an_error(
    backends: Any, proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web

    async def streaming(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"x" * 65536)
            await asyncio.sleep(0.01)
        return response

    backend = await backends("a", streaming)
    port = free_port()
    await proxy(cluster_yaml(port, [backend.address]))
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()
    await asyncio.sleep(0.5)
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("floatgate")
    ]
    assert errors == []
    assert (await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")).status == 200


@pytest.mark.parametrize(
    ("first", "then"),
    [(b"5\r\nhello", b"\r\nzz\r\nz\r\n0\r\n\r\n"), (b"5\r\nhello\r\n", b"zz\r\nz\r\n0\r\n\r\n")],
    ids=["chunk-end-and-error-in-one-segment", "error-alone"],
)
async def test_server_framing_error_mid_body_cuts_the_client_at_once(
    proxy: Any, first: bytes, then: bytes
) -> None:
    """A malformed chunk-size line ("zz") in a server's chunked response after the head
    and some data went to the client: the relay must see the framing error and cut the
    client (a truncated response, as HAProxy does), not wait for bytes that never come.
    aiohttp's parser drops the body before raising, so nothing fails it (exchange.py's
    ServerProtocol does); and when the chunk's end arrives in the same segment, readany
    misses the failure (tests/unit/test_stream.py). Both waited beyond the server
    timeout (60 s here)."""

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + first)
        await writer.drain()
        await asyncio.sleep(0.3)  # the relay has sent "hello" and waits for more
        writer.write(then)
        await writer.drain()
        await asyncio.sleep(60)

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    port = free_port()
    await proxy(cluster_yaml(port, [address], backend_extra="    timeout: {server: 60s}"))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        got = b""
        async with asyncio.timeout(20):  # cut in well under the server timeout
            while data := await reader.read(65536):
                got += data
        assert got.startswith(b"HTTP/1.1 200") and b"hello" in got
        assert not got.endswith(b"0\r\n\r\n")  # truncated: no last chunk was invented
    finally:
        writer.close()
        server.close()


class _ScriptedServer:
    """A raw server that answers the n-th request on a connection with answers[n]
    (bytes sent as they are, extra bytes included), then ``idle_extra`` bytes on its
    own a moment after the first answer."""

    def __init__(self, answers: list[bytes], idle_extra: bytes = b"") -> None:
        self.answers = answers
        self.idle_extra = idle_extra
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for answer in self.answers:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                if self.idle_extra:
                    await asyncio.sleep(0.1)
                    writer.write(self.idle_extra)
                    self.idle_extra = b""
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


_FAKE_HEAD = b"HTTP/1.1 302 Found\r\nLocation: /evil\r\nSet-Cookie: s=attacker\r\nX-Pad: "
_REAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_bytes_a_server_sends_past_its_answer_never_reach_the_next_client(
    proxy: Any,
) -> None:
    """A server that sends more than its response (a body on a 304, a length that
    counted characters): the extra bytes (here the start of a forged response head)
    must not be read as part of the answer to the next request on that connection."""
    server = _ScriptedServer(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" + _FAKE_HEAD, _REAL]
    )
    port = free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{await server.start()}"]))
    try:
        first = await raw_exchange(port, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        assert first.status == 200 and first.body == b"abc"
        second = await raw_exchange(port, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        assert second.status == 200, second.raw
        assert b"attacker" not in second.raw and b"/evil" not in second.raw
    finally:
        await server.stop()


async def test_a_response_a_server_sends_unasked_is_never_served(proxy: Any) -> None:
    """A complete response that arrives on an idle pooled connection answers nobody:
    the connection is closed, not handed the next request with that answer waiting."""
    unasked = b"HTTP/1.1 302 Found\r\nLocation: /evil\r\nContent-Length: 0\r\n\r\n"
    server = _ScriptedServer([_REAL, _REAL], idle_extra=unasked)
    port = free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{await server.start()}"]))
    try:
        assert (await raw_exchange(port, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")).status == 200
        await asyncio.sleep(0.5)  # the unasked answer arrives while the connection idles
        second = await raw_exchange(port, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
        assert second.status == 200 and b"/evil" not in second.raw, second.raw
    finally:
        await server.stop()


async def test_connection_cannot_name_content_length_or_host_away(proxy: Any) -> None:
    """Connection: content-length, host: removing the framing header from a request
    whose body is still sent would make the server read the body as a request."""
    backend = RecordingBackend()
    await backend.start()
    port = free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{backend.port}"]))
    body = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    request = (b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
               b"Connection: content-length, host\r\n\r\n" % len(body)) + body  # fmt: skip
    reply = await raw_exchange(port, request)
    await asyncio.sleep(0.2)
    await backend.stop()
    received = backend.received
    if reply.status == 200:  # forwarded: with its length and Host, as one request
        head, _, rest = received.partition(b"\r\n\r\n")
        assert b"content-length: %d" % len(body) in head.lower()
        assert head.lower().count(b"\r\nhost: ") == 1
        assert rest == body  # the body, as a body
    else:
        assert reply.status == 400 and b"/smuggled" not in received
