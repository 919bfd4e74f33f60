"""Pure data-plane logic: balancing, health state, headers, access-log format."""

from __future__ import annotations

import collections
import ipaddress
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.proxy.accesslog import AccessEntry
from node.proxy.http.headers import (
    UnsupportedCoding,
    add_forwarded,
    end_to_end,
    framing_problem,
    header_by_header,
    is_ambiguous,
    is_websocket_upgrade,
    plainly_fine,
    serialize,
)
from node.proxy.upstream.balance import ConsistentHash, LeastConnections, SmoothRoundRobin
from node.proxy.upstream.health import HealthState
from node.proxy.wire.trust import is_trusted


@dataclass
class S:
    name: str
    weight: int = 1
    active: int = 0


def test_smooth_roundrobin_sequence() -> None:
    a, b, c = S("a", 5), S("b"), S("c")
    rr = SmoothRoundRobin()
    picks = [rr.pick([a, b, c], "").name for _ in range(7)]  # type: ignore[union-attr]
    assert picks == ["a", "a", "b", "a", "c", "a", "a"]


def test_leastconn_weights_and_ties() -> None:
    busy, idle = S("busy", active=3), S("idle", active=1)
    lc = LeastConnections()
    assert lc.pick([busy, idle], "") is idle
    heavy = S("heavy", weight=4, active=3)  # 3/4 < 1/1
    assert lc.pick([idle, heavy], "") is heavy
    x, y = S("x"), S("y")
    assert {lc.pick([x, y], "").name for _ in range(4)} == {"x", "y"}  # type: ignore[union-attr]


def test_consistent_hash_moves_only_the_lost_servers_keys() -> None:
    servers = [S(n) for n in "abcd"]
    ring = ConsistentHash(servers)
    keys = [f"10.0.{i // 256}.{i % 256}" for i in range(2000)]
    before = {k: ring.pick(servers, k).name for k in keys}  # type: ignore[union-attr]
    spread = collections.Counter(before.values())
    assert all(300 < count < 700 for count in spread.values()), spread
    remaining = [s for s in servers if s.name != "b"]
    after = {k: ring.pick(remaining, k).name for k in keys}  # type: ignore[union-attr]
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "b" for k in moved)


def test_health_rise_and_fall() -> None:
    state = HealthState(rise=2, fall=3)
    assert [state.observe(False, "x") for _ in range(2)] == [None, None]
    transition = state.observe(False, "refused")
    assert transition is not None and not transition.up and transition.reason == "refused"
    assert state.observe(True, "ok") is None
    assert state.observe(False, "x") is None  # a failure resets the rise count
    assert state.observe(True, "ok") is None
    up = state.observe(True, "ok")
    assert up is not None and up.up


V11 = (1, 1)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([(b"Content-Length", b"1"), (b"Content-Length", b"1")], "multiple Content-Length"),
        ([(b"Content-Length", b"1"), (b"Transfer-Encoding", b"chunked")], "both"),
        ([(b"Content-Length", b"-1")], "invalid Content-Length"),
        ([(b"Transfer-Encoding", b"chunked, gzip")], "does not end with chunked"),
        ([(b"Transfer_Encoding", b"chunked")], "imitates a framing header"),
        ([(b"X-A", b"a\x01b")], "control character"),
        ([(b"X A", b"b")], "invalid header name"),
        ([(b"Content-Length", b"10")], None),
        ([(b"Transfer-Encoding", b" Chunked ")], None),
    ],
)
def test_framing_problem(headers: list[tuple[bytes, bytes]], problem: str | None) -> None:
    found = framing_problem(headers, V11)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_framing_versions_and_codings() -> None:
    assert framing_problem([(b"Transfer-Encoding", b"chunked")], (1, 0)) is not None
    assert framing_problem([], (0, 9)) is not None
    with pytest.raises(UnsupportedCoding):
        framing_problem([(b"Transfer-Encoding", b"gzip, chunked")], V11)


def test_end_to_end_drops_hop_by_hop_and_connection_listed() -> None:
    raw = [(b"Connection", b"close, X-Hop"), (b"X-Hop", b"1"), (b"Keep-Alive", b"5"),
           (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Upgrade", b"h2c")]  # fmt: skip
    assert end_to_end(raw) == [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]
    assert end_to_end([(b"Expect", b"100-continue")], frozenset({b"expect"})) == []


def test_forwarded_headers() -> None:
    headers = [(b"X-Forwarded-For", b"1.1.1.1"), (b"Host", b"h")]
    add_forwarded(headers, "10.1.1.1", b"http", b"h", trusted=False)
    assert headers == [(b"Host", b"h"), (b"X-Forwarded-For", b"10.1.1.1"),
                       (b"X-Forwarded-Proto", b"http"), (b"X-Forwarded-Host", b"h")]  # fmt: skip
    headers = [(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
               (b"X-Forwarded-Proto", b"https")]  # fmt: skip
    add_forwarded(headers, "10.1.1.1", b"http", None, trusted=True)
    assert headers == [(b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2, 10.1.1.1"),
                       (b"X-Forwarded-Proto", b"https")]  # fmt: skip
    nets = (ipaddress.ip_network("10.0.0.0/8"),)
    assert is_trusted("10.9.9.9", nets) and not is_trusted("11.0.0.1", nets)
    assert not is_trusted("not-an-ip", nets)


def test_serialize_head() -> None:
    head = serialize(b"GET / HTTP/1.1", [(b"Host", b"h"), (b"X-A", b"1")])
    assert head == b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"


def test_ambiguous_and_websocket_detection() -> None:
    assert is_ambiguous("GET", [(b"Content-Length", b"5")])
    assert not is_ambiguous("GET", [(b"Content-Length", b"0")])
    assert not is_ambiguous("POST", [(b"Content-Length", b"5")])
    assert is_websocket_upgrade([(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")])
    assert not is_websocket_upgrade([(b"Upgrade", b"websocket")])


def test_access_log_format() -> None:
    entry = AccessEntry(started=10.0, headers_done=10.002, client="1.2.3.4", frontend="web",
                        backend="app", request_line="GET / HTTP/1.1", server="s1", status=200,
                        bytes_out=512, wait_queue=0.001, connect=0.003, response=0.010,
                        finished=10.020)  # fmt: skip
    assert entry.format() == ('1.2.3.4 web app/s1 2/1/3/10/20 200 512 retries=0 - "GET / HTTP/1.1"')


def test_aiohttp_too_old_is_refused_with_what_to_do() -> None:
    from node.app.boot import aiohttp_problem

    assert aiohttp_problem("3.14.5", ["max_headers", "read_timeout"]) is None
    assert aiohttp_problem("4.0.0a1", ["max_headers"]) is not None  # not tested on 4
    old = aiohttp_problem("3.10.11", ["read_timeout"])
    assert old is not None and "needs aiohttp 3.14 or newer" in old and "found 3.10.11" in old
    assert "pip install 'aiohttp>=3.14,<4'" in old
    assert aiohttp_problem("3.14.0", ["read_timeout"]) is not None  # the API is what counts


_NAME_PIECES = ["Host", "Content-Length", "content-length", "Transfer-Encoding",
                "Transfer_Encoding", "Content--Length", "X-Content-Length", "X A", "", "Ü",
                "Accept", "TE", "transfer.encoding"]  # fmt: skip
_VALUE_PIECES = ["5", "chunked", "gzip, chunked", "a\x00b", "x\ty", "\x7f", "é", "", " 3"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_NAME_PIECES), st.sampled_from(_VALUE_PIECES)), max_size=6),
    st.sampled_from([(1, 1), (1, 0)]),
)
def test_the_all_at_once_framing_check_agrees_with_the_header_by_header_one(
    headers: list[tuple[str, str]], version: tuple[int, int]
) -> None:
    """plainly_fine is a shortcut: whenever it says fine, the one-by-one checks find
    nothing either (no problem, no unsupported coding)."""
    raw = [(n.encode(), v.encode()) for n, v in headers]
    if plainly_fine(raw):
        assert header_by_header(raw, version) is None
        assert framing_problem(raw, version) is None
    else:
        try:
            expected: object = header_by_header(raw, version)
        except UnsupportedCoding as exc:
            expected = exc.args
        try:
            got: object = framing_problem(raw, version)
        except UnsupportedCoding as exc:
            got = exc.args
        assert got == expected
