"""A TCP relay on loopback in front of one etcd member, with the two faults a node sees
when a member goes away: ``refuse`` (the member died: connections reset, new ones
refused) and ``blackhole`` (the member is cut off: nothing arrives any more, in either
direction, and connections stay open until a timeout ends them). Without root: the
lab's ``ip route add blackhole`` does the same for a namespace."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time


class FaultLine:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode = "pass"  # pass | refuse | blackhole
        self.last_passed = float("-inf")  # when bytes last went through (either way)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def refuse(self) -> None:
        """Reset every open connection and every new one, as a dead member's host does."""
        self.mode = "refuse"
        for pair in list(self._pairs):
            for writer in pair:
                _reset(writer)
        self._pairs.clear()

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def restore(self) -> None:
        """Back to passing bytes on new connections; blackholed ones stay silent (their
        peer gave up on them or will)."""
        self.mode = "pass"
        for pair in list(self._pairs):
            for writer in pair:
                _reset(writer)
        self._pairs.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            _reset(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            self._tasks.discard(task)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.close()
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            if self.mode == "blackhole":
                continue  # dropped on the floor, like packets to a blackhole route
            self.last_passed = time.monotonic()
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0): the connection is gone at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
