"""One client connection: parse requests with aiohttp's C parser (llhttp), serve them
in order, write responses as raw bytes.

floatgate uses aiohttp's parsers and stream readers but not its web framework layer:
measured here, aiohttp's server alone tops out near 32k req/s with an empty handler,
while a byte relay on the same loop reaches 50k. This protocol keeps the hardened
parser and drops the per-request framework objects.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.http_parser import HttpRequestParser
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestPayloadError

from node.proxy.errors import ClientTimeout
from node.proxy.http.h2.connection import PREFACE, Http2Connection
from node.proxy.http.peer import TlsFacts, client_address, keep_session, local_address
from node.proxy.session import Host, Phase
from node.tls.peer import ClientIdentity

if TYPE_CHECKING:
    from aiohttp.http_parser import RawRequestMessage

    from node.config.model import Http2Settings

log = logging.getLogger("floatgate.listener")

_PIPELINE_PAUSE, _PIPELINE_RESUME = 32, 16
_UPGRADE_TAIL_LIMIT = 1 << 16  # bytes held behind an upgrade request until its 101
_LINGER = 1.0  # seconds a connection closed on a deadline may take to flush, then cut


def error_head(status: int, text: str, close: bool = True, head_only: bool = False) -> bytes:
    """A complete short plain-text response (no body in answer to HEAD)."""
    body = f"{text}\n".encode()
    connection = b"Connection: close\r\n" if close else b""
    return (
        f"HTTP/1.1 {status} {text.split(':')[0]}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n".encode()
        + connection
        + b"\r\n"
        + (b"" if head_only else body)
    )


class _ParseFailure:
    def __init__(self, exc: HttpProcessingError) -> None:
        self.exc = exc


class RequestHandler(Protocol):
    """What serves the requests parsed here (node.proxy.http.handler.HttpHandler)."""

    async def handle(
        self, conn: ClientConnection, message: RawRequestMessage, payload: StreamReader
    ) -> bool: ...


class ClientConnection(TlsFacts, BaseProtocol):
    """Phases (node.proxy.session.Phase): IDLE between requests, READING while a request's
    head arrives, BUSY while it is served. ``expire`` applies the deadline of each."""

    http2 = False
    # Slots and a list for the queue: an idle keep-alive connection is ~1 KiB smaller
    # (an instance dict; a deque allocates a 64-slot block even when empty).
    __slots__ = (
        "_at_boundary", "_cert_headers", "_current_payload", "_identity", "_local",
        "_meters", "_reading_paused_by_queue", "_sniffed", "closing", "ended_at", "input_ended",
        "last_read", "last_write", "listener", "parser", "peer", "phase", "proxied",
        "queue", "remote", "request_started", "served", "since", "ssl_object", "task",
        "tunnel", "upgrade_tail", "upgraded", "uri_limit", "write_paused_since",
    )  # fmt: skip

    def __init__(self, listener: Host, proxied: tuple[str, int] | None = None) -> None:
        super().__init__(listener.loop)
        self.listener = listener
        self.uri_limit = 0
        # Made by the first bytes of a request, given back between requests (_shed)
        self.parser: HttpRequestParser | None = None
        self._parser = None  # BaseProtocol pauses and resumes it with the transport
        self._at_boundary = True  # the last bytes read ended a request head (see _shed)
        # Reading pauses at _PIPELINE_PAUSE queued requests; one read (64 KiB) may
        # queue more, each popped from the front (cheap next to serving it).
        self.queue: list[tuple[Any, StreamReader]] = []
        self.task: asyncio.Task[None] | None = None
        self.phase = Phase.IDLE
        self.since = time.monotonic()
        self.served = 0  # requests answered on this connection
        self.request_started: float | None = None
        self.closing = False  # answer "Connection: close" and close after this response
        self.remote: str | None = None
        self.proxied = proxied  # the client address a PROXY header named
        self.peer: tuple[str, int] = ("", 0)
        self._local: tuple[str, int] | None = None  # read when first needed
        self.upgraded = False
        self.upgrade_tail = bytearray()
        self.tunnel: Any = None  # set by the upgrade relay; receives raw client bytes
        self._current_payload: StreamReader | None = None
        self._reading_paused_by_queue = False
        self.ssl_object: ssl.SSLObject | None = None
        self._cert_headers: list[tuple[bytes, bytes]] | None = None
        self._identity: ClientIdentity | None = None
        self._meters = listener.handler.route.access.meters.frontend(
            listener.handler.route.frontend.name
        )
        self.last_read = self.since  # the client's last byte (progress of a request body)
        self.last_write = self.since  # the last byte relayed to the client (tunnels)
        self.write_paused_since: float | None = None  # the client stopped reading
        self.ended_at: float | None = None  # closed on a deadline at this time
        self.input_ended = False  # the client half-closed after complete requests
        # The first bytes on a plain frontend with http2.cleartext: the HTTP/2 preface?
        self._sniffed: bytes | None = b"" if self._route_http2().cleartext else None

    # -- asyncio.Protocol -----------------------------------------------------------

    def _new_parser(self) -> HttpRequestParser:
        frontend = self.listener.handler.route.frontend  # the current one (reloads swap it)
        self.uri_limit = frontend.max_uri_length
        return HttpRequestParser(
            self,
            self.listener.loop,
            2**16,
            max_line_size=frontend.max_uri_length,
            max_field_size=frontend.max_header_size,
            max_headers=128,
            payload_exception=RequestPayloadError,
            auto_decompress=False,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not BaseProtocol's: its TCP_NODELAY (set on the socket by the listener
        # already) builds a socket object the transport keeps (~250 bytes each).
        self.transport = cast(asyncio.Transport, transport)
        self.ssl_object = transport.get_extra_info("ssl_object")
        if self.ssl_object is not None and self.ssl_object.selected_alpn_protocol() == "h2":
            self._to_http2(b"")  # this client speaks HTTP/2 (ALPN): not a connection here
            return
        self.peer = client_address(transport, self.proxied)
        self.remote = self.peer[0] or None
        self.listener.connections.add(self)

    def _route_http2(self) -> Http2Settings:
        return self.listener.handler.route.frontend.http2

    def _to_http2(self, received: bytes) -> None:
        """Hand the transport to an HTTP/2 connection (with the bytes read so far)."""
        transport = self.transport
        assert transport is not None
        http2 = Http2Connection(self.listener, self.proxied, self._route_http2(), self._meters)
        if self in self.listener.connections:
            self.listener.connections.discard(self)  # counted again as the HTTP/2 one
        self.transport = None
        transport.set_protocol(http2)
        http2.connection_made(transport)
        if received:
            http2.data_received(received)

    @property
    def local(self) -> tuple[str, int]:
        """The address the client connected to (for a PROXY header to the servers)."""
        if self._local is None:
            self._local = local_address(self.transport)
        return self._local

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.ssl_object is not None and self.phase is Phase.IDLE:
            keep_session(self.ssl_object)
        payload = self._current_payload
        if payload is not None and not payload.is_eof():
            payload.set_exception(ConnectionResetError("client closed the connection"))
        if self.tunnel is not None:
            self.tunnel.client_closed()
        elif self.task is not None and self.phase is Phase.BUSY:
            # Nobody is left to answer: stop waiting (a queued request gives up its
            # place in the server queue, an exchange in flight is cut).
            self.task.cancel()
        self.listener.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if self._sniffed is not None:
            data = self._sniff(data)
            if not data:
                return
        self._meters.bytes_in += len(data)
        if data:
            self.last_read = time.monotonic()
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.upgraded:
            self.upgrade_tail += data
            if len(self.upgrade_tail) > _UPGRADE_TAIL_LIMIT and self.transport is not None:
                self.transport.pause_reading()  # resumed once the tunnel is open
            return
        if self.phase is Phase.IDLE and data:
            self.phase = Phase.READING
            self.since = self.request_started = self.last_read
        parser = self.parser
        if parser is None:
            if not data:
                return  # a resume (BaseProtocol feeds b""): nothing is held back
            parser = self.parser = self._parser = self._new_parser()
        if data:
            self._at_boundary = data.endswith(b"\r\n\r\n")
        try:
            messages, upgraded, tail = parser.feed_data(data)
        except HttpProcessingError as exc:
            self._fail_bodies(exc)
            self.queue.append((_ParseFailure(exc), EMPTY_PAYLOAD))
            self.transport.pause_reading()  # type: ignore[union-attr]
        else:
            self.queue.extend(messages)
            if upgraded:
                self.upgraded = self._upgraded = True
                self.upgrade_tail += tail
        if self.queue:
            if self.task is None:
                self.task = self._loop.create_task(self._serve())
            if len(self.queue) >= _PIPELINE_PAUSE and not self._reading_paused_by_queue:
                self._reading_paused_by_queue = True
                self.transport.pause_reading()  # type: ignore[union-attr]

    def _sniff(self, data: bytes) -> bytes:
        """h2c with prior knowledge (RFC 9113 3.3): a client whose first bytes are the
        HTTP/2 preface is handed to an HTTP/2 connection; what it returns is for here."""
        sniffed = self._sniffed = (self._sniffed or b"") + data
        if len(sniffed) < len(PREFACE) and PREFACE.startswith(sniffed):
            return b""  # too early to tell
        self._sniffed = None
        if sniffed.startswith(PREFACE):
            self._to_http2(sniffed)
            return b""
        return sniffed

    def eof_received(self) -> bool:
        if self.tunnel is not None:
            self.tunnel.client_eof()
            return True  # keep our half open for the server's remaining bytes
        current = self._current_payload
        if current is not None and current is not EMPTY_PAYLOAD and not current.is_eof():
            return False  # input ended inside the body being served: it can never complete
        self._drop_incomplete()
        if (self.queue or self.phase is Phase.BUSY) and self.ssl_object is None:
            # A half-closed client still gets the answers to the complete requests it
            # sent (as with HAProxy); the connection closes after the last of them.
            # (TLS cannot stay half-open: asyncio closes an SSL transport at EOF.)
            self.input_ended = True
            return True
        return False

    def _drop_incomplete(self) -> None:
        """Input ended: a queued request whose body is incomplete can never complete;
        it is dropped (nothing of it was sent anywhere), and the complete requests
        before it are still answered. (Closing at once here used to lose the answer
        to a complete request in flight: found by the fuzzer.)"""
        for index, (_, payload) in enumerate(self.queue):
            if payload is not EMPTY_PAYLOAD and not payload.is_eof():
                del self.queue[index:]
                return

    def _fail_bodies(self, exc: BaseException) -> None:
        """A parse error inside a body: the request it belongs to fails now (400), not
        after a timeout, and what was forwarded of it is cut."""
        payloads = [p for _, p in self.queue]
        if self._current_payload is not None:
            payloads.append(self._current_payload)
        for payload in payloads:
            if payload is not EMPTY_PAYLOAD and not payload.is_eof():
                payload.set_exception(exc)

    # -- serving -------------------------------------------------------------------

    def writable(self) -> bool:
        """May a response still be written (the client has not gone)?"""
        transport = self.transport
        return transport is not None and not transport.is_closing()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client connection closed")
        transport.write(data)

    async def drain(self) -> None:
        if self.writing_paused:
            await self._drain_helper()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.write_paused_since = time.monotonic()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.write_paused_since = None
        self.last_write = time.monotonic()

    async def _serve(self) -> None:
        try:
            while self.queue and self.transport is not None:
                message, payload = self.queue.pop(0)
                if self._reading_paused_by_queue and len(self.queue) < _PIPELINE_RESUME:
                    self._reading_paused_by_queue = False
                    self.transport.resume_reading()
                if isinstance(message, _ParseFailure):
                    self._refuse(message.exc)
                    return
                self.phase = Phase.BUSY
                self._current_payload = payload
                # The listener's current handler (reloads swap it); an HTTP listener's is
                # always an HttpHandler (a frontend cannot change mode on reload).
                handler = cast("RequestHandler", self.listener.handler)
                keep = await handler.handle(self, message, payload)
                self._current_payload = None
                if payload is not EMPTY_PAYLOAD and not payload.is_eof():
                    keep = False  # an unread request body: the stream position is unknown
                await self.drain()  # a client that does not read stops its own pipeline
                # ``keep`` is what the response told the client. A drain that began after
                # the response said keep-alive leaves the connection idle: closing it now
                # would race the client's next request (the drain closes idle ones, or
                # that request is answered with "Connection: close").
                if not keep or self.upgraded or self.transport is None:
                    self.close()
                    return
                if self.input_ended and not self.queue:
                    self.close()
                    return
                self.phase = Phase.IDLE
                if not self.queue:
                    self._shed()
                self.served += 1
                self.since = time.monotonic()
                self.request_started = None
        except ConnectionError as exc:  # the client went away: an ordinary event
            log.debug("%s: client %s left: %r", self.listener.name, self.remote, exc)
            self.abort()
        except Exception:
            log.exception("%s: unexpected error serving %s", self.listener.name, self.remote)
            self.abort()
        finally:
            self.task = None

    def _refuse(self, exc: HttpProcessingError) -> None:
        if isinstance(exc, LineTooLong):
            status, text = _too_long(exc, self.uri_limit)
        elif isinstance(exc, BadHttpMessage) and "too many headers" in str(exc).lower():
            status, text = 431, "Request Header Fields Too Large"
        else:
            status, text = 400, "Bad Request"
        self._meters.request_errors += 1
        self._meters.requests["4xx"] += 1
        log.info("%s: rejected request from %s: %s", self.listener.name, self.remote,
                 " ".join(str(exc).split())[:200])  # fmt: skip
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(error_head(status, text))
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def quiet(self, now: float) -> bool:
        """Between requests: idle after at least one answer, or connected for a while
        without sending anything (a fresh connection's request is about to arrive)."""
        return self.phase is Phase.IDLE and (self.served > 0 or now - self.since > 0.05)

    def expire(self, now: float) -> None:
        """The sweeper's deadline check (every phase of a connection has one)."""
        timeouts = self.listener.handler.route.frontend.timeouts
        transport = self.transport
        if transport is None:
            return
        if self.ended_at is not None:
            # Closed on a deadline, but a client that does not read keeps the close
            # waiting for the write buffer: cut it.
            if now - self.ended_at >= _LINGER:
                self.abort()
            return
        if self.tunnel is not None:
            paused = self.write_paused_since
            if now - max(self.last_read, self.last_write) >= timeouts.tunnel_idle or (
                paused is not None and now - paused >= timeouts.tunnel_idle
            ):
                self._expired("tunnel", "left its tunnel idle (or stopped reading it)")
                self.abort()
            return
        if self.phase is Phase.IDLE:
            limit = timeouts.keep_alive if self.served else timeouts.request_headers
            if now - self.since >= limit:
                self._end(now)  # nothing was asked: close quietly, as HAProxy does
            return
        if self.phase is Phase.READING:
            if now - self.since >= timeouts.request_headers:
                self._expired("http_request", "too slow to send its request headers: 408")
                transport.write(error_head(408, "Request Timeout"))
                self._end(now)
            return
        # BUSY: the client must keep sending its body and keep reading its answer.
        paused = self.write_paused_since
        if paused is not None and now - paused >= timeouts.client:
            self._expired("client", "stopped reading its response")
            self.abort()
            return
        payload = self._current_payload
        if (
            payload is not None
            and not payload.is_eof()
            and payload.exception() is None
            and not self._reading_paused  # a full buffer waits for the server, not the client
            and now - self.last_read >= timeouts.client
        ):
            self._expired("client", "stopped sending its request body")
            payload.set_exception(ClientTimeout(f"no body bytes for {timeouts.client:g}s"))

    def _shed(self) -> None:
        """The last request answered and nothing queued: the connection gives its
        parser back, with what the parser keeps of that request (~1.3 KiB of a ~3.7 KiB
        idle keep-alive connection; HAProxy also frees an idle connection's buffers),
        and the next bytes make a new one (~0.4 us). Given back at once, not later: freed
        later, the memory would stay with the process. Only at a message boundary: the
        last bytes read ended a request head (the parser returns each head at once, so
        none is half-parsed; a request whose body had not all come closed the
        connection), no body stream, reading not paused; else a pipelined request split
        across reads would lose its first part."""
        if (
            self.parser is not None
            and self._at_boundary
            and not self.queue
            and self._current_payload is None
            and not self.upgraded
            and not self._reading_paused
        ):
            self.parser = self._parser = None

    def _end(self, now: float) -> None:
        """Close after a deadline; what is still unsent gets _LINGER seconds."""
        self.ended_at = now
        self.close()

    def _expired(self, timeout: str, what: str) -> None:
        self._meters.timeouts[timeout] = self._meters.timeouts.get(timeout, 0) + 1
        log.info("%s: client %s %s (timeout.%s)", self.listener.name, self.remote, what, timeout)


def _too_long(exc: LineTooLong, uri_limit: int) -> tuple[int, str]:
    """The parser reports the offending bytes and the limit it hit: the request target
    (starts with / or a scheme, limit max_uri_length) -> 414, anything else -> 431."""
    line, limit = (*exc.args, "", "")[:2]
    head = bytes(line[:8]) if isinstance(line, bytes | bytearray) else str(line)[:8].encode()
    if str(limit) == str(uri_limit) and head.startswith((b"/", b"*", b"http:", b"https:")):
        return 414, "URI Too Long"
    return 431, "Request Header Fields Too Large"
