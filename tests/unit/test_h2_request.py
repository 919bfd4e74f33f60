"""HTTP/2 request heads into HTTP/1.1 messages (RFC 9113 section 8), and the glitch
budget that ends abusive connections: pure logic."""

from __future__ import annotations

import pytest

from node.proxy.http.h2.guard import GlitchBudget
from node.proxy.http.h2.request import MalformedRequest, RequestTooLarge, to_request

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test:8443"),
        (b":path", b"/p?q=1")]  # fmt: skip


def test_authority_becomes_host_and_cookie_crumbs_are_joined() -> None:
    message = to_request([*BASE, (b"cookie", b"a=1"), (b"accept", b"*/*"),
                          (b"cookie", b"b=2")], end_stream=True)  # fmt: skip
    assert message.method == "GET" and message.path == "/p?q=1"
    assert message.raw_headers == (
        (b"host", b"a.test:8443"), (b"accept", b"*/*"), (b"cookie", b"a=1; b=2"))  # fmt: skip
    assert message.headers["Host"] == "a.test:8443"
    assert not message.chunked and not message.should_close


def test_a_body_without_content_length_is_chunked_one_with_it_is_not() -> None:
    assert to_request([(b":method", b"POST"), *BASE[1:]], end_stream=False).chunked
    sized = to_request([(b":method", b"POST"), *BASE[1:], (b"content-length", b"3")], False)
    assert not sized.chunked and sized.headers["Content-Length"] == "3"


def test_te_trailers_is_allowed_and_dropped() -> None:
    message = to_request([*BASE, (b"te", b"trailers")], end_stream=True)
    assert all(name != b"te" for name, _ in message.raw_headers)


def test_a_matching_host_header_is_kept_once() -> None:
    message = to_request([*BASE, (b"host", b"A.test:8443")], end_stream=True)
    assert [n for n, _ in message.raw_headers].count(b"host") == 1


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ([*BASE, (b"Accept", b"x")], "invalid header name"),
        ([*BASE, (b"connection", b"close")], "connection-specific"),
        ([*BASE, (b"keep-alive", b"5")], "connection-specific"),
        ([*BASE, (b"upgrade", b"websocket")], "connection-specific"),
        ([*BASE, (b"transfer-encoding", b"chunked")], "connection-specific"),
        ([*BASE, (b"te", b"gzip")], "te other than trailers"),
        ([*BASE, (b"x", b"a\nb")], "NUL, CR or LF"),
        ([*BASE, (b"x", b"a\x00b")], "NUL, CR or LF"),
        ([*BASE, (b"x", b" padded")], "whitespace"),
        ([*BASE, (b"x", b"1"), (b":path", b"/again")], "after regular fields"),
        ([*BASE, (b":status", b"200")], "unknown pseudo-header"),
        ([*BASE, (b":path", b"/twice")], "repeated"),
        ([(b":scheme", b"https"), (b":path", b"/")], "no :method"),
        ([(b":method", b"GET"), (b":scheme", b"https")], "no :path"),
        ([(b":method", b"GET"), (b":path", b"/")], "no :path or no :scheme"),
        ([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"x")], "invalid :path"),
        ([*BASE, (b"host", b"other.test")], "differs from :authority"),
        ([*BASE, (b"content-length", b"1"), (b"content-length", b"2")], "values differ"),
        ([*BASE, (b"content-length", b"5")], "content-length without a body"),
        ([(b":method", b"CONNECT"), (b":path", b"/")], "CONNECT"),
        ([*BASE, *[(b"x-%d" % i, b"v") for i in range(130)]], "more than 128"),
        # what becomes the HTTP/1.1 request line must not be able to add words to it
        ([(b":method", b"GET /x"), *BASE[1:]], "invalid :method"),
        ([(b":method", b"G\tET"), *BASE[1:]], "invalid :method"),
        ([*BASE[:3], (b":path", b"/a HTTP/1.0")], "invalid :path"),
        ([*BASE[:3], (b":path", b"/a\x7fb")], "invalid :path"),
        ([*BASE[:2], (b":authority", b"a.test evil"), BASE[3]], "invalid :authority"),
    ],
)
def test_malformed_requests_are_refused(fields: list[tuple[bytes, bytes]], why: str) -> None:
    with pytest.raises(MalformedRequest, match=why):
        to_request(fields, end_stream=True)


def test_options_star_is_accepted() -> None:
    message = to_request([(b":method", b"OPTIONS"), (b":scheme", b"https"),
                          (b":authority", b"a"), (b":path", b"*")], True)  # fmt: skip
    assert message.path == "*"


def test_the_glitch_budget_refills_and_runs_out() -> None:
    budget = GlitchBudget(burst=10, refill=5.0)
    assert all(budget.spend(100.0) for _ in range(10))
    assert not budget.spend(100.0)  # the 11th at once
    # Half a second gives back 2.5, less the 1 overdrawn: one more, not two.
    assert budget.spend(100.5) and not budget.spend(100.5)
    budget = GlitchBudget(burst=10, refill=5.0)
    assert all(budget.spend(100.0 + i * 0.25) for i in range(200))  # 4/s < 5/s: forever
    assert budget.spent == 200


def test_the_frontend_limits_apply_to_the_target_and_each_header_line() -> None:
    with pytest.raises(RequestTooLarge) as too_long:
        to_request([*BASE[:3], (b":path", b"/" + b"p" * 300)], True, max_uri_length=256)
    assert too_long.value.status == 414
    crumbs = [(b"cookie", b"c" * 600) for _ in range(4)]  # each small, joined too large
    with pytest.raises(RequestTooLarge) as too_big:
        to_request([*BASE, *crumbs], True, max_header_size=2048)
    assert too_big.value.status == 431
    long_host = [*BASE[:2], (b":authority", b"h" * 3000), BASE[3]]
    with pytest.raises(RequestTooLarge):
        to_request(long_host, True, max_header_size=2048)
    to_request([*BASE, *crumbs[:3]], True, max_header_size=2048)  # 1,806 bytes joined: fine
