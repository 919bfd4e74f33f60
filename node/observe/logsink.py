"""Lines written off the event loop: the access log's buffer and its writer thread.

The event loop only appends a line to a list. A batch (``BATCH`` bytes, or whatever
waited ``flush_interval``) is handed to one writer thread, which does the ``write()``
calls: a slow disk or a pipe nobody reads blocks that thread, never the proxy. What
is buffered and unwritten is bounded (``max_pending``): past it new lines are dropped
and counted (``dropped_full``), as are the lines of a batch the target refused
(``dropped_failed``: a full disk, a closed pipe). HAProxy drops log lines the same way
rather than wait for a log server.

The target is ``stderr`` or a file opened for appending (``O_APPEND``: each write lands
at the end, whoever else appends). ``reopen()`` makes the writer open the path again
before its next batch, for logrotate's move-then-signal. On stderr, which the node's
own log lines share, the writer holds the logging handlers' locks while it writes, so
lines of the two never interleave.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import select
import stat
import sys
import threading
import time

log = logging.getLogger("floatgate.runtime")

BATCH = 1 << 16  # bytes buffered before a batch is handed over without waiting
_ERROR_EVERY = 60.0  # seconds between two warnings about a failing target


class LogTargetError(Exception):
    """The log target cannot be opened (at start-up: the node does not start)."""


class LineSink:
    """One target's buffer and writer thread. ``add`` and ``flush`` belong to the event
    loop's thread; the counters are each written by one thread only."""

    def __init__(self, target: str, flush_interval: float, max_pending: int) -> None:
        self.target = target
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.written = 0  # lines written (writer thread)
        self.dropped_failed = 0  # lines the target refused (writer thread)
        self.dropped_full = 0  # lines dropped because too much was pending (event loop)
        self.last_error: str | None = None
        self._lines: list[str] = []
        self._size = 0  # bytes (about: characters) in _lines
        self._handed = 0  # bytes handed to the writer (event loop)
        self._done = 0  # bytes of those written or dropped (writer thread)
        self._batches: collections.deque[tuple[bytes, int]] = collections.deque()
        self._wake = threading.Condition()
        self._closing = False  # the writer stops once the queue is empty
        self._closed = False  # the event loop's side: no more lines
        self._cut = False  # a partial write ended inside a line: start the next on a new one
        self._reopen = False
        self._fd: int | None = None
        self._warned_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def open_now(self) -> None:
        """Open a file target at once (start-up: an unusable path is an error before
        the node serves). Raises OSError."""
        if self.target == "stderr":
            return
        try:
            os.close(_open_append(self.target, os.O_NONBLOCK))
        except OSError as exc:
            # A FIFO nobody reads yet is fine; a socket (ENXIO too) cannot be opened
            if exc.errno != errno.ENXIO or not stat.S_ISFIFO(os.stat(self.target).st_mode):
                raise

    # -- the event loop's side ------------------------------------------------------

    def add(self, line: str) -> None:
        """Buffer one line (with its newline)."""
        if self._closed or self._size + self._handed - self._done >= self.max_pending:
            self.dropped_full += 1
            return
        self._lines.append(line)
        self._size += len(line)
        if self._size >= BATCH:
            self.flush()
        elif self._timer is None:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._timer = self._loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        """Hand what is buffered to the writer thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "replace")
        count = len(self._lines)
        self._lines = []
        self._size = 0
        self._handed += len(data)
        with self._wake:
            self._batches.append((data, count))
            self._wake.notify()

    def reopen(self) -> None:
        """Open the file again before the next batch (it was moved by logrotate)."""
        self._reopen = True
        with self._wake:
            self._wake.notify()

    def close(self) -> None:
        """Flush and tell the writer to stop once the queue is written (on the loop);
        lines added later are counted as dropped. ``wait`` for the writer."""
        self.flush()
        self._closed = True
        with self._wake:
            self._closing = True
            self._wake.notify()

    def wait(self, timeout: float) -> bool:
        """Wait (in any thread) up to ``timeout`` seconds for the writer to finish;
        False when it did not (a target that blocks): what it still holds is lost, and
        logged as such (the process is ending)."""
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        with self._wake:
            queued = sum(count for _, count in self._batches)
        log.warning("access log: %s did not take the last lines within %gs; %d queued "
                    "lines and the batch being written are lost", self.target, timeout,
                    queued)  # fmt: skip
        return False

    # -- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._batches and not self._closing:
                    self._wake.wait()
                if not self._batches:
                    break
                data, count = self._batches.popleft()
            try:
                if self._cut:
                    self._write(b"\n")
                    self._cut = False
                self._write(data)
                self.written += count
            except _Partial as partial:
                done = partial.done
                lost = data.count(b"\n", done)
                self.written += count - lost
                self.dropped_failed += lost
                if done > 0:  # (done == 0: the batch, or the newline before it, failed)
                    self._cut = data[done - 1 : done] != b"\n"
                self._failed(partial.error)
            finally:
                self._done += len(data)
        if self._fd is not None and self.target != "stderr":
            os.close(self._fd)

    def _write(self, data: bytes) -> int:
        """Write all of ``data``; raises _Partial with how much was written."""
        if self.target == "stderr":
            return self._write_stderr(data)
        try:
            if self._reopen and self._fd is not None:
                self._reopen = False
                os.close(self._fd)
                self._fd = None
            if self._fd is None:
                self._fd = _open_append(self.target)
        except OSError as exc:
            raise _Partial(0, exc) from exc
        return _write_all(self._fd, data)

    def _write_stderr(self, data: bytes) -> int:
        """In pieces of whole lines of at most PIPE_BUF bytes (a pipe write that size
        is atomic), each under the locks of the logging handlers that write there. The
        locks are taken only once the descriptor can take the piece (poll), so a
        journal that stopped reading blocks this thread, not the node's own logging."""
        handlers = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.__stderr__)
        ]
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        waiter = select.poll()
        waiter.register(fd, select.POLLOUT)
        start = 0
        while start < len(data):
            end = start + select_piece(data, start, 4096)
            waiter.poll()  # POLLERR/POLLHUP wake it too: the write then fails
            for handler in handlers:
                handler.acquire()
            try:
                _write_all(fd, data[start:end])
            except _Partial as partial:
                raise _Partial(start + partial.done, partial.error) from partial.error
            finally:
                for handler in reversed(handlers):
                    handler.release()
            start = end
        return start

    def _failed(self, exc: OSError) -> None:
        self.last_error = f"{self.target}: {exc.strerror or exc}"
        if self._fd is not None and self.target != "stderr":
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None  # opened again for the next batch
        now = time.monotonic()
        if now - self._warned_at >= _ERROR_EVERY:
            self._warned_at = now
            log.warning("access log: cannot write %s; dropping lines until it works "
                        "(counted in floatgate_access_log_dropped)", self.last_error)  # fmt: skip


def select_piece(data: bytes, start: int, limit: int) -> int:
    """The length of the next piece of ``data`` from ``start``: whole lines of at most
    ``limit`` bytes (a longer line is a piece of its own)."""
    if len(data) - start <= limit:
        return len(data) - start
    cut = data.rfind(b"\n", start, start + limit)
    if cut >= 0:
        return cut + 1 - start
    end = data.find(b"\n", start + limit)
    return (end + 1 if end >= 0 else len(data)) - start


def _open_append(path: str, extra: int = 0) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | extra, 0o640)


class _Partial(Exception):
    """A write failed after ``done`` bytes of the batch were written."""

    def __init__(self, done: int, error: OSError) -> None:
        super().__init__(done, error)
        self.done = done
        self.error = error


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, view[done:])
        except OSError as exc:
            raise _Partial(done, exc) from exc
    return done
