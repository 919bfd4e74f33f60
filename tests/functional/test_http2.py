"""HTTP/2 to clients: ALPN on TLS frontends and h2c with prior knowledge, served by the
same request path as HTTP/1.1 (rules, client certificates, X-Forwarded-*, balancing),
with flow control, limits and GOAWAY. Real sockets, real TLS, the h2 library as a
frame-exact client, and curl."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import subprocess
import time
from typing import Any

import h2.errors
import h2.settings
import hpack
import pytest
from aiohttp import web
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.conftest import free_port
from tests.functional.h2client import PREFACE, Answer, H2Client, RawH2, blocking_get
from tests.functional.pki import Pki
from tests.functional.test_rules_tls import design_yaml
from tests.functional.test_tls import client_context


def h2_design_yaml(port: int, ghost: str, admin: str, alpn: str = "[h2, http/1.1]") -> str:
    text = design_yaml(port, ghost, admin)
    return text.replace("      certificates: [blog]\n",
                        f"      certificates: [blog]\n      alpn: {alpn}\n")  # fmt: skip


def h2c_yaml(port: int, backend: str, extra: str = "", http2: str = "") -> str:
    return f"""
cluster: c
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: app
    forwardfor: true
    http2: {{cleartext: true{http2}}}
{extra}
backends:
  - {{name: app, servers: [{{name: a, address: "{backend}"}}]}}
  - {{name: admin, servers: [{{name: b, address: "{backend}"}}]}}
"""


async def h2c_app(backends: Any, proxy: Any, extra: str = "", http2: str = "") -> tuple[Any, int]:
    """The "app" backend behind a plain frontend that also takes h2c (h2c_yaml's
    ``extra`` and ``http2``): the backend and the frontend's port."""
    app = await backends("app")
    port = free_port()
    await proxy(h2c_yaml(port, app.address, extra=extra, http2=http2))
    return app, port


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip


# -- negotiation ----------------------------------------------------------------------------


async def test_alpn_picks_h2_when_listed_and_http11_otherwise(
    backends: Any, proxy: Any, pki: Pki
) -> None:
    ghost, admin = await backends("ghost"), await backends("admin")
    on, off = free_port(), free_port()
    await proxy(h2_design_yaml(on, ghost.address, admin.address), pki.dir)
    await proxy(design_yaml(off, ghost.address, admin.address), pki.dir)  # no alpn key
    for port, expected in ((on, "HTTP/2 200"), (off, "HTTP/1.1 200")):
        result = await asyncio.to_thread(
            curl, "--http2", "-i", "--cacert", pki.path("ca.pem"), "--resolve",
            f"app.test:{port}:127.0.0.1", f"https://app.test:{port}/blog",
        )  # fmt: skip
        assert result.stdout.startswith(expected), (port, result.stdout, result.stderr)
        assert result.stdout.endswith("ghost")
    # A client that offers only http/1.1 gets it from an h2 frontend too.
    result = await asyncio.to_thread(
        curl, "--http1.1", "-i", "--cacert", pki.path("ca.pem"), "--resolve",
        f"app.test:{on}:127.0.0.1", f"https://app.test:{on}/blog",
    )  # fmt: skip
    assert result.stdout.startswith("HTTP/1.1 200")


async def test_h2c_prior_knowledge_and_http11_share_a_plain_frontend(
    backends: Any, proxy: Any
) -> None:
    app, port = await h2c_app(backends, proxy)
    h2c = await asyncio.to_thread(curl, "--http2-prior-knowledge", "-i",
                                  f"http://127.0.0.1:{port}/x")  # fmt: skip
    plain = await asyncio.to_thread(curl, "-i", f"http://127.0.0.1:{port}/y")
    assert h2c.stdout.startswith("HTTP/2 200") and h2c.stdout.endswith("app")
    assert plain.stdout.startswith("HTTP/1.1 200") and plain.stdout.endswith("app")
    assert [p for _, p in app.requests] == ["/x", "/y"]


# -- the same semantics as HTTP/1.1 -------------------------------------------------------------


async def test_the_design_example_behaves_the_same_over_h2(
    backends: Any, proxy: Any, pki: Pki
) -> None:
    ghost, admin = await backends("ghost"), await backends("admin")
    port = free_port()
    await proxy(h2_design_yaml(port, ghost.address, admin.address), pki.dir)

    anonymous = await H2Client.connect(port, client_context(pki))
    redirected = await anonymous.get("/ghost/admin")
    assert redirected.status == 302 and redirected.header(b"location") == b"/"
    assert ghost.requests == []  # redirected by floatgate, nothing forwarded
    blog = await anonymous.get("/blog/post?x=1")  # the same connection goes on
    assert blog.status == 200 and bytes(blog.body) == b"ghost"
    seen = ghost.headers[-1]
    assert seen["X-SSL-Client-Verify"] == ["NONE"]
    assert seen["Host"] == ["app.test"]  # :authority became Host
    assert seen["X-Forwarded-Proto"] == ["https"] and seen["X-Forwarded-For"] == ["127.0.0.1"]
    await anonymous.close()

    alice = await H2Client.connect(port, client_context(pki, "client.pem"))
    admitted = await alice.get("/ghost/admin")
    assert admitted.status == 200 and bytes(admitted.body) == b"ghost"
    assert ghost.headers[-1]["X-SSL-Client-Verify"] == ["SUCCESS"]
    await alice.close()
    assert [p for _, p in ghost.requests] == ["/blog/post?x=1", "/ghost/admin"]


def _blocking_h2_get(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None, path: str
) -> tuple[Answer, ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = context.wrap_socket(raw, server_hostname="app.test", session=session)
    assert sock.selected_alpn_protocol() == "h2"
    return blocking_get(sock, path), sock


async def test_a_resumed_h2_session_keeps_the_certificate_it_proved(
    backends: Any, proxy: Any, pki: Pki
) -> None:
    """The cert-less redirect follows what the session proved, also on a resumed TLS
    session carrying HTTP/2 (a resumed handshake shows no certificate)."""
    ghost, admin = await backends("ghost"), await backends("admin")
    port = free_port()
    await proxy(h2_design_yaml(port, ghost.address, admin.address), pki.dir)
    context = client_context(pki, "client.pem")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    for _attempt in range(5):
        answer, first = await asyncio.to_thread(_blocking_h2_get, port, context, None, "/ghost/a")
        assert answer.status == 200
        session = first.session
        first.close()
        resumed, again = await asyncio.to_thread(
            _blocking_h2_get, port, context, session, "/ghost/b"
        )
        reused = again.session_reused
        again.close()
        if reused:
            break
    else:
        pytest.fail("the TLS session was never resumed")
    assert resumed.status == 200, "a resumed session lost its client certificate"
    assert ghost.headers[-1]["X-SSL-Client-Verify"] == ["SUCCESS"]


async def test_rules_headers_and_balancing_over_h2c(backends: Any, proxy: Any) -> None:
    app, admin = await backends("app"), await backends("admin")
    port = free_port()
    rules = """    rules:
      - set_header: {name: X-Env, value: prod}
      - del_header: X-Debug
      - if: {path_end: .php}
        deny: {status: 403}
      - if: {host: admin.test}
        use_backend: admin
      - if: {path_beg: /old/}
        redirect: {prefix: /new, code: 308}"""
    text = h2c_yaml(port, app.address, extra=rules).replace(
        f'{{name: b, address: "{app.address}"}}', f'{{name: b, address: "{admin.address}"}}'
    )
    await proxy(text)
    client = await H2Client.connect(port)
    denied = await client.get("/x.php", scheme="http")
    assert denied.status == 403
    moved = await client.get("/old/p?q=1", scheme="http")
    assert moved.status == 308 and moved.header(b"location") == b"/new/old/p?q=1"
    routed = await client.get("/", scheme="http", authority="Admin.Test:8080",
                              extra=[(b"x-debug", b"1")])  # fmt: skip
    assert routed.status == 200 and bytes(routed.body) == b"admin"
    assert admin.headers[0]["X-Env"] == ["prod"] and "X-Debug" not in admin.headers[0]
    posted = await client.get("/form", method="POST", scheme="http", body=b"a=1&b=2",
                              extra=[(b"content-length", b"7")])  # fmt: skip
    assert posted.status == 200 and app.bodies[-1] == b"a=1&b=2"
    streamed = await client.get("/chunks", method="PUT", scheme="http", body=b"no length")
    assert streamed.status == 200 and app.bodies[-1] == b"no length"
    head = await client.get("/head", method="HEAD", scheme="http")
    assert head.status == 200 and head.body == b"" and head.header(b"content-length") == b"3"
    assert len(app.requests) == 3 and len(admin.requests) == 1  # denied/redirected: nowhere
    for name, _ in routed.headers:
        assert name not in (b"connection", b"transfer-encoding", b"keep-alive")
    await client.close()


MALFORMED = {
    "uppercase name": [(b"X-Upper", b"1")],
    "connection header": [(b"connection", b"keep-alive")],
    "transfer-encoding": [(b"transfer-encoding", b"chunked")],
    "te other than trailers": [(b"te", b"gzip")],
    "CR LF in a value": [(b"x-a", b"1\r\nx-injected: 2")],
    "pseudo-header after a field": [(b"x-a", b"1"), (b":foo", b"bar")],
    "host unlike :authority": [(b"host", b"evil.test")],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_request_is_a_stream_error_and_the_connection_goes_on(
    backends: Any, proxy: Any, case: str
) -> None:
    """RFC 9113 8.1.1 / 8.2: RST_STREAM PROTOCOL_ERROR for that stream; nothing of it
    reaches a server; the next stream on the connection is served."""
    app, port = await h2c_app(backends, proxy)
    client = await H2Client.connect(port, validate=False)
    bad = await client.get("/bad", method="POST", scheme="http", extra=MALFORMED[case], end=False)
    assert bad.reset == h2.errors.ErrorCodes.PROTOCOL_ERROR and bad.status == 0
    good = await client.get("/good", scheme="http")
    assert good.status == 200 and bytes(good.body) == b"app"
    assert [p for _, p in app.requests] == ["/good"]
    await client.close()


@pytest.mark.parametrize("case", ["two values", "more data", "no data"])
async def test_a_body_unlike_its_content_length_is_never_forwarded(
    backends: Any, proxy: Any, case: str
) -> None:
    """Two content-length values or more DATA than announced: the h2 library ends the
    connection (PROTOCOL_ERROR); a length on a head that ends the stream: that stream
    is reset. Nothing reaches a server either way."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    if case == "two values":
        lengths = [(b"content-length", b"1"), (b"content-length", b"2")]
        raw.send(raw.headers(1, path="/cl", method="POST", end_stream=False, extra=lengths))
    elif case == "more data":
        length = [(b"content-length", b"2")]
        raw.send(raw.headers(1, path="/cl", method="POST", end_stream=False, extra=length))
        await raw.writer.drain()
        await asyncio.sleep(0.1)
        data = DataFrame(1, b"12345")
        data.flags.add("END_STREAM")
        raw.send(data.serialize())
    else:
        raw.send(raw.headers(1, path="/cl", method="POST", extra=[(b"content-length", b"5")]))
    if case == "no data":
        reset = await raw.until(lambda f: isinstance(f, RstStreamFrame))
        assert isinstance(reset, RstStreamFrame)
        assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    else:
        await raw.read_to_end()
        goaway = raw.goaway()
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    await asyncio.sleep(0.2)
    assert app.requests == []
    await _still_serving(port)


async def test_settings_are_advertised_and_a_response_waits_for_the_window(
    backends: Any, proxy: Any
) -> None:
    big = b"x" * 300_000

    async def large(request: web.Request) -> web.Response:
        return web.Response(body=big)

    app = await backends("app", large)
    port = free_port()
    await proxy(h2c_yaml(port, app.address, http2=", max_concurrent_streams: 7, "
                         "header_table_size: 1024"))  # fmt: skip
    client = await H2Client.connect(port, window=1000, auto_window=False)
    stream = client.request("/big", scheme="http")
    await client.until(lambda: len(client.answers[stream].body) >= 1000, timeout=5)
    with contextlib.suppress(TimeoutError):  # nothing more comes while the window is shut
        async with asyncio.timeout(0.5):
            while not client.closed:
                await client.read_events(1)
    assert len(client.answers[stream].body) == 1000  # exactly the window, no more
    settings = client.remote_settings
    assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert settings[h2.settings.SettingCodes.HEADER_TABLE_SIZE] == 1024
    client.auto_window = True
    client.h2.increment_flow_control_window(len(big), stream_id=stream)
    client.h2.increment_flow_control_window(len(big))
    client.flush()
    answer = await client.answer(stream)
    assert answer.status == 200 and bytes(answer.body) == big
    await client.close()


# -- GOAWAY --------------------------------------------------------------------------------------


async def test_a_drain_sends_goaway_finishes_open_streams_and_refuses_new_ones(
    backends: Any, proxy: Any
) -> None:
    app = await backends("app")
    app.delay = 1.0
    port = free_port()
    plane = await proxy(h2c_yaml(port, app.address))
    raw = await RawH2.connect(port)
    raw.send(raw.headers(1, path="/slow"))
    await asyncio.sleep(0.3)  # the request is at the server
    stopping = asyncio.create_task(plane.stop(5.0))
    goaway = await raw.until(lambda f: isinstance(f, GoAwayFrame))
    assert isinstance(goaway, GoAwayFrame)
    assert goaway.last_stream_id == 1 and goaway.error_code == 0
    raw.send(raw.headers(3, path="/late"))  # after the GOAWAY: refused, to retry elsewhere
    frames = await raw.read_to_end()
    refused = [f for f in frames if isinstance(f, RstStreamFrame) and f.stream_id == 3]
    assert refused and refused[0].error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    data = b"".join(bytes(f.data) for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
    ended = [f for f in frames if f.stream_id == 1 and "END_STREAM" in f.flags]
    assert data == b"app" and ended  # the stream in flight was answered whole
    goaways = [f.last_stream_id for f in frames if isinstance(f, GoAwayFrame)]
    assert set(goaways) == {1}, goaways  # a later GOAWAY never names a higher stream
    assert [p for _, p in app.requests] == ["/slow"]
    await stopping
    await raw.close()


async def test_curl_sees_no_error_across_a_drain(backends: Any, proxy: Any) -> None:
    app = await backends("app")
    app.delay = 0.8
    port = free_port()
    plane = await proxy(h2c_yaml(port, app.address))
    fetch = asyncio.create_task(asyncio.to_thread(
        curl, "--http2-prior-knowledge", "-i", f"http://127.0.0.1:{port}/slow"))  # fmt: skip
    await asyncio.sleep(0.3)
    await plane.stop(5.0)
    result = await fetch
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/2 200") and result.stdout.endswith("app")


# -- the known attacks ---------------------------------------------------------------------------


async def _still_serving(port: int) -> None:
    """Another client is served while (or after) one is being dealt with."""
    other = await H2Client.connect(port)
    answer = await other.get("/other", scheme="http")
    assert answer.status == 200 and bytes(answer.body) == b"app"
    await other.close()


def _calm_down(raw: RawH2) -> None:
    goaway = raw.goaway()
    assert goaway is not None, "no GOAWAY before the close"
    assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert raw.closed


async def test_rapid_reset_streams_get_goaway_enhance_your_calm(backends: Any, proxy: Any) -> None:
    """CVE-2023-44487: streams opened and reset at once, in a loop."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    last = 0
    for batch in range(50):
        frames = b""
        for n in range(100):
            stream_id = 1 + 2 * (batch * 100 + n)
            frames += raw.headers(stream_id, path="/reset")
            frames += RstStreamFrame(stream_id, error_code=8).serialize()
        try:
            raw.send(frames)
            await raw.writer.drain()
        except ConnectionError:
            break
        last = stream_id
        if batch == 3:
            await _still_serving(port)
    await raw.read_to_end()
    _calm_down(raw)
    goaway = raw.goaway()
    assert goaway is not None and goaway.last_stream_id < last, "the whole flood was served"
    assert len(app.requests) < 100  # reset streams never reached the server
    await _still_serving(port)


FLOODS = {
    "SETTINGS": lambda: SettingsFrame(0).serialize(),
    "PING": lambda: PingFrame(0, opaque_data=b"12345678").serialize(),
    "PRIORITY": lambda: PriorityFrame(1, depends_on=0, stream_weight=16).serialize(),
    "empty DATA": lambda: DataFrame(1, b"").serialize(),  # on an open upload
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
async def test_frame_floods_get_goaway(backends: Any, proxy: Any, kind: str) -> None:
    """Frames that cost an answer or work but carry no request, sent by the thousand."""
    _app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    if kind == "empty DATA":
        raw.send(raw.headers(1, path="/upload", method="POST", end_stream=False))
    frame = FLOODS[kind]()
    with contextlib.suppress(ConnectionError):
        for _ in range(20):
            raw.send(frame * 500)
            await raw.writer.drain()
    await raw.read_to_end()
    _calm_down(raw)
    await _still_serving(port)


async def test_a_continuation_flood_is_cut(backends: Any, proxy: Any) -> None:
    """Endless CONTINUATION frames: the header block never ends."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    first = HeadersFrame(1, raw.headers_block(path="/c"))  # no END_HEADERS
    raw.send(first.serialize())
    with contextlib.suppress(ConnectionError):
        for _ in range(100):
            raw.send(ContinuationFrame(1, b"\x40\x01a\x01b" * 10).serialize() * 100)
            await raw.writer.drain()
    frames = await raw.read_to_end()
    goaway = raw.goaway()  # after at most 64 of them (the h2 library's backlog)
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert raw.closed and not any(isinstance(f, HeadersFrame) for f in frames)
    assert app.requests == []
    await _still_serving(port)


async def test_an_hpack_bomb_is_refused_without_decoding_it_whole(
    backends: Any, proxy: Any
) -> None:
    """One 4 KiB header put in the dynamic table, then referenced by one-byte indexes:
    a small frame that decodes to megabytes. The header list limit ends it."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    block = raw.headers_block(path="/bomb")
    encoder = raw.encoder
    block += bytes(encoder.encode([(b"x-bomb", b"a" * 4000)]))  # indexed as 62
    block += b"\xbe" * 4000  # 4000 references: 16 MB decoded
    frame = HeadersFrame(1, block)
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    raw.send(frame.serialize())
    await raw.read_to_end()
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code != 0 and raw.closed
    assert app.requests == []
    await _still_serving(port)


async def test_a_client_that_never_opens_its_window_is_reset_after_timeout_client(
    backends: Any, proxy: Any
) -> None:
    _app, port = await h2c_app(backends, proxy, extra="    timeout: {client: 1s}")
    client = await H2Client.connect(port, window=0, auto_window=False)
    stalled = client.request("/stall", scheme="http")
    await client.until(lambda: client.answers[stalled].status == 200, timeout=5)
    answer = await client.answer(stalled, timeout=5)
    assert answer.reset == h2.errors.ErrorCodes.CANCEL and answer.body == b""
    await _still_serving(port)
    await client.close()


async def test_stream_ids_going_backwards_end_the_connection(backends: Any, proxy: Any) -> None:
    """The last stream ID a client may use is served; one lower after it is a
    connection error (IDs never go back, RFC 9113 5.1.1)."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    last = (1 << 31) - 1
    raw.send(raw.headers(last, path="/last"))
    ended = await raw.until(lambda f: f.stream_id == last and "END_STREAM" in f.flags)
    assert ended is not None
    raw.send(raw.headers(5, path="/again"))
    await raw.read_to_end()
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert [p for _, p in app.requests] == ["/last"]


async def test_an_invalid_preface_after_alpn_h2_is_refused(
    backends: Any, proxy: Any, pki: Pki
) -> None:
    ghost, admin = await backends("ghost"), await backends("admin")
    port = free_port()
    await proxy(h2_design_yaml(port, ghost.address, admin.address), pki.dir)
    raw = await RawH2.connect(port, client_context(pki), preface=False)
    raw.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    await raw.read_to_end()
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert ghost.requests == []


async def test_a_header_block_that_never_ends_is_closed_after_http_request(
    backends: Any, proxy: Any
) -> None:
    app, port = await h2c_app(backends, proxy, extra="    timeout: {http_request: 1s}")
    raw = await RawH2.connect(port)
    raw.send(HeadersFrame(1, raw.headers_block(path="/slow")).serialize())  # no END_HEADERS
    started = asyncio.get_running_loop().time()
    await raw.read_to_end(timeout=10)
    assert raw.closed and asyncio.get_running_loop().time() - started < 5
    assert app.requests == []


async def test_max_total_streams_ends_a_connection_with_goaway(backends: Any, proxy: Any) -> None:
    """HAProxy's tune.h2.fe.max-total-streams: after that many streams, GOAWAY; the
    streams up to it are answered, later ones never served (the client retries them on
    a new connection), and the connection closes."""
    app, port = await h2c_app(backends, proxy, http2=", max_total_streams: 3")
    raw = await RawH2.connect(port)
    raw.send(raw.headers(1, path="/1") + raw.headers(3, path="/2") + raw.headers(5, path="/3"))
    goaway = await raw.until(lambda f: isinstance(f, GoAwayFrame))
    assert isinstance(goaway, GoAwayFrame) and goaway.last_stream_id == 5
    raw.send(raw.headers(7, path="/4"))
    frames = await raw.read_to_end()
    ended = {f.stream_id for f in frames if "END_STREAM" in f.flags}
    assert {1, 3, 5} <= ended and 7 not in ended and raw.closed
    assert sorted(p for _, p in app.requests) == ["/1", "/2", "/3"]


async def test_more_streams_than_max_concurrent_streams_close_the_connection(
    backends: Any, proxy: Any
) -> None:
    app = await backends("app")
    app.delay = 0.5
    port = free_port()
    await proxy(h2c_yaml(port, app.address, http2=", max_concurrent_streams: 2"))
    raw = await RawH2.connect(port)
    raw.send(b"".join(raw.headers(n, path=f"/{n}") for n in (1, 3, 5)))
    await raw.read_to_end()
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    await asyncio.sleep(0.6)
    assert "/5" not in [p for _, p in app.requests]
    await _still_serving(port)


async def test_streams_are_balanced_retried_and_queued_like_requests(
    backends: Any, proxy: Any
) -> None:
    """Round robin across servers per stream, a connect failure retried on the other
    server, and a server's maxconn queueing concurrent streams instead of failing them."""
    first, second = await backends("one"), await backends("two")
    first.delay = second.delay = 0.2
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    port = free_port()
    await proxy(f"""
cluster: c
frontends:
  - {{name: web, bind: "127.0.0.1:{port}", default_backend: app, http2: {{cleartext: true}}}}
backends:
  - name: app
    retries: 2
    servers:
      - {{name: s1, address: "{first.address}", maxconn: 1}}
      - {{name: s2, address: "{second.address}", maxconn: 1}}
      - {{name: s3, address: "{dead}"}}
""")  # fmt: skip
    client = await H2Client.connect(port)
    streams = [client.request(f"/{n}", scheme="http") for n in range(9)]
    answers = [await client.answer(s, timeout=15) for s in streams]
    assert [a.status for a in answers] == [200] * 9  # none failed: retried or queued
    bodies = sorted(bytes(a.body) for a in answers)
    assert bodies.count(b"one") >= 3 and bodies.count(b"two") >= 3
    assert len(first.requests) + len(second.requests) == 9
    await client.close()


# -- found in review -------------------------------------------------------------------------


async def test_a_body_shorter_than_its_content_length_ended_by_trailers_is_refused(
    backends: Any, proxy: Any
) -> None:
    """h2 checks content-length only on DATA with END_STREAM: trailers ending the stream
    early must not let a short body reach a server with the client's length (the
    server would read the next request on that connection as the rest of the body)."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    length = [(b"content-length", b"100")]
    raw.send(raw.headers(1, path="/short", method="POST", end_stream=False, extra=length))
    raw.send(DataFrame(1, b"0123456789").serialize())
    trailers = HeadersFrame(1, bytes(raw.encoder.encode([(b"x-trailer", b"1")])))
    trailers.flags.add("END_HEADERS")
    trailers.flags.add("END_STREAM")
    raw.send(trailers.serialize())
    reset = await raw.until(lambda f: isinstance(f, RstStreamFrame | GoAwayFrame))
    assert reset is not None and reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    await asyncio.sleep(0.2)
    assert app.requests == []
    await _still_serving(port)


@pytest.mark.parametrize(("field", "status"), [("path", 414), ("header", 431)])
async def test_request_heads_over_the_frontend_limits_get_414_and_431(
    backends: Any, proxy: Any, field: str, status: int
) -> None:
    app, port = await h2c_app(backends, proxy)  # max_uri_length 8190, max_header_size 16384
    client = await H2Client.connect(port)
    if field == "path":
        answer = await client.get("/" + "a" * 9000, scheme="http")
    else:
        answer = await client.get("/", scheme="http", extra=[(b"x-big", b"b" * 17000)])
    assert answer.status == status
    assert app.requests == []
    assert (await client.get("/fine", scheme="http")).status == 200
    await client.close()


async def test_the_response_header_table_stays_small_whatever_the_client_allows(
    backends: Any, proxy: Any
) -> None:
    """A client may announce a huge HPACK table; the server's encoder keeps 4 KiB (as
    nghttp2 does): a table as large as the client asks costs memory and a linear search
    per response header."""
    _app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port, preface=False)
    raw.send(PREFACE + SettingsFrame(0, settings={SettingsFrame.HEADER_TABLE_SIZE: 1 << 20})
             .serialize())  # fmt: skip
    raw.send(raw.headers(1, path="/t"))
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 1 << 20  # what this client offered
    head = await raw.until(lambda f: isinstance(f, HeadersFrame))
    assert isinstance(head, HeadersFrame)
    decoder.decode(bytes(head.data))
    assert decoder.header_table_size == 4096  # the table the server's encoder settled on
    await raw.close()


async def test_many_responses_to_a_client_not_reading_for_a_moment_are_not_cut(
    backends: Any, proxy: Any
) -> None:
    """Large windows (as browsers give) and a client that reads late: the responses
    wait for the socket instead of piling up in memory and getting the connection cut."""
    body = b"y" * 100_000

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = await backends("app", page)
    port = free_port()
    await proxy(h2c_yaml(port, app.address))
    client = await H2Client.connect(port, window=6 << 20, rcvbuf=4096)
    client.h2.increment_flow_control_window(15 << 20)
    client.flush()
    streams = [client.request(f"/{n}", scheme="http") for n in range(80)]
    await asyncio.sleep(1.5)  # 8 MB answered meanwhile, nobody reading
    answers = [await client.answer(s) for s in streams]
    assert [len(a.body) for a in answers] == [len(body)] * 80
    await client.close()


async def test_a_slow_but_steady_download_is_not_cut_by_timeout_client(
    backends: Any, proxy: Any
) -> None:
    """timeout.client measures the client's progress, not how long a window-limited
    transfer takes."""
    body = b"s" * 600_000

    async def large(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = await backends("app", large)
    port = free_port()
    await proxy(h2c_yaml(port, app.address, extra="    timeout: {client: 1s}"))
    client = await H2Client.connect(port, window=16384, auto_window=False)
    stream = client.request("/slow", scheme="http")
    answer = client.answers[stream]
    async with asyncio.timeout(20):
        while not answer.ended and answer.reset is None:
            taken = len(answer.body)
            await client.read_events(5)
            grown = len(answer.body) - taken
            if grown:
                await asyncio.sleep(0.06)  # ~260 KB/s: over 2 s in all
                client.h2.acknowledge_received_data(grown, stream)
                client.flush()
    assert answer.reset is None and bytes(answer.body) == body
    await client.close()


async def test_uploads_reset_while_queued_give_the_connection_window_back(
    backends: Any, proxy: Any
) -> None:
    """Uploads waiting for a busy server fill their buffers (DATA no longer
    acknowledged), then the client gives up on them: the bytes they held go back to
    the connection's window, and the next upload on the connection goes through."""
    app = await backends("app")
    app.delay = 1.5
    port = free_port()
    one_slot = f'address: "{app.address}", maxconn: 1}}'
    await proxy(h2c_yaml(port, app.address).replace(f'address: "{app.address}"}}', one_slot, 1))
    client = await H2Client.connect(port)
    await client.until(lambda: bool(client.remote_settings))
    await asyncio.sleep(0.1)
    with contextlib.suppress(TimeoutError):
        await client.read_events(0.2)  # the connection window's first update
    whole = client.h2.outbound_flow_control_window
    busy = client.request("/busy", scheme="http")  # holds the one server slot
    queued = [client.request(f"/q{n}", method="POST", scheme="http", end=False)
              for n in range(20)]  # fmt: skip
    chunk = b"q" * 16384
    async with asyncio.timeout(10):
        for _ in range(40):  # as much as the windows let through
            for stream in queued:
                if client.h2.local_flow_control_window(stream) >= len(chunk):
                    client.h2.send_data(stream, chunk)
            client.flush()
            with contextlib.suppress(TimeoutError):
                await client.read_events(0.05)
    assert client.h2.outbound_flow_control_window < whole - 20 * 65535  # held back
    for stream in queued:
        client.h2.reset_stream(stream, error_code=8)  # CANCEL
    client.flush()
    assert (await client.answer(busy)).status == 200
    with contextlib.suppress(TimeoutError):
        await client.read_events(0.5)
    # Given back (h2 sends WINDOW_UPDATE once half the window is used: at least half)
    assert client.h2.outbound_flow_control_window >= whole // 2
    app.delay = 0.0
    upload = b"k" * 300_000
    stream = client.request("/ok", method="POST", scheme="http", end=False)
    sent = 0
    async with asyncio.timeout(10):
        while sent < len(upload):
            room = min(client.h2.local_flow_control_window(stream), 16384, len(upload) - sent)
            if room:
                client.h2.send_data(stream, upload[sent : sent + room])
                sent += room
                client.flush()
            else:
                await client.read_events(5)  # wait for the server's window update
        client.h2.end_stream(stream)
        client.flush()
    answer = await client.answer(stream)
    assert answer.status == 200 and app.bodies[-1] == upload
    await client.close()


async def test_configured_header_limits_are_enforced(backends: Any, proxy: Any) -> None:
    app, port = await h2c_app(backends, proxy, http2=", max_header_list_size: 2048")
    client = await H2Client.connect(port)
    assert (await client.get("/small", scheme="http")).status == 200
    await client.get("/big", scheme="http", extra=[(b"x-a", b"a" * 1500), (b"x-b", b"b" * 1500)])
    assert client.closed or client.goaway is not None
    assert [p for _, p in app.requests] == ["/small"]


async def test_browser_priority_on_every_request_is_not_a_glitch(backends: Any, proxy: Any) -> None:
    """Browsers set the PRIORITY flag on each HEADERS; only PRIORITY frames of their own
    count against the budget."""
    app, port = await h2c_app(backends, proxy)
    raw = await RawH2.connect(port)
    stream = 1
    for _ in range(30):
        batch = b""
        for _ in range(50):
            frame = HeadersFrame(stream, raw.headers_block(path="/p"), depends_on=0,
                                 stream_weight=200)  # fmt: skip
            for flag in ("END_HEADERS", "END_STREAM", "PRIORITY"):
                frame.flags.add(flag)
            batch += frame.serialize()
            stream += 2
        raw.send(batch)
        last = stream - 2
        ended = await raw.until(lambda f, last=last: (f.stream_id == last and
                                "END_STREAM" in f.flags) or isinstance(f, GoAwayFrame))  # fmt: skip
        assert ended is not None and not isinstance(ended, GoAwayFrame), "GOAWAY for priority"
    assert raw.goaway() is None and len(app.requests) == 1500
    await raw.close()


async def test_abuse_and_protocol_errors_never_leave_a_traceback(
    backends: Any, proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of malformed requests, a refused stream in the same read as the close,
    DATA on stream 0 while a stream is served: no error escapes into the event loop."""
    app = await backends("app")
    app.delay = 0.3
    port = free_port()
    await proxy(h2c_yaml(port, app.address, http2=", max_total_streams: 1"))
    raw = await RawH2.connect(port)
    bad = [(b"X-Upper", b"1")]
    raw.send(b"".join(raw.headers(1 + 2 * n, extra=bad) for n in range(1100)))
    await raw.read_to_end()
    raw = await RawH2.connect(port)
    raw.send(raw.headers(1) + RstStreamFrame(1, error_code=8).serialize() + raw.headers(3))
    await raw.read_to_end()
    raw = await RawH2.connect(port)
    raw.send(raw.headers(1, path="/slow"))
    await asyncio.sleep(0.1)
    raw.send(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")  # DATA on stream 0: a connection error
    await raw.read_to_end()
    await asyncio.sleep(0.5)
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == [], [r.getMessage() for r in problems]


# -- found in the second review ------------------------------------------------------------


async def test_a_tls_client_reading_late_costs_no_cpu_while_it_does_not_read(
    backends: Any, proxy: Any, pki: Pki
) -> None:
    """TLS transports pause writing later than plain ones: the DATA pacing must not spin
    on the event loop while a TLS client leaves its socket unread."""
    body = b"t" * 200_000

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body)

    ghost = await backends("ghost", page)
    port = free_port()
    await proxy(h2_design_yaml(port, ghost.address, ghost.address), pki.dir)
    client = await H2Client.connect(port, client_context(pki), window=6 << 20, rcvbuf=4096)
    client.h2.increment_flow_control_window(15 << 20)
    client.flush()
    streams = [client.request(f"/blog/{n}") for n in range(30)]
    await asyncio.sleep(0.5)  # the answers are ready and waiting for the client
    before = time.process_time()
    await asyncio.sleep(1.0)
    spent = time.process_time() - before
    assert spent < 0.5, f"{spent:.2f} s of CPU in 1 s with nothing to do"
    answers = [await client.answer(s) for s in streams]
    assert [len(a.body) for a in answers] == [len(body)] * 30
    await client.close()


async def test_a_refused_long_path_is_answered_within_the_clients_window(
    backends: Any, proxy: Any
) -> None:
    """The 414 answer respects flow control like any response; a body sent with the
    refused request is told to stop (RST_STREAM NO_ERROR), and HEAD gets no body."""
    app, port = await h2c_app(backends, proxy)
    client = await H2Client.connect(port, window=0, auto_window=False)
    await client.until(lambda: bool(client.remote_settings))
    refused = client.request("/" + "a" * 9000, scheme="http")
    await client.until(lambda: client.answers[refused].status == 414, timeout=5)
    client.h2.increment_flow_control_window(1000, stream_id=refused)
    client.flush()
    answer = await client.answer(refused)
    assert answer.status == 414 and bytes(answer.body).startswith(b"URI Too Long")
    head = await client.get("/" + "h" * 9000, method="HEAD", scheme="http")
    assert head.status == 414 and head.body == b""
    upload = client.request("/" + "u" * 9000, method="POST", scheme="http", end=False)
    client.h2.increment_flow_control_window(1000, stream_id=upload)
    client.flush()
    stopped = await client.answer(upload)
    assert stopped.status == 414 and stopped.reset == h2.errors.ErrorCodes.NO_ERROR
    assert app.requests == []
    await client.close()
