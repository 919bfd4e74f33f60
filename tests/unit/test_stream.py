"""node.proxy.http.stream against aiohttp's real StreamReader: the failure that
aiohttp's readany() misses (an exception set after a chunk end already took the
waiter) is raised by pieces()."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from node.proxy.http.stream import first_piece, pieces

_opened: list[tuple[BaseProtocol, socket.socket]] = []


@pytest.fixture(autouse=True)
async def _close_sockets() -> AsyncIterator[None]:
    yield
    while _opened:
        protocol, theirs = _opened.pop()
        if protocol.transport is not None:
            protocol.transport.close()
        theirs.close()
    await asyncio.sleep(0)  # the transports' connection_lost


async def _reader(chunked: bool = True) -> StreamReader:
    """A StreamReader on a connected protocol (a reader refuses to wait without one)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    _, protocol = await loop.create_connection(lambda: BaseProtocol(loop), sock=ours)
    reader = StreamReader(protocol, 2**16, loop=loop)
    reader.on_eof(theirs.close)
    _opened.append((protocol, theirs))
    if chunked:
        reader.begin_http_chunk_receiving()
    return reader


async def _collect(reader: StreamReader) -> list[bytes]:
    return [data async for data in pieces(reader)]


async def _chunk_end_then_error(reader: StreamReader, read: Awaitable[object]) -> object:
    """What the parser does with b"\r\n1 ;x" after a chunk's data already read: it ends
    the chunk (waking the reader with no new data) and then, before the reader runs,
    fails the body."""
    task = asyncio.ensure_future(read)
    await asyncio.sleep(0.01)  # the reader now waits for more
    reader.end_http_chunk_receiving()
    reader.set_exception(BadHttpMessage("Invalid character in chunk size"))
    async with asyncio.timeout(2):
        return await task


async def test_aiohttp_readany_still_misses_the_error() -> None:
    """The aiohttp behaviour stream.py exists for. If this fails, aiohttp fixed it:
    pieces() may go back to iter_any() (which coalesces the chunks it has)."""
    reader = await _reader()
    reader.feed_data(b"hello")  # a chunk's data, its end not yet received
    assert await reader.readany() == b"hello"
    with pytest.raises(TimeoutError):
        await _chunk_end_then_error(reader, reader.readany())


async def test_pieces_raises_the_error_after_a_chunk_end() -> None:
    reader = await _reader()
    reader.feed_data(b"hello")
    got: list[bytes] = []

    async def collect() -> None:
        async for data in pieces(reader):
            got.append(data)

    with pytest.raises(BadHttpMessage, match="chunk size"):
        await _chunk_end_then_error(reader, collect())
    assert got == [b"hello"]


async def test_pieces_yields_every_chunk_then_ends() -> None:
    reader = await _reader()
    for data in (b"one", b"two", b""):
        if data:
            reader.feed_data(data)
        reader.end_http_chunk_receiving()
    reader.feed_eof()
    assert await _collect(reader) == [b"one", b"two"]


async def test_pieces_of_a_body_without_chunks() -> None:
    reader = await _reader(chunked=False)
    task = asyncio.ensure_future(_collect(reader))
    for data in (b"a" * 10, b"b" * 5):
        reader.feed_data(data)
        await asyncio.sleep(0)
    reader.feed_eof()
    assert b"".join(await task) == b"a" * 10 + b"b" * 5
    assert await first_piece(reader) == b""  # at the end


async def test_the_empty_payload_ends_at_once() -> None:
    """aiohttp's EmptyStreamReader (a shared singleton) answers readchunk() with
    (b"", True) forever once read: pieces() must end, not spin the loop."""
    for _ in range(2):  # the second time, the singleton has been read already
        async with asyncio.timeout(1):
            assert await _collect(EMPTY_PAYLOAD) == []
            assert await first_piece(EMPTY_PAYLOAD) == b""


async def test_first_piece_then_the_rest_at_the_end() -> None:
    """body.py's path: the first chunk, then, the body being complete, all the rest in
    one read: nothing lost, nothing twice."""
    reader = await _reader()
    for data in (b"one", b"two", b"three"):
        reader.feed_data(data)
        reader.end_http_chunk_receiving()
    reader.feed_eof()
    first = await first_piece(reader)
    assert first == b"one" and reader.is_eof()
    assert first + reader.read_nowait(-1) == b"onetwothree"
