"""The response the request path writes (HTTP/1.1 bytes, the same code serves both
protocols) turned into HTTP/2 headers and data for one stream.

As HAProxy 1.8 did, HTTP/2 streams are served by the HTTP/1.1 request path: what it
writes is parsed again here (httptools, llhttp in C) into the ``:status`` and fields of
a HEADERS frame and the decoded body. Connection-specific fields (RFC 9113 8.2.2) are
dropped; a chunked body becomes plain DATA.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools

from node.proxy.http.headers import HOP_BY_HOP

Fields = list[tuple[bytes, bytes]]


class TranslationError(Exception):
    """The request path wrote something that is not an HTTP/1.1 response."""


class ResponseTranslator:
    """Feed it the bytes written for one response; it calls ``on_head(fields,
    end_stream)`` for each head (1xx heads first, then the final one), ``on_data(data)``
    and ``on_end()``. ``no_body``: the response to a HEAD request (its head ends it)."""

    __slots__ = ("_fields", "_head_sent", "_no_body", "_on_data", "_on_end", "_on_head",
                 "_parser", "done")  # fmt: skip

    def __init__(
        self,
        on_head: Callable[[Fields, bool], None],
        on_data: Callable[[bytes], None],
        on_end: Callable[[], None],
        no_body: bool,
    ) -> None:
        self._on_head, self._on_data, self._on_end = on_head, on_data, on_end
        self._no_body = no_body
        self._fields: Fields = []
        self._head_sent = False
        self.done = False
        self._parser = httptools.HttpResponseParser(self)

    def feed(self, data: bytes) -> None:
        if self.done:
            return  # nothing follows the end of a stream (a HEAD answer's stray bytes)
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise TranslationError(str(exc) or type(exc).__name__) from exc

    # -- httptools callbacks ----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower not in HOP_BY_HOP:
            self._fields.append((lower, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        fields = [(b":status", b"%d" % status), *self._fields]
        self._fields = []
        if status == 101:  # no upgrades in HTTP/2 (RFC 9113 8.6)
            raise TranslationError("a 101 (Switching Protocols) answer")
        if status < 200:
            self._on_head(fields, False)  # 100 Continue and the like
            return
        end = self._no_body or status in (204, 304)
        self._head_sent = True
        self._on_head(fields, end)
        if end:
            self.done = True
            self._on_end()

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self._on_data(body)

    def on_message_complete(self) -> None:
        if self._head_sent and not self.done:
            self.done = True
            self._on_end()
