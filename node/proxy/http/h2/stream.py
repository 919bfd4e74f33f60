"""One HTTP/2 stream as the HTTP/1.1 request path sees a client (node.proxy.http.client),
and the flow-control end of its request-body reader. The connection that owns the
streams (node.proxy.http.h2.connection) is reached through :class:`StreamOwner`."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Protocol

import h2.errors
import h2.exceptions
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from node.config.model import ClientAuthConfig
from node.proxy.http.h2.response import Fields, ResponseTranslator, TranslationError
from node.tls.peer import ClientIdentity

log = logging.getLogger("floatgate.listener")

SEND_LOW = 1 << 16  # the request path may write more once less than this waits


class StreamOwner(Protocol):
    """What a stream needs of its connection."""

    loop: asyncio.AbstractEventLoop
    writing_paused: bool
    remote: str | None
    peer: tuple[str, int]
    ssl_object: ssl.SSLObject | None

    @property
    def local(self) -> tuple[str, int]: ...
    @property
    def closing(self) -> bool: ...

    def identity(self) -> ClientIdentity: ...
    def client_cert_headers(self, auth: ClientAuthConfig | None) -> list[tuple[bytes, bytes]]: ...
    def writable(self) -> bool: ...
    def flush(self, stream: Http2Stream | None = None) -> None: ...
    def send_head(self, stream: Http2Stream, fields: Fields, end_stream: bool) -> None: ...
    def reset_stream(self, stream: Http2Stream, code: h2.errors.ErrorCodes) -> None: ...
    def acknowledge(self, stream_id: int, length: int) -> None: ...


class BodyWindow(BaseProtocol):
    """The flow-control end of one stream's request-body reader: the StreamReader pauses
    it past its high-water mark and resumes it as the request path reads; resumed, the
    DATA held back is acknowledged and the client may send more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: Http2Stream) -> None:
        super().__init__(loop)
        self._stream = stream
        self.held = 0  # bytes received but not acknowledged yet

    @property
    def connected(self) -> bool:
        return not self._stream.reset

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._reading_paused = False
        if self.held:
            held, self.held = self.held, 0
            self._stream.owner.acknowledge(self._stream.stream_id, held)


class Http2Stream:
    """One request/response exchange, as the HTTP/1.1 request path sees a client."""

    http2 = True
    upgraded = False
    tunnel = None

    def __init__(self, owner: StreamOwner, stream_id: int, started: float, method: str) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.method = method
        self.expected: int | None = None  # the request's content-length
        self.received = 0  # request-body bytes received
        self.unread_body = False  # answered from here: a body still to come is refused
        self.request_started: float | None = started
        self.last_read = started
        self.payload: StreamReader = EMPTY_PAYLOAD
        self.window: BodyWindow | None = None
        self.task: asyncio.Task[None] | None = None
        self.translator: ResponseTranslator | None = None
        self.pending = bytearray()  # response body waiting for the client's window
        self.ended = False  # the whole response is in ``pending`` (or sent)
        self.end_sent = False
        self.reset = False  # reset by either side: nothing more is sent
        self.blocked_since: float | None = None  # response data waits for a window
        self._drained: asyncio.Future[None] | None = None

    # -- what the request path reads of its client ------------------------------------

    @property
    def remote(self) -> str | None:
        return self.owner.remote

    @property
    def peer(self) -> tuple[str, int]:
        return self.owner.peer

    @property
    def local(self) -> tuple[str, int]:
        return self.owner.local

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self.owner.ssl_object

    @property
    def closing(self) -> bool:
        return self.owner.closing

    def identity(self) -> ClientIdentity:
        return self.owner.identity()

    def client_cert_headers(self, auth: ClientAuthConfig | None) -> list[tuple[bytes, bytes]]:
        return self.owner.client_cert_headers(auth)

    # -- what the request path writes ---------------------------------------------------

    def writable(self) -> bool:
        return not self.reset and self.owner.writable()

    def write(self, data: bytes) -> None:
        if not self.writable():
            raise ConnectionResetError("stream reset or client connection closed")
        if self.translator is None:
            self.translator = ResponseTranslator(
                self._head, self._data, self._end, no_body=self.method == "HEAD"
            )
        try:
            self.translator.feed(data)
            self.owner.flush(self)
        except (TranslationError, h2.exceptions.ProtocolError) as exc:
            log.error("http/2 stream %d: cannot send the response: %s", self.stream_id, exc)
            self.abort()
            raise ConnectionResetError("response not sendable over http/2") from exc

    async def drain(self) -> None:
        while len(self.pending) >= SEND_LOW or self.owner.writing_paused:
            if not self.writable():
                raise ConnectionResetError("stream reset or client connection closed")
            self._drained = self.owner.loop.create_future()
            try:
                await self._drained
            finally:
                self._drained = None
        if not self.writable():
            raise ConnectionResetError("stream reset or client connection closed")

    def abort(self) -> None:
        """The response cannot be completed: the client sees the stream reset."""
        self.owner.reset_stream(self, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def wake(self) -> None:
        waiter = self._drained
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- translator callbacks -------------------------------------------------------------

    def _head(self, fields: Fields, end_stream: bool) -> None:
        self.owner.send_head(self, fields, end_stream)

    def _data(self, data: bytes) -> None:
        self.pending += data

    def _end(self) -> None:
        self.ended = True
