"""One HTTP/2 client connection (RFC 9113), framed by the h2 library.

Each stream is served by the HTTP/1.1 request path (node.proxy.http.handler) through an
Http2Stream (node.proxy.http.h2.stream), which looks to that path like a client: the
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
import contextlib
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
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from hyperframe.frame import GoAwayFrame

from node.config.model import Http2Settings
from node.proxy.errors import ClientTimeout
from node.proxy.http.h2.guard import GlitchBudget
from node.proxy.http.h2.request import MalformedRequest, RequestTooLarge, to_request
from node.proxy.http.h2.response import Fields
from node.proxy.http.h2.stream import SEND_LOW, BodyWindow, Http2Stream
from node.proxy.http.peer import TlsFacts, client_address, keep_session, local_address
from node.proxy.session import Host, Phase
from node.tls.peer import ClientIdentity

if TYPE_CHECKING:
    from node.observe.metrics import FrontendMeters

log = logging.getLogger("floatgate.listener")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_BODY_BUFFER = 1 << 16  # a stream's reader acknowledges DATA up to twice this
_SEND_HIGH = 1 << 18  # DATA queued for the socket per turn of the loop, at most
_CONNECTION_WINDOW = 1 << 20  # the connection-level receive window, at least
_MAX_WINDOW = (1 << 31) - 1
_ENCODER_TABLE = 4096  # the HPACK table for responses, whatever the client allows
_MAX_WRITE_BUFFER = 4 << 20  # unsent bytes to a client that does not read: cut
_LINGER = 1.0  # seconds a connection closed on a deadline may take to flush, then cut


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
        # Set as local_settings, these are sent but not applied to the decoder (h2 does
        # that when a change is acknowledged): applied here. A table smaller than the
        # default applies once the client acknowledged it (its first requests may use
        # the default table: SettingsAcknowledged below).
        self.h2.decoder.max_header_list_size = settings.max_header_list_size
        self.h2.decoder.max_allowed_table_size = max(settings.header_table_size, 4096)
        self._priority_in_headers: object = None  # RequestReceived.priority_updated
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Http2Stream] = {}
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
        self._queued = 0  # DATA bytes given to h2 since the last socket write
        self._capped = False  # a flush stopped at _SEND_HIGH: go on after the write
        self._turn = 0  # where the last flush of every stream started
        self._graceful = False  # closed without an error: the last answers are sent whole
        self._linger_left = -1  # the write buffer's size at the last linger check
        self._linger_since = 0.0  # when it last shrank

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = client_address(transport, self.proxied)
        self.remote = self.peer[0] or None
        self.ssl_object = transport.get_extra_info("ssl_object")
        self.listener.connections.add(self)
        self.h2.initiate_connection()
        # Room for every stream's window at once (each stream's buffer is bounded by
        # its own window and reader), so that paused uploads never starve the others.
        streams = self.settings.max_concurrent_streams * self.settings.initial_window_size
        grow = min(_MAX_WINDOW, max(_CONNECTION_WINDOW, streams))
        grow -= self.h2.inbound_flow_control_window
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
            self._shutdown(ConnectionResetError("protocol error"))
            return
        now = time.monotonic()
        for event in events:
            self._event(event, now)
            if self.transport is None or self.ended_at is not None:
                return
        self._write_soon()  # acknowledgements, SETTINGS and PING answers

    def eof_received(self) -> bool:
        return False  # the client half-closed: HTTP/2 has no half-open connections

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.write_paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.write_paused_since = None
        self.flush()  # the DATA held while the socket was full
        for stream in list(self.streams.values()):
            stream.wake()

    # -- events -----------------------------------------------------------------------

    def _event(self, event: h2.events.Event, now: float) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event, now)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event, now)
        elif isinstance(event, h2.events.StreamEnded | h2.events.TrailersReceived):
            if isinstance(event, h2.events.TrailersReceived):
                self._priority_in_headers = event.priority_updated
            stream = self.streams.get(event.stream_id or 0)  # (trailers are not forwarded)
            if stream is not None and stream.payload is not EMPTY_PAYLOAD:
                self._body_ended(stream)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                if not stream.end_sent:  # reset before its answer: Rapid Reset's pattern
                    self._glitch(now, "streams reset before their answer")
                self._stream_gone(stream, ConnectionResetError("the client reset the stream"))
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:  # one stream's window; 0: the connection's
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    self.flush(stream)
            else:
                self.flush()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            table = event.changed_settings.get(h2.settings.SettingCodes.HEADER_TABLE_SIZE)
            if table is not None:  # (h2 takes the client's value, up to 2**32)
                self.h2.encoder.header_table_size = min(table.new_value, _ENCODER_TABLE)
            self._glitch(now, "SETTINGS frames")
            self.flush()  # the initial window may have changed
        elif isinstance(event, h2.events.SettingsAcknowledged):
            self.h2.decoder.max_allowed_table_size = self.settings.header_table_size
        elif isinstance(event, h2.events.PingReceived):
            self._glitch(now, "PING frames")
        elif isinstance(event, h2.events.PriorityUpdated):
            if event is not self._priority_in_headers:  # a PRIORITY frame of its own
                self._glitch(now, "PRIORITY frames")
        elif isinstance(event, h2.events.ConnectionTerminated):
            # The client's GOAWAY: it leaves (h2 sends nothing after it).
            log.debug("%s: http/2 client %s sent GOAWAY (%s)", self.listener.name,
                      self.remote, event.error_code)  # fmt: skip
            self._shutdown(ConnectionResetError("the client went away"))

    def _request(self, event: h2.events.RequestReceived, now: float) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        self._priority_in_headers = event.priority_updated
        self.last_stream_id = max(self.last_stream_id, stream_id)
        self.opened += 1
        if self.goaway_id is not None and stream_id > self.goaway_id:
            self._reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        end_stream = event.stream_ended is not None
        frontend = self.listener.handler.route.frontend
        try:
            message = to_request(event.headers or [], end_stream, frontend.max_uri_length,
                                 frontend.max_header_size)  # fmt: skip
        except RequestTooLarge as exc:
            self._meters.request_errors += 1
            self._meters.requests["4xx"] += 1
            self._glitch(now, "requests over the limits")
            log.info("%s: rejected http/2 request from %s: %s", self.listener.name,
                     self.remote, exc)  # fmt: skip
            method = dict(event.headers or []).get(b":method", b"").decode("latin-1")
            self._answer_at_once(Http2Stream(self, stream_id, now, method), end_stream,
                                 exc.status, str(exc))  # fmt: skip
            return
        except MalformedRequest as exc:
            self._meters.request_errors += 1
            self._glitch(now, "malformed requests")
            log.info("%s: rejected http/2 request from %s: %s", self.listener.name,
                     self.remote, exc)  # fmt: skip
            self._reset(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        stream = Http2Stream(self, stream_id, now, message.method)
        if not end_stream:
            stream.window = BodyWindow(self.loop, stream)
            stream.payload = StreamReader(stream.window, _BODY_BUFFER, loop=self.loop)
            length = message.headers.get("Content-Length")
            stream.expected = int(length) if length is not None and length.isdigit() else None
        self.streams[stream_id] = stream
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
        if stream is not None:
            stream.received += len(data)
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
        last = self.goaway_id if self.goaway_id is not None else self.last_stream_id
        with contextlib.suppress(h2.exceptions.ProtocolError):  # h2 closed it already
            self.h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, last_stream_id=last)
        self._shutdown(ConnectionResetError("connection closed for abuse"))

    def _shutdown(self, exc: Exception) -> None:
        """End the connection after a GOAWAY has been queued: every stream is dropped
        (its request-path task cancelled), the GOAWAY is sent, the connection closes."""
        for stream in list(self.streams.values()):
            self._stream_gone(stream, exc, give_back=False)  # (no frames after GOAWAY)
        self._write()
        self._end(time.monotonic())

    def _body_ended(self, stream: Http2Stream) -> None:
        """The request body is complete: as long as its content-length said (h2 checks
        that only on DATA that ends the stream, not when trailers end it)."""
        failed = stream.payload.exception() is not None  # (a body timeout: answered already)
        if not failed and stream.expected is not None and stream.received != stream.expected:
            self._meters.request_errors += 1
            log.info("%s: http/2 client %s sent %d body bytes for a content-length of %d",
                     self.listener.name, self.remote, stream.received, stream.expected)  # fmt: skip
            self.reset_stream(stream, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        stream.payload.feed_eof()

    def _answer_at_once(
        self, stream: Http2Stream, request_ended: bool, status: int, text: str
    ) -> None:
        """A short plain-text answer from here (the request goes nowhere), sent as any
        response is (within the client's windows); a body still to come is refused
        once it is sent (RST_STREAM NO_ERROR)."""
        if self.ended_at is not None:
            return  # the glitch just spent closed the connection
        body = f"{text}\n".encode()
        head = [(b":status", b"%d" % status), (b"content-type", b"text/plain"),
                (b"content-length", b"%d" % len(body))]  # fmt: skip
        stream.unread_body = not request_ended
        self.streams[stream.stream_id] = stream
        if stream.method == "HEAD":
            self.send_head(stream, head, end_stream=True)
        else:
            self.send_head(stream, head, end_stream=False)
            stream.pending += body
            stream.ended = True
            self.flush(stream)
        self._write_soon()

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
        if stream is not None:
            streams = [stream]
        else:  # each flush starts with another stream: none waits behind the others
            streams = list(self.streams.values())
            self._turn = start = (self._turn + 1) % max(1, len(streams))
            streams = streams[start:] + streams[:start]
        for each in streams:
            if not each.reset and not each.end_sent and (each.pending or each.ended):
                self._send_body(each, now)
        self._write_soon()

    def _send_body(self, stream: Http2Stream, now: float) -> None:
        sid, pending = stream.stream_id, stream.pending
        sent = capped = False
        try:
            while pending:
                if not self._room():
                    self._capped = capped = True  # the rest after the write or resume
                    break
                window = self.h2.local_flow_control_window(sid)
                size = min(len(pending), window, self.h2.max_outbound_frame_size)
                if size <= 0:
                    break
                last = stream.ended and size == len(pending)
                self.h2.send_data(sid, bytes(pending[:size]), end_stream=last)
                del pending[:size]
                self._queued += size
                sent = True
                if last:
                    stream.end_sent = True
            if stream.ended and not pending and not stream.end_sent:
                self.h2.end_stream(sid)
                stream.end_sent = True
        except h2.exceptions.StreamClosedError:
            stream.reset = True
        # timeout.client counts from the client's last progress, not the first wait
        if not pending or capped:  # (waiting for the socket is timed for the connection)
            stream.blocked_since = None
        elif sent or stream.blocked_since is None:
            stream.blocked_since = now
        if len(pending) < SEND_LOW:
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
        stream.wake()
        if not stream.reset:
            self.served += 1
            if stream.unread_body or not stream.payload.is_eof():
                # Answered before the whole request arrived: the rest is not wanted.
                self._reset(stream.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        self._give_back(stream)
        if not self.streams:
            self.since = time.monotonic()
            if self._closing:
                self.close()

    def _stream_gone(self, stream: Http2Stream, exc: Exception, give_back: bool = True) -> None:
        stream.reset = True
        payload = stream.payload
        if payload is not EMPTY_PAYLOAD and not payload.is_eof():
            payload.set_exception(exc)
        if stream.task is not None:
            stream.task.cancel()  # nobody is left to answer (a queued one leaves the queue)
        stream.wake()
        if self.streams.pop(stream.stream_id, None) is not None and give_back:
            self._give_back(stream)
        if not self.streams:
            self.since = time.monotonic()
            if self._closing:
                self.close()

    def _give_back(self, stream: Http2Stream) -> None:
        """Body bytes held back from a stream that is over: the connection's window
        gets them back (else every upload that ended early would shrink it for good)."""
        window = stream.window
        if window is not None and window.held:
            held, window.held = window.held, 0
            self.acknowledge(stream.stream_id, held)

    def reset_stream(self, stream: Http2Stream, code: h2.errors.ErrorCodes) -> None:
        if not stream.reset:
            self._reset(stream.stream_id, code)
        self._stream_gone(stream, ConnectionResetError("stream reset"))

    def _reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        try:
            self.h2.reset_stream(stream_id, error_code=code)
        except h2.exceptions.ProtocolError:
            return  # the stream (or the whole connection) is closed already
        self._write_soon()

    def acknowledge(self, stream_id: int, length: int) -> None:
        if length <= 0:
            return
        try:  # (for a closed stream, h2 reopens the connection's window only)
            self.h2.acknowledge_received_data(length, stream_id)
        except h2.exceptions.ProtocolError:
            return  # the connection is closed
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
        if self._capped and not self.writing_paused:
            self._capped = False
            self.flush()  # what did not fit in the last turn

    def _room(self) -> bool:
        """May more DATA be queued now? Not while the transport is paused (its buffer
        past the high-water mark: resume_writing goes on), nor past _SEND_HIGH in one
        turn: response bodies wait for the client to read instead of piling up. (Not
        the buffer's size either: a TLS transport pauses only at 512 KiB, and a flush
        that stopped below that would start again at every turn of the loop.)"""
        return not self.writing_paused and self._queued < _SEND_HIGH

    def _write(self) -> None:
        data = self.h2.data_to_send()
        self._queued = 0
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
        if self.ended_at is None:
            self._end(time.monotonic(), graceful=True)  # what crosses the GOAWAY is read

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
            return  # closing: _linger cuts it
        paused = self.write_paused_since
        if paused is not None and now - paused >= timeouts.client:
            self._expired("client", "stopped reading its responses")
            self.abort()
            return
        if not self.streams:
            limit = timeouts.keep_alive if self.served else timeouts.request_headers
            if now - self.since >= limit:
                self.close()  # nothing asked: GOAWAY and close quietly
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

    def _end(self, now: float, graceful: bool = False) -> None:
        """Close after GOAWAY: a plain connection sends its FIN and reads (discarding)
        until the client closes or _LINGER passes, so that the client reads the GOAWAY
        instead of a reset for the bytes it was still sending."""
        self.ended_at = now
        self._graceful = graceful
        transport = self.transport
        if transport is None:
            return
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()  # TLS: close_notify once the buffer is sent
        self.loop.call_later(_LINGER, self._linger)  # also while no sweeper runs (drain)

    def _linger(self) -> None:
        """Cut a connection closed _LINGER ago; after a graceful close, not while what is
        left of its last answers still leaves the buffer (the client still reading),
        up to timeout.client without progress."""
        transport = self.transport
        if transport is None:
            return
        now = time.monotonic()
        left = transport.get_write_buffer_size()
        if self._graceful and left:
            if left != self._linger_left:
                self._linger_left, self._linger_since = left, now
            limit = self.listener.handler.route.frontend.timeouts.client
            if now - self._linger_since < limit:
                self.loop.call_later(_LINGER, self._linger)
                return
        transport.abort()

    def _expired(self, timeout: str, what: str) -> None:
        self._meters.timeouts[timeout] = self._meters.timeouts.get(timeout, 0) + 1
        log.info("%s: http/2 client %s %s (timeout.%s)", self.listener.name, self.remote,
                 what, timeout)  # fmt: skip
