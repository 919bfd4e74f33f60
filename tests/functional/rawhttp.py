"""Exact-bytes HTTP client and a recording raw-TCP backend, for framing tests."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the proxy closed the connection after this response
    raw: bytes
    elapsed: float  # seconds until the response head arrived


async def raw_exchange(
    port: int, data: bytes, timeout: float = 5.0, head_request: bool = False
) -> RawReply:
    """Send bytes, read one response (Content-Length or until close; none for HEAD)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(data)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        elapsed = time.monotonic() - started
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if head_request:
            body = b""
        elif "content-length" in headers:
            body = await asyncio.wait_for(
                reader.readexactly(int(headers["content-length"])), timeout
            )
        else:
            body = await asyncio.wait_for(reader.read(1 << 20), timeout)
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.5) == b""
        except TimeoutError:
            closed = False
        return RawReply(status, headers, body, closed, head + body, elapsed)
    finally:
        writer.close()


@dataclass
class RecordingBackend:
    """A raw TCP server that records every connection's bytes and answers each request
    head it sees with a small 200 response."""

    connections: list[bytearray] = field(default_factory=list)
    closed: list[bool] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.connections)
        self.connections.append(bytearray())
        self.closed.append(False)
        buffer = bytearray()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self.connections[index] += data
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
                    buffer = bytearray(rest)
                    body = b"" if head.startswith(b"HEAD ") else b"ok"
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
        except ConnectionError:
            pass
        finally:
            self.closed[index] = True
            writer.close()

    @property
    def received(self) -> bytes:
        return b"".join(self.connections)

    def request_count(self) -> int:
        return sum(bytes(c).count(b" HTTP/1.") for c in self.connections)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
