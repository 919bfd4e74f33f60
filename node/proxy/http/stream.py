"""Reading an aiohttp StreamReader piece by piece without missing its failure.

aiohttp's ``readany()`` (and ``iter_any()``) waits in a loop that does not look at the
reader's exception again when it wakes: the end of an HTTP chunk wakes the reader with
no new data, and when a parse error later in the same segment then sets the exception
(the waiter already taken), ``readany`` waits once more, for data that never comes. A
chunked request cut by a malformed chunk-size line stalled that way, part-forwarded,
holding its server connection. ``readchunk()`` checks the exception each time it wakes,
so ``pieces`` is built on it; tests/unit/test_stream.py pins both behaviours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp.streams import StreamReader


async def pieces(content: StreamReader) -> AsyncIterator[bytes]:
    """The data as it arrives (an HTTP chunk, or what one read delivered, at a time),
    until the end; raises the reader's exception as soon as it is set."""
    while True:
        data, end_of_chunk = await content.readchunk()
        if data:
            yield data
        elif not end_of_chunk or content.at_eof():  # the end of the data
            # ((b"", False) on a StreamReader; aiohttp's EmptyStreamReader answers
            # (b"", True) forever without waiting, so its end is told by at_eof())
            return


async def first_piece(content: StreamReader) -> bytes:
    """The first piece, or b"" at the end; raises the reader's exception."""
    while True:
        data, end_of_chunk = await content.readchunk()
        if data or not end_of_chunk or content.at_eof():
            return data
