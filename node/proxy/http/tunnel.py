"""Upgrade tunnel (WebSocket): forward the upgrade request, relay the server's answer,
and after a 101 relay raw bytes both ways until either side ends. Frames are not
re-encoded, so subprotocols and extensions (permessage-deflate) pass untouched, as in
HAProxy's tunnel mode."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from node.config.model import HostPort, Timeouts
from node.proxy.errors import BadResponse, ServerTimeout
from node.proxy.upstream.connect import open_server_stream
from node.tls.material import BackendTlsRuntime

if TYPE_CHECKING:
    from node.proxy.http.connection import ClientConnection

_HIGH_WATER = 1 << 20


class Tunnel:
    """Relays bytes between a client connection and a server stream."""

    def __init__(
        self,
        client: ClientConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.client = client
        self.reader = reader
        self.writer = writer
        self.done = asyncio.get_running_loop().create_future()

    def from_client(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > _HIGH_WATER:
            transport = self.client.transport
            if transport is not None:
                transport.pause_reading()
            asyncio.get_running_loop().create_task(self._resume_client())

    async def _resume_client(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        transport = self.client.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def client_eof(self) -> None:
        if not self.writer.is_closing() and self.writer.can_write_eof():
            self.writer.write_eof()

    def client_closed(self) -> None:
        self.writer.close()
        if not self.done.done():
            self.done.set_result(None)

    async def server_to_client(self) -> int:
        sent = 0
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.client.write(data)
                self.client.last_write = time.monotonic()
                sent += len(data)
                await self.client.drain()
        except ConnectionError:
            pass
        return sent


async def open_tunnel(
    client: ClientConnection,
    address: HostPort,
    head: bytes,
    timeouts: Timeouts,
    tls: BackendTlsRuntime | None = None,
    preamble: bytes = b"",
) -> tuple[int, int]:
    """Run an upgrade exchange. Returns (status, bytes sent to the client); the client
    connection is finished (closed) when this returns. ConnectError: nothing was sent."""
    reader, writer = await open_server_stream(address, timeouts.connect, tls, preamble)
    try:
        # Nothing follows the upgrade request until the server agrees (101): bytes the
        # client sent behind it are held, and dropped if the server refuses.
        writer.write(head)
        try:
            async with asyncio.timeout(timeouts.server):
                response_head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError as exc:
            raise ServerTimeout("no answer to the upgrade request") from exc
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            raise BadResponse(f"invalid answer to the upgrade request: {exc!r}") from exc
        parts = response_head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise BadResponse("invalid status line in the upgrade answer")
        status = int(parts[1])
        client.write(response_head)
        if status != 101:  # refused: relay the answer's body (if it declares one) and end
            client.upgrade_tail.clear()  # not a tunnel: what followed is never forwarded
            length = _content_length(response_head)
            body = b""
            if length:
                with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError):
                    async with asyncio.timeout(timeouts.server):
                        body = await reader.readexactly(length)
                client.write(body)
            return status, len(response_head) + len(body)
        tunnel = Tunnel(client, reader, writer)
        client.tunnel = tunnel
        if client.upgrade_tail:  # bytes that arrived while we waited for the answer
            tunnel.from_client(bytes(client.upgrade_tail))
            client.upgrade_tail.clear()
        if client.transport is not None and not client.transport.is_closing():
            client.transport.resume_reading()  # paused if the held bytes grew too many
        relay = asyncio.ensure_future(tunnel.server_to_client())
        await asyncio.wait({relay, tunnel.done}, return_when=asyncio.FIRST_COMPLETED)
        sent = relay.result() if relay.done() else 0
        relay.cancel()
        return status, len(response_head) + sent
    finally:
        writer.close()
        client.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    return 0
