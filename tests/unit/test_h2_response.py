"""The HTTP/1.1 response the request path writes, translated for an HTTP/2 stream."""

from __future__ import annotations

import pytest

from node.proxy.http.h2.response import ResponseTranslator, TranslationError


def _translate(data: list[bytes], no_body: bool = False) -> list[object]:
    events: list[object] = []
    translator = ResponseTranslator(
        lambda fields, end: events.append(("head", fields, end)),
        lambda body: events.append(("data", body)),
        lambda: events.append("end"),
        no_body=no_body,
    )
    for piece in data:
        translator.feed(piece)
    return events


def test_a_chunked_response_becomes_plain_data_without_connection_fields() -> None:
    events = _translate([
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
        b"5\r\nhello\r\n", b"0\r\n\r\n",
    ])  # fmt: skip
    assert events == [
        ("head", [(b":status", b"200"), (b"content-type", b"text/plain"),
                  (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")], False),
        ("data", b"hello"),
        "end",
    ]  # fmt: skip


def test_informational_heads_come_first_and_head_answers_end_with_their_head() -> None:
    events = _translate([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"])
    assert events == [("head", [(b":status", b"100")], False),
                      ("head", [(b":status", b"204")], True), "end"]  # fmt: skip
    head = _translate([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], no_body=True)
    assert head == [("head", [(b":status", b"200"), (b"content-length", b"10")], True), "end"]


@pytest.mark.parametrize(
    "data",
    [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
     b"not a response\r\n\r\n"],
)  # fmt: skip
def test_what_http2_cannot_carry_is_refused(data: bytes) -> None:
    with pytest.raises(TranslationError):
        _translate([data])
