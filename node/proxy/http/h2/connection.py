"""One HTTP/2 client connection (RFC 9113), framed by the h2 library.

Each stream is served by the HTTP/1.1 request path (node.proxy.http.handler) through an
:class:`Http2Stream`, which looks to that path like a client connection: the request
head comes from node.proxy.http.h2.request, the body from DATA frames through a
StreamReader, and what the path writes back is translated into HEADERS and DATA
(node.proxy.http.h2.response). Rules, client-certificate policy, balancing, retries,
queues, timeouts and the access log are therefore the same for both protocols.

Flow control both ways keeps memory bounded per stream: received DATA is acknowledged
(the client's window reopened) only while the stream's reader holds less than its
high-water mark, and a response body waits for the client's window before the request
path is allowed to read more from the server (``drain``).

Shutting down (a drain, reload or switchover) sends GOAWAY naming the last stream that
will be served; streams the client opens after that are refused (REFUSED_STREAM) and
retried elsewhere by the client; the connection closes when the last stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from hyperframe.frame import GoAwayFrame

from node.config.model import ClientAuthConfig, Http2Settings
from node.proxy.errors import ClientTimeout
from node.proxy.http.h2.guard import GlitchBudget
from node.proxy.http.h2.request import MalformedRequest, to_request
from node.proxy.http.h2.response import Fields, ResponseTranslator, TranslationError
from node.proxy.http.peer import TlsFacts, client_address, keep_session, local_address
from node.proxy.session import Host, Phase
from node.tls.peer import ClientIdentity

if TYPE_CHECKING:
    from node.observe.metrics import FrontendMeters

log = logging.getLogger("floatgate.listener")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_BODY_BUFFER = 1 << 16  # a stream's reader acknowledges DATA up to twice this
_SEND_LOW = 1 << 16  # the request path may write more once less than this waits
_CONNECTION_WINDOW = 1 << 20  # the connection-level receive window
_MAX_WRITE_BUFFER = 4 << 20  # unsent bytes to a client that does not read: cut
_LINGER = 1.0  # seconds a connection closed on a deadline may take to flush, then cut


class _BodyWindow(BaseProtocol):
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

    def __init__(self, owner: Http2Connection, stream_id: int, started: float) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.request_started: float | None = started
        self.last_read = started
        self.payload: StreamReader = EMPTY_PAYLOAD
        self.window: _BodyWindow | None = None
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
                self._head, self._data, self._end, no_body=self.owner.is_head(self)
            )
        try:
            self.translator.feed(data)
            self.owner.flush(self)
        except (TranslationError, h2.exceptions.ProtocolError) as exc:
            log.error("http/2 stream %d: cannot send the response: %s", self.stream_id, exc)
            self.abort()
            raise ConnectionResetError("response not sendable over http/2") from exc

    async def drain(self) -> None:
        while len(self.pending) >= _SEND_LOW or self.owner.writing_paused:
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

    def _head(self, fields: Fields, final: bool, end_stream: bool) -> None:
        self.owner.send_head(self, fields, end_stream)

    def _data(self, data: bytes) -> None:
        self.pending += data

    def _end(self) -> None:
        self.ended = True


class Http2Connection(TlsFacts, asyncio.Protocol):
    """The Served connection (node.proxy.session) for an HTTP/2 client."""

    tunnel = None
    http2 = True

    def __init__(
        self,
        listener: Host,
        proxied: tuple[str, int] | None,
        settings: Http2Settings,
        meters: FrontendMeters,
    ) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.proxied = proxied
        self.settings = settings
        self._meters = meters
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,  # node.proxy.http.h2.request: stream errors
            normalize_inbound_headers=False,
            # What is sent comes from node.proxy.http.h2.response: lowercase names of an
            # HTTP/1.1 response, connection-specific fields removed.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                h2.settings.SettingCodes.HEADER_TABLE_SIZE: settings.header_table_size,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Http2Stream] = {}
        self._methods: dict[int, str] = {}
        self.remote: str | None = None
        self.peer: tuple[str, int] = ("", 0)
        self._local: tuple[str, int] | None = None
        self.ssl_object: ssl.SSLObject | None = None
        self._identity: ClientIdentity | None = None
        self._cert_headers: list[tuple[bytes, bytes]] | None = None
        self.since = time.monotonic()
        self.served = 0
        self.opened = 0  # streams the client opened on this connection
        self.last_stream_id = 0  # the highest stream the client opened
        self.goaway_id: int | None = None  # GOAWAY sent: streams above are refused
        self._closing = False
        self.ended_at: float | None = None
        self.writing_paused = False
        self.write_paused_since: float | None = None
        self.glitches = GlitchBudget()
        self._write_pending = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = client_address(transport, self.proxied)
        self.remote = self.peer[0] or None
        self.ssl_object = transport.get_extra_info("ssl_object")
        self.listener.connections.add(self)
        self.h2.initiate_connection()
        grow = _CONNECTION_WINDOW - self.h2.inbound_flow_control_window
        if grow > 0:
            self.h2.increment_flow_control_window(grow)
        self._write()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.ssl_object is not None and not self.streams:
            keep_session(self.ssl_object)
        for stream in list(self.streams.values()):
            self._stream_gone(stream, ConnectionResetError("client closed the connection"))
        self.streams.clear()
        self.transport = None
        self.listener.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        self._meters.bytes_in += len(data)
        if self.ended_at is not None:
            return  # closing: what still arrives is not read
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # CONTINUATION flood, HPACK bomb, flow-control violation...: h2 has queued a
            # GOAWAY with the error code; an invalid preface it refuses before that.
            if self.h2.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                self.h2.close_connection(error_code=h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self._meters.request_errors += 1
            log.info("%s: http/2 client %s broke the protocol: %s", self.listener.name,
                     self.remote, exc)  # fmt: skip
            self._write()
            self._end(time.monotonic())
            return
        now = time.monotonic()
        for event in events:
            self._event(event, now)
            if self.transport is None or self.ended_at is not None:
                return
        self._write_soon()  # acknowledgements, SETTINGS and PING answers

    def eof_received(self) -> bool:
        return False  # the client half-closed: nothing more can be asked on this stream

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.write_paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.write_paused_since = None
        for stream in self.streams.values():
            stream.wake()

    # -- events -----------------------------------------------------------------------

    def _event(self, event: h2.events.Event, now: float) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event, now)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event, now)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.payload is not EMPTY_PAYLOAD:
                stream.payload.feed_eof()
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self.streams.get(event.stream_id)  # trailers are not forwarded
            if stream is not None and stream.payload is not EMPTY_PAYLOAD:
                stream.payload.feed_eof()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                if not stream.end_sent:  # reset before its answer: Rapid Reset's pattern
                    self._glitch(now, "streams reset before their answer")
                stream.reset = True
                self._stream_gone(stream, ConnectionResetError("the client reset the stream"))
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:  # one stream's window; 0: the connection's
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    self.flush(stream)
            else:
                self.flush()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._glitch(now, "SETTINGS frames")
            self.flush()  # the initial window may have changed
        elif isinstance(event, h2.events.PingReceived):
            self._glitch(now, "PING frames")
        elif isinstance(event, h2.events.PriorityUpdated):
            self._glitch(now, "PRIORITY frames")
        elif isinstance(event, h2.events.ConnectionTerminated):
            # The client's GOAWAY: it leaves (h2 sends nothing after it).
            log.debug("%s: http/2 client %s sent GOAWAY (%s)", self.listener.name,
                      self.remote, event.error_code)  # fmt: skip
            for stream in list(self.streams.values()):
                self._stream_gone(stream, ConnectionResetError("the client went away"))
            self._end(now)

    def _request(self, event: h2.events.RequestReceived, now: float) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        self.last_stream_id = max(self.last_stream_id, stream_id)
        self.opened += 1
        if self.goaway_id is not None and stream_id > self.goaway_id:
            self._reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        end_stream = event.stream_ended is not None
        try:
            message = to_request(event.headers or [], end_stream)
        except MalformedRequest as exc:
            self._meters.request_errors += 1
            self._glitch(now, "malformed requests")
            log.info("%s: rejected http/2 request from %s: %s", self.listener.name,
                     self.remote, exc)  # fmt: skip
            self._reset(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        stream = Http2Stream(self, stream_id, now)
        if not end_stream:
            stream.window = _BodyWindow(self.loop, stream)
            stream.payload = StreamReader(stream.window, _BODY_BUFFER, loop=self.loop)
        self.streams[stream_id] = stream
        self._methods[stream_id] = message.method
        stream.task = self.loop.create_task(self._serve(stream, message))
        if self.opened >= self.settings.max_total_streams:
            self.closing = True  # HAProxy's max-total-streams: go on with a new connection

    def _data(self, event: h2.events.DataReceived, now: float) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        length = event.flow_controlled_length or 0
        data = event.data or b""
        if not data and event.stream_ended is None:
            self._glitch(now, "empty DATA frames")
        stream = self.streams.get(stream_id)
        if stream is None or stream.window is None or stream.payload.exception() is not None:
            self.acknowledge(stream_id, length)  # nobody reads it: keep the window open
            return
        stream.last_read = now
        if data:
            stream.payload.feed_data(data)
        if stream.window.reading_paused:
            stream.window.held += length
        else:
            self.acknowledge(stream_id, length)

    def _glitch(self, now: float, what: str) -> None:
        if self.glitches.spend(now) or self.ended_at is not None:
            return
        log.warning("%s: http/2 client %s sent too many %s: GOAWAY ENHANCE_YOUR_CALM",
                    self.listener.name, self.remote, what)  # fmt: skip
        self._meters.request_errors += 1
        for stream in list(self.streams.values()):
            self._stream_gone(stream, ConnectionResetError("connection closed for abuse"))
        self.h2.close_connection(
            error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=self.last_stream_id
        )
        self._write()
        self._end(now)

    # -- serving one stream ---------------------------------------------------------------

    async def _serve(self, stream: Http2Stream, message: Any) -> None:
        handler = cast(Any, self.listener.handler)  # an HttpHandler (mode http)
        try:
            await handler.handle(stream, message, stream.payload)
        except ConnectionError:
            pass  # the stream or the connection went away
        except Exception:
            log.exception("%s: unexpected error serving http/2 stream %d of %s",
                          self.listener.name, stream.stream_id, self.remote)  # fmt: skip
            self.reset_stream(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)
        finally:
            stream.task = None
            self._after_handler(stream)

    def _after_handler(self, stream: Http2Stream) -> None:
        if stream.reset:
            return
        translator = stream.translator
        if translator is None or not translator.done:
            self.reset_stream(stream, h2.errors.ErrorCodes.INTERNAL_ERROR)  # unanswered
        elif stream.end_sent:
            self._finished(stream)
        else:
            self.flush(stream)  # the rest waits for the client's window

    def is_head(self, stream: Http2Stream) -> bool:
        return self._methods.get(stream.stream_id) == "HEAD"

    def send_head(self, stream: Http2Stream, fields: Fields, end_stream: bool) -> None:
        if stream.reset or self.transport is None:
            return
        self.h2.send_headers(stream.stream_id, fields, end_stream=end_stream)
        if end_stream:
            stream.end_sent = True
            self._finished(stream)

    def flush(self, stream: Http2Stream | None = None) -> None:
        """Send what the windows allow of one stream's response (or of every stream's,
        after a window grew); the frames go out with the loop's next turn, together."""
        if self.transport is None:
            return
        now = time.monotonic()
        for each in (stream,) if stream is not None else list(self.streams.values()):
            if not each.reset and not each.end_sent and (each.pending or each.ended):
                self._send_body(each, now)
        self._write_soon()

    def _send_body(self, stream: Http2Stream, now: float) -> None:
        sid, pending = stream.stream_id, stream.pending
        try:
            while pending:
                window = self.h2.local_flow_control_window(sid)
                size = min(len(pending), window, self.h2.max_outbound_frame_size)
                if size <= 0:
                    break
                last = stream.ended and size == len(pending)
                self.h2.send_data(sid, bytes(pending[:size]), end_stream=last)
                del pending[:size]
                if last:
                    stream.end_sent = True
            if stream.ended and not pending and not stream.end_sent:
                self.h2.end_stream(sid)
                stream.end_sent = True
        except h2.exceptions.StreamClosedError:
            stream.reset = True
        stream.blocked_since = (stream.blocked_since or now) if pending else None
        if len(pending) < _SEND_LOW:
            stream.wake()
        if stream.end_sent or stream.reset:
            self._finished(stream)

    def _finished(self, stream: Http2Stream) -> None:
        """The response is sent whole (or the stream was reset): the stream is over
        once its request-path task has returned."""
        if stream.task is not None and not stream.reset:
            return  # the task may still be logging; _after_handler comes back here
        if self.streams.pop(stream.stream_id, None) is None:
            return
        self._methods.pop(stream.stream_id, None)
        stream.wake()
        if not stream.reset:
            self.served += 1
            if not stream.payload.is_eof():
                # Answered before the whole request arrived: the rest is not wanted.
                self._reset(stream.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        if not self.streams:
            self.since = time.monotonic()
            if self._closing:
                self.close()

    def _stream_gone(self, stream: Http2Stream, exc: Exception) -> None:
        stream.reset = True
        payload = stream.payload
        if payload is not EMPTY_PAYLOAD and not payload.is_eof():
            payload.set_exception(exc)
        if stream.task is not None:
            stream.task.cancel()  # nobody is left to answer (a queued one leaves the queue)
        stream.wake()
        self.streams.pop(stream.stream_id, None)
        self._methods.pop(stream.stream_id, None)
        if not self.streams:
            self.since = time.monotonic()
            if self._closing:
                self.close()

    def reset_stream(self, stream: Http2Stream, code: h2.errors.ErrorCodes) -> None:
        if not stream.reset:
            self._reset(stream.stream_id, code)
        self._stream_gone(stream, ConnectionResetError("stream reset"))

    def _reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        try:
            self.h2.reset_stream(stream_id, error_code=code)
        except h2.exceptions.StreamClosedError:
            pass  # closed already on both sides
        self._write()

    def acknowledge(self, stream_id: int, length: int) -> None:
        if length <= 0:
            return
        try:
            self.h2.acknowledge_received_data(length, stream_id)
        except h2.exceptions.StreamClosedError:
            self.h2.increment_flow_control_window(length)  # the connection's share
        self._write_soon()

    def _write_soon(self) -> None:
        """One write per loop turn for everything the streams queued (one TLS record
        and one send instead of one per stream)."""
        if not self._write_pending:
            self._write_pending = True
            self.loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._write_pending = False
        self._write()

    def _write(self) -> None:
        data = self.h2.data_to_send()
        transport = self.transport
        if data and self.writable():
            assert transport is not None
            transport.write(data)
            if transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
                log.info("%s: http/2 client %s does not read what it asked for: cut",
                         self.listener.name, self.remote)  # fmt: skip
                transport.abort()

    def writable(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing() and self.ended_at is None

    @property
    def local(self) -> tuple[str, int]:
        if self._local is None:
            self._local = local_address(self.transport)
        return self._local

    # -- the listener's side (Served) ---------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return Phase.BUSY if self.streams else Phase.IDLE

    @property
    def closing(self) -> bool:
        return self._closing

    @closing.setter
    def closing(self, value: bool) -> None:
        """Set by a drain: GOAWAY now (streams opened after it are refused, so the client
        retries them on a new connection), close once the last stream is over."""
        if not value or self._closing:
            return
        self._closing = True
        self._goaway()
        if not self.streams:
            self.close()

    def _goaway(self) -> None:
        if self.goaway_id is not None or self.transport is None:
            return
        self.goaway_id = self.last_stream_id
        # Written by hand: h2 sends nothing more after its own GOAWAY, and the streams
        # below goaway_id are still to be answered.
        self._write()
        frame = GoAwayFrame(stream_id=0, last_stream_id=self.goaway_id, error_code=0)
        if self.writable():
            self.transport.write(frame.serialize())

    def close(self) -> None:
        if self.transport is None:
            return
        if self.writable():
            self._write()
            last = self.goaway_id if self.goaway_id is not None else self.last_stream_id
            try:  # never a higher last stream than an earlier GOAWAY named (RFC 9113 6.8)
                self.h2.close_connection(last_stream_id=last)
            except h2.exceptions.ProtocolError:
                pass  # h2 has closed the connection already
            self._write()
        self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def quiet(self, now: float) -> bool:
        return not self.streams and (self.served > 0 or now - self.since > 0.05)

    def expire(self, now: float) -> None:
        timeouts = self.listener.handler.route.frontend.timeouts
        if self.transport is None:
            return
        if self.ended_at is not None:
            if now - self.ended_at >= _LINGER:
                self.abort()
            return
        paused = self.write_paused_since
        if paused is not None and now - paused >= timeouts.client:
            self._expired("client", "stopped reading its responses")
            self.abort()
            return
        if not self.streams:
            limit = timeouts.keep_alive if self.served else timeouts.request_headers
            if now - self.since >= limit:
                self.close()  # nothing asked: GOAWAY and close quietly
                self.ended_at = now
            return
        for stream in list(self.streams.values()):
            self._expire_stream(stream, now, timeouts.client)

    def _expire_stream(self, stream: Http2Stream, now: float, limit: float) -> None:
        blocked = stream.blocked_since
        if blocked is not None and now - blocked >= limit:
            self._expired("client", f"left stream {stream.stream_id} without a window")
            self.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            return
        payload, window = stream.payload, stream.window
        if (
            window is not None
            and not payload.is_eof()
            and payload.exception() is None
            and not window.reading_paused  # a full buffer waits for the server
            and now - stream.last_read >= limit
        ):
            self._expired("client", f"stopped sending the body of stream {stream.stream_id}")
            payload.set_exception(ClientTimeout(f"no body bytes for {limit:g}s"))

    def _end(self, now: float) -> None:
        """Close after GOAWAY: a plain connection sends its FIN and reads (discarding)
        until the client closes or _LINGER passes, so that the client reads the GOAWAY
        instead of a reset for the bytes it was still sending."""
        self.ended_at = now
        transport = self.transport
        if transport is None:
            return
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    def _expired(self, timeout: str, what: str) -> None:
        self._meters.timeouts[timeout] = self._meters.timeouts.get(timeout, 0) + 1
        log.info("%s: http/2 client %s %s (timeout.%s)", self.listener.name, self.remote,
                 what, timeout)  # fmt: skip
