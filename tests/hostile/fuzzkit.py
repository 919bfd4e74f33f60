"""The pieces of the HTTP request-path fuzzer (tests/hostile/test_fuzz.py).

- :class:`RecordingServer`: a thread-based raw TCP backend. Every connection's bytes go
  through a *strict* HTTP/1.1 request parser; each whole request is recorded and
  answered with a small 200, anything that is not a well-formed request is recorded as
  a violation (and the connection closed), a request cut short by a close as partial.
- :func:`parse_responses`: an equally strict parser for what the proxy sends a client.
- :func:`cases`: a Hypothesis strategy for raw request bytes (a grammar of mostly-valid
  HTTP/1.1 with the classic smuggling and framing traps, then raw byte mutations).
- :class:`FuzzTarget`: a real ``floatgate run`` process in front of a RecordingServer,
  and :meth:`FuzzTarget.check`, which runs one case and asserts the invariants.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.conftest import FloatgateProcess, cluster_yaml, free_port

CORPUS = Path(__file__).resolve().parent / "corpus"
# What the proxy answers when it refuses a request itself (nothing may be forwarded).
REFUSALS = frozenset({400, 408, 413, 414, 431, 501})
MAX_URI_LENGTH = 512
MAX_HEADER_SIZE = 2048
CLIENT_TIMEOUT = 1.0  # timeout.client of the frontend under test
STALL_LIMIT = 0.4  # the client has closed: a half-forwarded request must be cut by then

_TCHAR = rb"!#$%&'*+.^_`|~0-9A-Za-z-"
_REQUEST_LINE = re.compile(rb"([" + _TCHAR + rb"]+) ([\x21-\x7e]+) HTTP/1\.1")
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\t\x20-\x7e\x80-\xff]*")
_FIELD = re.compile(
    rb"([" + _TCHAR + rb"]+):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[ \t]*[\x21-\x7e\x80-\xff])*)?)[ \t]*"
)
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,15})")
_LEAKS = re.compile(
    rb"Traceback|File \"|\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b|\bline \d+, in\b"
)


class ProtocolViolation(Exception):
    """Bytes that are not (the start of) a well-formed HTTP/1.1 message."""


# -- strict HTTP/1.1 parsing -------------------------------------------------------------


def _fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields = []
    for line in lines:
        match = _FIELD.fullmatch(line)
        if match is None:
            raise ProtocolViolation(f"malformed header line {line[:80]!r}")
        fields.append((match[1].lower(), match[2]))
    return fields


def _head_lines(head: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")
    for line in lines:
        if b"\n" in line or b"\r" in line:
            raise ProtocolViolation(f"bare CR or LF in {line[:80]!r}")
    return lines


def _framing(fields: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """(Content-Length, chunked) of a message, refusing anything ambiguous."""
    lengths = [v for n, v in fields if n == b"content-length"]
    codings = [v for n, v in fields if n == b"transfer-encoding"]
    if len(lengths) > 1:
        raise ProtocolViolation(f"{len(lengths)} Content-Length fields")
    if lengths and codings:
        raise ProtocolViolation("both Content-Length and Transfer-Encoding")
    if codings:
        if len(codings) > 1 or codings[0].lower() != b"chunked":
            raise ProtocolViolation(f"Transfer-Encoding {b', '.join(codings)[:80]!r}")
        return None, True
    if lengths:
        if not lengths[0].isdigit() or len(lengths[0]) > 15:
            raise ProtocolViolation(f"Content-Length {lengths[0][:40]!r}")
        return int(lengths[0]), False
    return None, False


class _BodyReader:
    """Incremental body framing: Content-Length or strict chunked (trailers allowed)."""

    def __init__(self, length: int | None, chunked: bool) -> None:
        self.remaining = length or 0
        self.chunked = chunked
        self.state = "size" if chunked else ("data" if self.remaining else "done")
        self.body = bytearray()

    def feed(self, buf: bytearray) -> int:
        """Consume what it can of ``buf``; returns how many bytes it used."""
        used = 0
        while self.state != "done":
            rest = memoryview(buf)[used:]
            if self.state == "data":
                take = min(self.remaining, len(rest))
                self.body += rest[:take]
                self.remaining -= take
                used += take
                if self.remaining:
                    return used
                self.state = "crlf" if self.chunked else "done"
                continue
            if self.state == "crlf":
                if len(rest) < 2:
                    if rest and rest[0:1] != b"\r":
                        raise ProtocolViolation("chunk data not followed by CRLF")
                    return used
                if bytes(rest[:2]) != b"\r\n":
                    raise ProtocolViolation("chunk data not followed by CRLF")
                used += 2
                self.state = "size"
                continue
            end = bytes(rest).find(b"\r\n")
            if end < 0:
                if b"\n" in rest or len(rest) > 4096:
                    raise ProtocolViolation(f"malformed chunk line {bytes(rest[:60])!r}")
                return used
            line = bytes(rest[:end])
            used += end + 2
            if self.state == "size":
                if _CHUNK_SIZE.fullmatch(line) is None:
                    raise ProtocolViolation(f"malformed chunk size {line[:60]!r}")
                self.remaining = int(line, 16)
                self.state = "data" if self.remaining else "trailer"
            elif line:  # a trailer field
                _fields([line])
            else:
                self.state = "done"
        return used


@dataclass
class Forwarded:
    """One whole request as a backend connection received it."""

    connection: int
    method: bytes
    target: bytes
    fields: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    answer: int = 0  # the X-Recorded value the backend answered it with


class StrictRequestParser:
    """Splits one connection's byte stream into whole, well-formed HTTP/1.1 requests."""

    def __init__(self, connection: int) -> None:
        self.connection = connection
        self.buf = bytearray()
        self.head: tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes] | None = None
        self.body: _BodyReader | None = None
        self.start = 0  # offset of the current request in raw
        self.raw = bytearray()

    @property
    def pending(self) -> bool:
        return bool(self.buf) or self.head is not None

    def feed(self, data: bytes) -> list[Forwarded]:
        self.raw += data
        self.buf += data
        done: list[Forwarded] = []
        while True:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if re.search(rb"(?<!\r)\n", self.buf) or len(self.buf) > 1 << 16:
                        raise ProtocolViolation(f"malformed request head {bytes(self.buf[:80])!r}")
                    return done
                lines = _head_lines(bytes(self.buf[:end]))
                del self.buf[: end + 4]
                match = _REQUEST_LINE.fullmatch(lines[0])
                if match is None:
                    raise ProtocolViolation(f"malformed request line {lines[0][:80]!r}")
                fields = _fields(lines[1:])
                hosts = [v for n, v in fields if n == b"host"]
                if len(hosts) != 1:
                    raise ProtocolViolation(f"{len(hosts)} Host fields")
                self.head = (match[1], match[2], fields, b"")
                self.body = _BodyReader(*_framing(fields))
            assert self.body is not None
            used = self.body.feed(self.buf)
            del self.buf[:used]
            if self.body.state != "done":
                return done
            method, target, fields, _ = self.head
            end = len(self.raw) - len(self.buf)
            raw = bytes(self.raw[self.start : end])
            self.start = end
            done.append(
                Forwarded(self.connection, method, target, fields, bytes(self.body.body), raw)
            )
            self.head, self.body = None, None


@dataclass
class Response:
    status: int
    fields: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.fields if n == name), None)


def parse_responses(data: bytes, peer_closed: bool, head_requests: bool) -> list[Response]:
    """Every response in what a client received; raises ProtocolViolation for anything
    that is not a sequence of whole, well-formed HTTP/1.1 responses. ``head_requests``:
    the client sent HEAD somewhere, so a Content-Length may come without its body."""
    responses: list[Response] = []
    pos = 0
    while pos < len(data):
        if responses and responses[-1].status >= 200:
            connection = (responses[-1].header(b"connection") or b"").lower()
            if b"close" in connection:
                raise ProtocolViolation(
                    f"bytes after a Connection: close response: {data[pos : pos + 80]!r}"
                )
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            raise ProtocolViolation(f"incomplete response head {data[pos : pos + 80]!r}")
        lines = _head_lines(data[pos:end])
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ProtocolViolation(f"malformed status line {lines[0][:80]!r}")
        status = int(match[1])
        fields = _fields(lines[1:])
        length, chunked = _framing(fields)
        pos = end + 4
        rest = data[pos:]
        if (
            status < 200
            or status in (204, 304)
            or (head_requests and length and (not rest or rest.startswith(b"HTTP/1.1 ")))
        ):
            body = b""
        elif chunked:
            reader = _BodyReader(None, True)
            buf = bytearray(rest)
            pos += reader.feed(buf)
            if reader.state != "done":
                raise ProtocolViolation("incomplete chunked response body")
            body = bytes(reader.body)
        elif length is not None:
            if len(rest) < length:
                raise ProtocolViolation(f"response body {len(rest)} of {length} bytes")
            body, pos = rest[:length], pos + length
        else:
            if not peer_closed:
                raise ProtocolViolation("response without length on an open connection")
            body, pos = rest, len(data)
        responses.append(Response(status, fields, body))
    return responses


# -- the recording backend --------------------------------------------------------------


@dataclass
class Event:
    kind: str  # "request", "violation", "partial-body", "partial-head", "bytes"
    connection: int
    detail: str = ""
    request: Forwarded | None = None
    size: int = 0


@dataclass
class RecordingServer:
    """A raw backend on loopback. Events (whole requests, violations, requests cut short,
    byte counts) go to one ordered log; :meth:`mark` and :meth:`since` window it."""

    port: int = 0
    events: list[Event] = field(default_factory=list)
    last_activity: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sock: socket.socket | None = None
    _connections: int = 0
    _answers: int = 0
    _pending: set[int] = field(default_factory=set)  # connections inside a request
    _open: set[socket.socket] = field(default_factory=set)
    _stopped: bool = False

    def start(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="recorder-accept").start()

    def stop(self) -> None:
        self._stopped = True
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in list(self._open):
                with contextlib.suppress(OSError):
                    conn.close()

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, mark: int) -> list[Event]:
        with self._lock:
            return list(self.events[mark:])

    def settle(self, after: float, quiet: float = 0.03, limit: float = 0.5) -> None:
        """Wait until nothing has arrived for ``quiet`` seconds (counted from ``after``)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if time.monotonic() - max(self.last_activity, after) >= quiet:
                return
            time.sleep(0.005)

    def pending(self) -> int:
        """Connections holding part of a request (the proxy sent a head, or a prefix)."""
        with self._lock:
            return len(self._pending)

    def wait_whole(self, limit: float) -> bool:
        """Wait until no connection holds part of a request; False if one still does."""
        deadline = time.monotonic() + limit
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
            self.last_activity = time.monotonic()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._connections += 1
                index = self._connections
                self._open.add(conn)
            threading.Thread(
                target=self._serve, args=(conn, index), daemon=True, name=f"recorder-{index}"
            ).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        parser = StrictRequestParser(index)
        try:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    if parser.pending:
                        # A cut body is a streamed request its client abandoned; a cut
                        # head is bytes the proxy passed on without parsing them.
                        kind = "partial-body" if parser.head is not None else "partial-head"
                        rest = bytes(parser.raw[parser.start :])[:300]
                        self._record(Event(kind, index, repr(rest)))
                    return
                self._record(Event("bytes", index, size=len(data)))
                try:
                    requests = parser.feed(data)
                except ProtocolViolation as exc:
                    detail = f"{exc}; connection bytes: {bytes(parser.raw)[-600:]!r}"
                    self._record(Event("violation", index, detail))
                    return
                with self._lock:
                    if parser.pending:
                        self._pending.add(index)
                    else:
                        self._pending.discard(index)
                for request in requests:
                    with self._lock:
                        self._answers += 1
                        request.answer = self._answers
                    self._record(Event("request", index, request=request))
                    body = b"" if request.method == b"HEAD" else b"ok"
                    try:
                        conn.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Recorded: %d\r\n\r\n%b"
                            % (len(body), request.answer, body)
                        )
                    except OSError:
                        return
        finally:
            with self._lock:
                self._open.discard(conn)
                self._pending.discard(index)
            conn.close()


# -- one client exchange ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Bytes to send on one fresh connection, written in pieces split at ``splits`` (a
    short pause between them), then optionally half-closed."""

    data: bytes
    splits: tuple[int, ...] = ()
    half_close: bool = False

    @property
    def requests(self) -> int:
        """An upper bound on the requests these bytes can hold."""
        return self.data.count(b"HTTP/")

    def pieces(self) -> list[bytes]:
        cuts = [0, *sorted({s for s in self.splits if 0 < s < len(self.data)}), len(self.data)]
        return [self.data[a:b] for a, b in itertools.pairwise(cuts)]

    def digest(self) -> str:
        key = self.data + repr((self.splits, self.half_close)).encode()
        return hashlib.sha256(key).hexdigest()[:16]


@dataclass
class Reply:
    data: bytes
    peer_closed: bool
    reset: bool
    elapsed: float


def exchange(port: int, case: Case, idle: float = 0.25, limit: float = 4.0) -> Reply:
    """Send a case; read until the proxy closes, has answered every request the case can
    hold, or stays silent for ``idle`` seconds."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    received = bytearray()
    peer_closed = reset = False
    head = b"HEAD" in case.data
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, piece in enumerate(case.pieces()):
            if i:
                time.sleep(0.02)
            try:
                sock.sendall(piece)
            except OSError:
                break  # the proxy refused and closed early: read what it said
        if case.half_close:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        deadline = started + limit
        last = time.monotonic()
        while True:
            now = time.monotonic()
            wait = min(deadline - now, last + idle - now)
            if wait <= 0:
                break
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                reset = peer_closed = True
                break
            if not chunk:
                peer_closed = True
                break
            received += chunk
            last = time.monotonic()
            with contextlib.suppress(ProtocolViolation):
                answered = parse_responses(bytes(received), False, head)
                if sum(r.status >= 200 for r in answered) >= max(case.requests, 1):
                    break
    finally:
        sock.close()
    return Reply(bytes(received), peer_closed, reset, time.monotonic() - started)


# -- the proxy under test ---------------------------------------------------------------


def floatgate_yaml(port: int, backend_port: int) -> str:
    frontend = (
        f"    timeout: {{client: {CLIENT_TIMEOUT:g}s}}\n"
        f"    max_uri_length: {MAX_URI_LENGTH}\n"
        f"    max_header_size: {MAX_HEADER_SIZE}"
    )
    return cluster_yaml(port, [f"127.0.0.1:{backend_port}"], frontend_extra=frontend) + (
        "defaults:\n  timeout: {connect: 1s, client: 1s, server: 2s}\nshutdown_grace: 0s\n"
    )


class InvariantBroken(AssertionError):
    """An invariant failed; ``kind`` names which (see KNOWN_BUGS in test_fuzz.py)."""

    def __init__(self, kind: str, message: str, clean: bool = False) -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.clean = clean  # the process is fit for the next case (no restart needed)


@dataclass
class Outcome:
    reply: Reply
    responses: list[Response]
    forwarded: list[Forwarded]
    backend_bytes: int
    partial: list[str]


@dataclass
class FuzzTarget:
    """A live ``floatgate run`` in front of a RecordingServer; :meth:`restart` replaces
    the process (after a failure, so that shrinking starts each try from a clean one)."""

    port: int
    backend: RecordingServer
    workdir: Path
    process: FloatgateProcess | None = None
    probes: int = 0
    starts: int = 0
    dirty: bool = False

    def restart(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.backend.wait_whole(2.0)  # what the old process left half-sent is cut now
            self.backend.settle(time.monotonic())
        self.starts += 1
        config = self.workdir / "cluster.yaml"
        config.write_text(floatgate_yaml(self.port, self.backend.port))
        self.process = FloatgateProcess(config, self.workdir / f"floatgate{self.starts}.log")
        self.process.wait_listening(self.port)
        self.dirty = False
        self.probe()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def alive(self) -> None:
        assert self.process is not None
        code = self.process.proc.poll()
        if code is not None:
            raise InvariantBroken("crash", f"floatgate exited {code}: {self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        assert self.process is not None
        return self.process.log.read_text(errors="replace")[-size:]

    def probe(self) -> None:
        """A fresh, normal request must still be served, as exactly one request."""
        self.alive()
        self.probes += 1
        token = f"/probe/{self.probes}"
        data = f"GET {token} HTTP/1.1\r\nHost: probe.test\r\n\r\n".encode()
        mark = self.backend.mark()
        reply = exchange(self.port, Case(data), idle=2.0)
        self.backend.settle(time.monotonic(), quiet=0.01)
        events = self.backend.since(mark)
        late = [f"{e.kind}: {e.detail}" for e in events if e.kind not in ("bytes", "request")]
        if late:
            raise InvariantBroken("late", f"after the case, the backend saw: {late}")
        try:
            responses = parse_responses(reply.data, reply.peer_closed, False)
        except ProtocolViolation as exc:
            raise InvariantBroken(
                "probe", f"answer malformed ({exc}): {reply.data[:300]!r}"
            ) from None
        if [r.status for r in responses] != [200] or responses[0].header(b"x-recorded") is None:
            raise InvariantBroken("probe", f"not served: {reply.data[:300]!r} {self.log_tail()}")
        got = [e.request.target for e in events if e.request is not None]
        if got != [token.encode()]:
            raise InvariantBroken("probe", f"forwarded as {got!r}")

    def run(self, case: Case) -> Outcome:
        """Send one case and check every invariant; raises InvariantBroken."""
        if self.dirty:
            self.restart()
        try:
            return self._run(case)
        except InvariantBroken as exc:
            self.dirty = not exc.clean
            raise
        except BaseException:
            self.dirty = True
            raise

    def _run(self, case: Case) -> Outcome:
        mark = self.backend.mark()
        reply = exchange(self.port, case)
        self.backend.settle(time.monotonic())
        # The client is gone: a request half-forwarded must be cut off at once, never
        # left holding a server connection.
        if not self.backend.wait_whole(STALL_LIMIT):
            started = time.monotonic()
            cleared = self.backend.wait_whole(CLIENT_TIMEOUT + 1.5)
            held = STALL_LIMIT + time.monotonic() - started
            self.backend.settle(time.monotonic())
            raise InvariantBroken(
                "stalled",
                f"a part-forwarded request held a server connection "
                f"{f'{held:.1f}s' if cleared else 'indefinitely'} after its client left "
                f"(the client got {reply.data[:200]!r}) {self.log_tail(1500)}",
                clean=cleared,
            )
        self.backend.settle(time.monotonic())
        events = self.backend.since(mark)
        leak = _LEAKS.search(reply.data)
        if leak:
            raise InvariantBroken("leak", f"{leak[0]!r} in the answer: {reply.data[:600]!r}")
        try:
            responses = parse_responses(reply.data, reply.peer_closed, b"HEAD" in case.data)
        except ProtocolViolation as exc:
            raise InvariantBroken(
                "malformed-answer", f"{exc}; the client got {reply.data[:600]!r}"
            ) from None
        violations = [e.detail for e in events if e.kind == "violation"]
        if violations:
            raise InvariantBroken("malformed-forward", f"the backend received: {violations}")
        forwarded = [e.request for e in events if e.request is not None]
        partial = [e.detail for e in events if e.kind == "partial-body"]
        raw_tail = [e.detail for e in events if e.kind == "partial-head"]
        if raw_tail:
            raise InvariantBroken(
                "raw-bytes", f"bytes that are no request reached the backend: {raw_tail}"
            )
        backend_bytes = sum(e.size for e in events)
        if len(forwarded) > case.requests:
            raise InvariantBroken(
                "too-many",
                f"{len(forwarded)} requests forwarded for at most {case.requests} sent: "
                f"{[f.raw[:200] for f in forwarded]!r}",
            )
        final = [r for r in responses if r.status >= 200]
        refused = bool(final) and final[0].status in REFUSALS
        refused = refused and final[0].header(b"x-recorded") is None
        if refused and (forwarded or (backend_bytes and len(case.pieces()) == 1)):
            raise InvariantBroken(
                "refused-but-forwarded",
                f"refused with {final[0].status} but the backend received "
                f"{backend_bytes} bytes: {[f.raw[:300] for f in forwarded] or partial!r}",
            )
        for request in forwarded:
            if request.target != b"/" and request.target not in case.data:
                raise InvariantBroken("invented", f"a target never sent: {request.raw[:300]!r}")
            unprocessed = _unprocessed(request)
            if unprocessed:
                raise InvariantBroken(
                    "unprocessed",
                    f"forwarded without the proxy's processing (it still carries "
                    f"{unprocessed!r}): {request.raw[:300]!r}",
                )
        relayed = [r.header(b"x-recorded") for r in responses if r.header(b"x-recorded")]
        answered = [b"%d" % f.answer for f in forwarded]
        if relayed != answered:
            raise InvariantBroken(
                "answer-lost",
                f"the backend answered {answered!r}, the client got {relayed!r} "
                f"(responses {[r.status for r in responses]})",
            )
        self.probe()
        return Outcome(reply, responses, forwarded, backend_bytes, partial)


# The proxy removes these from every request (hop-by-hop, RFC 9110 section 7.6.1, and
# the client-certificate headers only it may set); a forwarded request that still has
# one went to the backend as raw client bytes.
_REMOVED = frozenset(
    {b"keep-alive", b"proxy-connection", b"te", b"trailer", b"expect",
     b"x-ssl-client-verify", b"x-ssl-client-subject", b"x-ssl-client-issuer",
     b"x-ssl-client-sha256", b"x-ssl-client-cert"}
)  # fmt: skip


def _unprocessed(request: Forwarded) -> list[bytes]:
    names = {n for n, _ in request.fields}
    found = sorted(names & _REMOVED)
    connection = [v.lower() for n, v in request.fields if n == b"connection"]
    if connection and connection != [b"upgrade"]:
        found.append(b"connection: " + b", ".join(connection))
    if b"upgrade" in names and connection != [b"upgrade"]:
        found.append(b"upgrade")
    return found


@contextlib.contextmanager
def fuzz_target(workdir: Path) -> Iterator[FuzzTarget]:
    backend = RecordingServer()
    backend.start()
    target = FuzzTarget(free_port(), backend, workdir)
    try:
        target.restart()
        yield target
    finally:
        target.stop()
        backend.stop()


# -- the corpus -------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    case: Case
    xfail: str | None = None  # a known, unfixed bug this entry reproduces


def load_corpus(directory: Path = CORPUS) -> list[CorpusEntry]:
    """``NAME.bin`` holds the exact bytes; an optional ``NAME.yaml`` beside it may set
    ``splits`` (offsets to pause at), ``half_close`` and ``xfail`` (the bug's name)."""
    entries = []
    for path in sorted(directory.glob("*.bin")):
        meta: dict[str, Any] = {}
        side = path.with_suffix(".yaml")
        if side.exists():
            meta = yaml.safe_load(side.read_text()) or {}
        case = Case(path.read_bytes(), tuple(meta.get("splits", ())), bool(meta.get("half_close")))
        entries.append(CorpusEntry(path.stem, case, meta.get("xfail")))
    return entries


def save_case(case: Case, directory: Path, reason: str = "") -> Path:
    """Write a case in corpus format (``.bin`` and, when needed, ``.yaml``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"found-{case.digest()}.bin"
    path.write_bytes(case.data)
    meta: dict[str, Any] = {}
    if case.splits:
        meta["splits"] = list(case.splits)
    if case.half_close:
        meta["half_close"] = True
    if reason:
        meta["found"] = reason[:500]
    if meta:
        path.with_suffix(".yaml").write_text(yaml.safe_dump(meta, sort_keys=True))
    return path


# -- the generator ----------------------------------------------------------------------
# Each request is "clean" (valid HTTP/1.1, benign variation), has exactly one odd
# feature, or is "wild" (any feature may be odd); whole cases may then be cut short or
# mutated byte by byte. Most cases are thus near the line between accepted and refused.

_FEATURES = ("method", "target", "version", "eol", "space", "host", "header", "framing", "chunk")
_SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: smuggled.test\r\n\r\n"
_METHODS = [b"GET", b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE"]
_ODD_METHODS = [b"get", b"G\x00T", b"CONNECT", b"PRI", b"", b"GET ", b"M-SEARCH", b"X" * 40,
                b"G\xc3\xa9T", b"GET\t", b"\r\nGET", b"PROPFIND", b"QUERY"]  # fmt: skip
_VERSIONS = [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]
_ODD_VERSIONS = [b"HTTP/2.0", b"HTTP/1.10", b"http/1.1", b"HTTP/1", b"", b"HTTP/0.9",
                 b"HTTP/1.1 ", b"HTTP/9.9", b"HTTP/1.1\x00", b"HTTP/ 1.1",
                 b"HTTPS/1.1"]  # fmt: skip
_SUFFIXES = [b"", b"", b"?q=1", b"?a=b&c=d", b"/../../etc/passwd", b"%2F", b"//x", b"%00",
             b";param", b"/%2e%2e/", b"?x=%0d%0a"]  # fmt: skip
_ODD_SUFFIXES = [b"#frag", b"%zz", b"?\x7f", b"\xff\xfe", b"\t", b" x", b"?" + b"a" * 600,
                 b"/\xc3\xa9", b"\\..\\", b"@evil.test", b"\x00", b"?\r\n"]  # fmt: skip
_ODD_TARGETS = [b"*", b"fuzz.test:443", b"", b"fz", b"/" + b"p" * 700, b"http://", b"//fz",
                b"https://fuzz.test:443/fz", b"http://[::1]:80/fz", b"http://u@h/fz",
                b"http://fuzz.test:99999/fz", b"ftp://fuzz.test/fz"]  # fmt: skip
_ODD_EOLS = [b"\n", b"\r", b"\n\r", b"\r\r\n"]
_ODD_SPACES = [b"  ", b"\t", b"\x00 ", b" \x0b"]
_ODD_HOSTS = [[], [b"fuzz.test", b"other.test"], [b""], [b"a b"], [b"h:99999"], [b"fuzz.test"] * 2]
_NAMES = [b"Accept", b"User-Agent", b"X-Test", b"Cookie", b"Content-Type", b"Connection",
          b"Upgrade", b"Expect", b"TE", b"Trailer", b"Keep-Alive", b"Proxy-Connection",
          b"X-Forwarded-For", b"X-SSL-Client-Verify", b"Forwarded", b"Range"]  # fmt: skip
_ODD_NAMES = [b"X Test", b"X-Test ", b" X-Test", b"X-T\x00st", b"", b"X:Test", b"X\tTest",
              b"\xe9t\xe9", b"Transfer_Encoding", b"Content--Length", b"Host ",
              b"X-" + b"a" * 300, b"Content-Length\x00"]  # fmt: skip
_VALUES = [b"1", b"text/html", b"close", b"keep-alive", b"Upgrade", b"websocket",
           b"100-continue", b"trailers", b"chunked", b"bytes=0-1", b"127.0.0.1", b"a=b; c=d",
           b"", b"\xe9t\xe9", b"Upgrade, close", b"keep-alive, Upgrade"]  # fmt: skip
_ODD_VALUES = [b"a\x00b", b"a\rb", b"a\x7fb", b"a" * 2100, b"\x0b", b"a\r\n b",
               b"a\r\n\tb", b"x\nInjected: 1", b"\x01", b"a\nb"]  # fmt: skip
_LENGTH_FORMS = [b"+%d", b"-%d", b"0x%d", b" %d ", b"%d,%d", b"%d, %d", b"%d %d", b"0%d",
                 b"%d.0", b"\t%d", b"%da", b"99999999999999999999", b"", b"%d\x00",
                 b"1e3"]  # fmt: skip
_CODINGS = [b"chunked, chunked", b"gzip, chunked", b"chunked, gzip", b"chunked;q=1",
            b"identity", b" chunked", b"\tchunked", b"xchunked", b"CHUNKED", b"chunked\x00",
            b"\x0bchunked", b"chu\nnked", b"", b"deflate", b'"chunked"', b"identity, chunked",
            b"chunked,"]  # fmt: skip
_SIZES = [b"%x", b"%X", b"0%x", b"%x;ext", b'%x;a=b;c="d"', b"%x ;x", b"%x;"]
_ODD_SIZES = [b"0x%x", b"%x ", b" %x", b"-%x", b"ffffffffffffffffff", b"%x\x00", b"%x\t",
              b"+%x", b"", b"g", b"%x;\x00", b"%x;a=\"\r\n\"", b"%x\n"]  # fmt: skip
_WEBSOCKET = [b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
_ODD_FRAMINGS = ["both", "twocl", "form", "short", "long", "coding", "te10"]
_INTERESTING = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b"\xff", b"0", b";",
                b"\r\n\r\n", b"HTTP/1.1", b"Content-Length: 5\r\n",
                b"Transfer-Encoding: chunked\r\n", _SMUGGLED]  # fmt: skip


class _Odd:
    """Which features of one request are odd."""

    def __init__(self, draw: st.DrawFn) -> None:
        mode = draw(st.sampled_from(["clean"] * 5 + ["one"] * 4 + ["wild"]))
        self.draw = draw
        self.mode = mode
        self.one = draw(st.sampled_from(_FEATURES)) if mode == "one" else ""

    def __call__(self, feature: str) -> bool:
        if self.mode == "one":
            return feature == self.one
        return self.mode == "wild" and not self.draw(st.integers(0, 2))


def _pick(draw: st.DrawFn, odd: bool, normal: list[Any], strange: list[Any]) -> Any:
    return draw(st.sampled_from(strange if odd else normal))


@st.composite
def _header(draw: st.DrawFn, odd: bool = False) -> bytes:
    name = draw(st.sampled_from(_ODD_NAMES if odd and draw(st.booleans()) else _NAMES))
    value = draw(st.sampled_from(_VALUES))
    if odd and draw(st.booleans()):
        value = draw(st.sampled_from(_ODD_VALUES) | st.binary(max_size=12))
    sep = draw(st.sampled_from([b": ", b": ", b":", b":\t", b":  "] + ([b" : "] if odd else [])))
    line = name + sep + value + draw(st.sampled_from([b"", b"", b" ", b"\t"]))
    if odd and not draw(st.integers(0, 3)):  # obs-fold
        line += b"\r\n" + draw(st.sampled_from([b" ", b"\t"])) + draw(st.sampled_from(_VALUES))
    return line


@st.composite
def _chunked_body(draw: st.DrawFn, odd: bool) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(min_size=1, max_size=20) | st.sampled_from([_SMUGGLED, b"0\r\n\r\n"]))
        size = len(data)
        form = draw(st.sampled_from(_SIZES))
        eol, tail = b"\r\n", b"\r\n"
        if odd:
            what = draw(st.sampled_from(["size", "form", "eol", "tail"]))
            if what == "size":
                size = draw(st.sampled_from([0, size + 1, max(size - 1, 0), size * 16]))
            elif what == "form":
                form = draw(st.sampled_from(_ODD_SIZES))
            elif what == "eol":
                eol = draw(st.sampled_from(_ODD_EOLS))
            else:
                tail = draw(st.sampled_from([b"", b"\n", b"xx", b"\r\n\r\n", b"\r"]))
        out += (form % size if b"%" in form else form) + eol + data + tail
    last = draw(st.sampled_from([b"0", b"0", b"00", b"0;ext=1"]))
    trailers = b"".join(draw(st.lists(_header(), max_size=2)))
    ending = last + b"\r\n" + (trailers + b"\r\n" if trailers else b"") + b"\r\n"
    if odd and not draw(st.integers(0, 3)):
        ending = draw(st.sampled_from([b"", b"0\r\n", b"0\n\n", b"000000000000000000000\r\n\r\n",
                                       b"0\r\nX: y\r\n", b"0\r\n\r\n\r\n"]))  # fmt: skip
    return out + ending


@st.composite
def _request(draw: st.DrawFn, token: str, index: int) -> bytes:
    odd = _Odd(draw)
    method = _pick(draw, odd("method"), _METHODS, _ODD_METHODS)
    path = f"/fz/{token}/{index}".encode()
    if odd("target"):
        if draw(st.booleans()):
            path += draw(st.sampled_from(_ODD_SUFFIXES))
        else:
            path = draw(st.sampled_from(_ODD_TARGETS))
    else:
        if not draw(st.integers(0, 5)):
            path = b"http://fuzz.test" + path
        path += draw(st.sampled_from(_SUFFIXES))
    version = _pick(draw, odd("version"), _VERSIONS, _ODD_VERSIONS)
    eol = _pick(draw, odd("eol"), [b"\r\n"], _ODD_EOLS)
    space = _pick(draw, odd("space"), [b" "], _ODD_SPACES)
    line = method + space + path + (space + version if version else b"")
    hosts = _pick(draw, odd("host"), [[b"fuzz.test"]], _ODD_HOSTS)
    if version == b"HTTP/1.0" and not draw(st.integers(0, 2)):
        hosts = []
    fields = [b"Host: " + host for host in hosts]
    fields += draw(st.lists(_header(), max_size=3))
    if not draw(st.integers(0, 7)):
        connection = draw(st.sampled_from([b"Upgrade", b"upgrade", b"keep-alive, Upgrade"]))
        upgrade = draw(st.sampled_from([b"websocket", b"WebSocket", b"h2c", b"foo"]))
        fields += [b"Connection: " + connection, b"Upgrade: " + upgrade, *_WEBSOCKET]
    if odd("header"):
        fields.append(draw(_header(odd=True)))
    fields.append(f"X-Fuzz: {token}-{index}".encode())
    body = draw(st.binary(max_size=24) | st.sampled_from([b"", _SMUGGLED]))
    odd_chunk = odd("chunk")
    framing = draw(st.sampled_from(["none", "cl", "cl", "te", "te"]))
    if odd("framing"):
        framing = draw(
            st.sampled_from(["both", "twocl", "form", "short", "long", "coding", "te10"])
        )
    length = len(body)
    if framing in ("cl", "both", "twocl", "short", "long"):
        if framing == "short":
            length += draw(st.integers(1, 5))  # the body is shorter than declared
        elif framing == "long":
            length = draw(st.integers(0, max(length - 1, 0)))  # the rest is a next request
        fields.append(b"Content-Length: %d" % length)
    if framing == "twocl":
        fields.append(b"Content-Length: %d" % draw(st.sampled_from([length, 0, length + 1])))
    if framing == "form":
        form = draw(st.sampled_from(_LENGTH_FORMS))
        value = form % ((length,) * form.count(b"%")) if b"%" in form else form
        name = draw(st.sampled_from([b"Content-Length", b"content-length", b"Content-Length "]))
        fields.append(name + b": " + value)
    if framing in ("te", "both", "coding", "te10"):
        codings = [b"chunked"]
        if framing == "coding":
            codings = draw(
                st.lists(st.sampled_from([b"chunked", *_CODINGS]), min_size=1, max_size=2)
            )
        if framing == "te10":
            line = method + space + path + b" HTTP/1.0"
        fields += [b"Transfer-Encoding: " + coding for coding in codings]
        body = draw(_chunked_body(odd_chunk))
    if draw(st.integers(0, 3)) == 0:
        fields = draw(st.permutations(fields))
    return eol.join([line, *fields]) + eol + eol + body


@st.composite
def _mutate(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            return draw(st.binary(max_size=40))
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        if op == "flip" and at < len(data):
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        elif op == "insert":
            data = (
                data[:at] + draw(st.sampled_from(_INTERESTING) | st.binary(max_size=4)) + data[at:]
            )
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)) :]
        elif op == "duplicate":
            data = data[:at] + data[at : at + 16] + data[at:]
        else:
            data = data[:at]
    return data


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Raw bytes for one connection: 1-3 (pipelined) requests from the grammar, maybe cut
    short, maybe mutated; sent whole or in pieces; maybe half-closed."""
    token = f"{draw(st.integers(0, 0xFFFFFF)):06x}"
    count = draw(st.sampled_from([1] * 6 + [2, 2, 3]))
    data = b"".join(draw(_request(token, i)) for i in range(count))
    shape = draw(st.integers(0, 9))
    if shape == 0:
        data = data[: draw(st.integers(0, len(data)))]
    elif shape in (1, 2):
        data = draw(_mutate(data))
    splits: tuple[int, ...] = ()
    if not draw(st.integers(0, 4)) and len(data) > 1:
        splits = tuple(draw(st.lists(st.integers(1, len(data) - 1), min_size=1, max_size=3)))
    half_close = not draw(st.integers(0, 7))
    return Case(data, splits, half_close)
