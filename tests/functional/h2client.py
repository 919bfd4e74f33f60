"""A frame-level HTTP/2 test client: the h2 library over a real (TLS or plain) socket,
with helpers to send requests, raw frames and read what the server answered."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, SettingsFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Answer:
    """What one stream received."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


async def _open(
    port: int, context: ssl.SSLContext | None, server_name: str, rcvbuf: int | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to 127.0.0.1:port (TLS with ``context``); ``rcvbuf``: a small
    receive buffer, so that what the client does not read stays with the server."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(
        sock=sock, ssl=context, server_hostname=server_name if context else None
    )


class H2Client:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        validate: bool = True,
        window: int | None = None,
        auto_window: bool = True,
    ) -> None:
        self.reader, self.writer = reader, writer
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
            validate_inbound_headers=True,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.answers: dict[int, Answer] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.remote_settings: dict[int, int] = {}
        self.closed = False
        self.auto_window = auto_window
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()

    @classmethod
    async def connect(
        cls,
        port: int,
        context: ssl.SSLContext | None = None,
        server_name: str = "app.test",
        rcvbuf: int | None = None,
        **options: Any,
    ) -> H2Client:
        if context is not None:
            context.set_alpn_protocols(["h2"])
        reader, writer = await _open(port, context, server_name, rcvbuf)
        if context is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.selected_alpn_protocol() == "h2", "the server did not pick h2"
        return cls(reader, writer, **options)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        authority: str = "app.test",
        scheme: str = "https",
        extra: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        end: bool = True,
    ) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", scheme.encode()),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *(extra or []),
        ]
        self.answers[stream_id] = Answer()
        self.h2.send_headers(stream_id, headers, end_stream=end and body is None)
        if body is not None:
            self.h2.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    async def read_events(self, timeout: float = 5.0) -> list[h2.events.Event]:
        """One read from the socket; the events it brought (empty at EOF)."""
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            self.closed = True
            return []
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return []
        for event in events:
            self._note(event)
        self.flush()
        return events

    def _note(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        answer = self.answers.setdefault(sid, Answer()) if sid else None
        if isinstance(event, h2.events.ResponseReceived) and answer is not None:
            answer.headers = list(event.headers or [])
            answer.status = int(dict(answer.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived) and answer is not None:
            answer.body += event.data or b""
            if self.auto_window and event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, h2.events.StreamEnded) and answer is not None:
            answer.ended = True
        elif isinstance(event, h2.events.StreamReset) and answer is not None:
            answer.reset = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.remote_settings[int(code)] = change.new_value

    async def until(self, done: Any, timeout: float = 10.0) -> None:
        """Read until ``done()`` holds (or the connection closes)."""
        async with asyncio.timeout(timeout):
            while not done() and not self.closed:
                await self.read_events(timeout)

    async def answer(self, stream_id: int, timeout: float = 10.0) -> Answer:
        answer = self.answers[stream_id]
        await self.until(lambda: answer.ended or answer.reset is not None, timeout)
        return answer

    async def get(self, path: str = "/", **kwargs: Any) -> Answer:
        return await self.answer(self.request(path, **kwargs))

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


def blocking_get(sock: socket.socket, path: str, authority: str = "app.test") -> Answer:
    """One GET over an already negotiated blocking socket (for TLS session tests)."""
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    headers = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority.encode()),
               (b":path", path.encode())]  # fmt: skip
    conn.send_headers(1, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    answer = Answer()
    while not answer.ended and answer.reset is None:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                answer.headers = list(event.headers or [])
                answer.status = int(dict(answer.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                answer.body += event.data or b""
            elif isinstance(event, h2.events.StreamEnded):
                answer.ended = True
            elif isinstance(event, h2.events.StreamReset):
                answer.reset = int(event.error_code or 0)
        sock.sendall(conn.data_to_send())
    return answer


class RawH2:
    """Frames written and read by hand (hyperframe, hpack): for what a well-behaved
    client library refuses to send, and for reading past a GOAWAY."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = hpack.Encoder()
        self.received: list[Frame] = []
        self.closed = False
        self.reset = False  # the connection ended in a TCP reset

    @classmethod
    async def connect(cls, port: int, context: ssl.SSLContext | None = None,
                      preface: bool = True, rcvbuf: int | None = None) -> RawH2:  # fmt: skip
        if context is not None:
            context.set_alpn_protocols(["h2"])
        reader, writer = await _open(port, context, "app.test", rcvbuf)
        raw = cls(reader, writer)
        if preface:
            raw.send(PREFACE + SettingsFrame(0).serialize())
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def headers_block(self, path: str = "/", method: str = "GET", scheme: str = "http",
                      extra: list[tuple[bytes, bytes]] | None = None) -> bytes:  # fmt: skip
        fields = [
            (b":method", method.encode()),
            (b":scheme", scheme.encode()),
            (b":authority", b"app.test"),
            (b":path", path.encode()),
            *(extra or []),
        ]
        return bytes(self.encoder.encode(fields))

    def headers(self, stream_id: int, end_stream: bool = True, **kwargs: Any) -> bytes:
        frame = HeadersFrame(stream_id, self.headers_block(**kwargs))
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        return bytes(frame.serialize())

    async def next_frame(self, timeout: float = 5.0) -> Frame | None:
        """The next frame from the server (None at EOF)."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(9), timeout)
        except asyncio.IncompleteReadError:
            self.closed = True
            return None
        except ConnectionError:
            self.closed = self.reset = True
            return None
        frame, length = Frame.parse_frame_header(memoryview(head))
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        frame.parse_body(memoryview(body))
        self.received.append(frame)
        return frame

    async def until(self, wanted: Any, timeout: float = 10.0) -> Frame | None:
        """Read until a frame with ``wanted(frame)`` arrives (None: closed first)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next_frame(timeout)
                if frame is None or wanted(frame):
                    return frame

    async def read_to_end(self, timeout: float = 10.0) -> list[Frame]:
        """Everything until the server closes the connection."""
        async with asyncio.timeout(timeout):
            while await self.next_frame(timeout) is not None:
                pass
        return self.received

    def goaway(self) -> GoAwayFrame | None:
        return next((f for f in self.received if isinstance(f, GoAwayFrame)), None)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
