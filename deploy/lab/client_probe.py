"""Runs in the client namespace: GET the VIP every 10 ms for N seconds; prints JSON with
every failure time, the longest outage (first failure to next success) and the slowest
request (a SYN retransmit shows as ~1 s).

    python -m deploy.lab.client_probe HOST SECONDS [TIMEOUT] [h2]

Without ``h2``: HTTP/1.1, a new connection per request. With ``h2``: HTTP/2 with prior
knowledge over one kept connection, as a browser keeps one: a request that a GOAWAY
says was not processed (its stream above the GOAWAY's last stream) is retried on a new
connection, as RFC 9113 6.8 allows (counted in ``retried``); a stream the server
accepted and did not answer, or a connection lost without GOAWAY, is a failure.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def _http11(host: str, timeout: float) -> Callable[[], bool]:
    def fetch() -> bool:
        conn = http.client.HTTPConnection(host, 80, timeout=timeout)
        conn.request("GET", "/")
        success = conn.getresponse().status == 200
        conn.close()
        return success

    return fetch


class _Http2:
    """One kept HTTP/2 connection; a new one after a GOAWAY or a close."""

    def __init__(self, host: str, timeout: float) -> None:
        self.host, self.timeout = host, timeout
        self.sock: socket.socket | None = None
        self.conn: h2.connection.H2Connection | None = None
        self.retried = 0

    def _connect(self) -> tuple[socket.socket, h2.connection.H2Connection]:
        sock = socket.create_connection((self.host, 80), timeout=self.timeout)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        self.sock, self.conn = sock, conn
        return sock, conn

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = self.conn = None

    def fetch(self) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            outcome = self._once()
            if outcome != "unprocessed":
                return outcome == "ok"
            self.retried += 1  # not processed by that server: safe to send elsewhere
        raise TimeoutError("retried until the timeout")

    def _once(self) -> str:
        if self.sock is None or self.conn is None:
            sock, conn = self._connect()
        else:
            sock, conn = self.sock, self.conn
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(b":method", b"GET"), (b":scheme", b"http"),
                                   (b":authority", self.host.encode()), (b":path", b"/")],
                          end_stream=True)  # fmt: skip
        sock.sendall(conn.data_to_send())
        status = 0
        while True:
            data = sock.recv(65536)
            if not data:
                self.drop()
                raise ConnectionResetError("closed without GOAWAY")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers or [])[b":status"])
                elif isinstance(event, h2.events.DataReceived) and event.stream_id:
                    conn.acknowledge_received_data(event.flow_controlled_length or 0,
                                                   event.stream_id)  # fmt: skip
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    sock.sendall(conn.data_to_send())
                    return "ok" if status == 200 else f"status {status}"
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    self.drop()
                    return "unprocessed" if event.error_code == 7 else "reset"  # REFUSED
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.drop()
                    last = event.last_stream_id or 0
                    return "unprocessed" if stream > last else "lost after GOAWAY"
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)


def main() -> None:
    host, seconds = sys.argv[1], float(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 0.5
    http2 = _Http2(host, timeout) if sys.argv[4:5] == ["h2"] else None
    fetch = http2.fetch if http2 is not None else _http11(host, timeout)
    end = time.monotonic() + seconds
    failures: list[float] = []
    errors: list[str] = []
    longest = 0.0
    outage_start: float | None = None
    start = time.monotonic()
    ok = 0
    slowest = 0.0
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            success = fetch()
        except (OSError, h2.exceptions.ProtocolError) as exc:
            success = False
            errors.append(f"{t - start:.3f}:{type(exc).__name__}:{exc}")
            if http2 is not None:
                http2.drop()
        slowest = max(slowest, time.monotonic() - t)
        if success:
            ok += 1
            if outage_start is not None:
                longest = max(longest, t - outage_start)
                outage_start = None
        else:
            failures.append(round(t - start, 3))
            outage_start = outage_start if outage_start is not None else t
        time.sleep(max(0.0, 0.01 - (time.monotonic() - t)))
    if outage_start is not None:
        longest = max(longest, time.monotonic() - outage_start)
    result = {"ok": ok, "failures": len(failures), "longest_outage": round(longest, 3),
              "slowest": round(slowest, 3), "errors": errors[:5]}  # fmt: skip
    if http2 is not None:
        result["retried"] = http2.retried
    print(json.dumps(result))


if __name__ == "__main__":
    main()
