"""One access-log line per request, with HAProxy-style timers.

``Tq`` first byte to end of headers, ``Tw`` time queued waiting for a server slot,
``Tc`` TCP connect to the server (0 on a reused connection), ``Tr`` server response
headers, ``Tt`` total. All in milliseconds.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from node.config.model import AccessLogConfig
from node.observe.logsink import LineSink, LogTargetError
from node.observe.metrics import Finished, Meters


class Loggable(Finished, Protocol):
    """A finished request (node.proxy.http.context) or passthrough connection: what the
    meters read, and the log line it makes."""

    def log_entry(self) -> AccessEntry: ...


@dataclass(slots=True)
class AccessEntry:
    started: float
    headers_done: float
    client: str
    frontend: str
    backend: str
    request_line: str
    server: str = "<NOSRV>"
    status: int = 0
    bytes_out: int = 0
    bytes_in: int = 0  # mode tcp: bytes from the client
    wait_queue: float = 0.0
    connect: float = 0.0
    response: float = 0.0
    finished: float = 0.0
    retries: int = 0
    termination: str = "-"
    mode: str = "http"  # "tcp": one entry per passthrough connection
    protocol: str = "http/1.1"  # the client's (mode http), as ALPN names it

    def log_entry(self) -> AccessEntry:
        return self

    def format(self) -> str:
        tq = _ms(self.headers_done - self.started)
        tt = _ms(self.finished - self.started)
        timers = f"{tq}/{_ms(self.wait_queue)}/{_ms(self.connect)}/{_ms(self.response)}/{tt}"
        return (
            f"{self.client} {self.frontend} {self.backend}/{self.server} {timers} "
            f"{self.status} {self.bytes_out} retries={self.retries} {self.termination} "
            f'"{self.request_line}"'
        )

    def fields(self) -> dict[str, object]:
        """The same facts for a JSON log line."""
        return {
            "client": self.client, "frontend": self.frontend, "backend": self.backend,
            "server": self.server, "status": self.status, "bytes_out": self.bytes_out,
            "bytes_in": self.bytes_in, "retries": self.retries, "termination": self.termination,
            "request": self.request_line, "tq_ms": _ms(self.headers_done - self.started),
            "tw_ms": _ms(self.wait_queue), "tc_ms": _ms(self.connect),
            "tr_ms": _ms(self.response), "tt_ms": _ms(self.finished - self.started),
            **({"protocol": self.protocol} if self.mode == "http" else {}),
        }  # fmt: skip


class AccessLog:
    """Where finished requests go: the meters (always) and the access log (if on).

    A line is formatted on the event loop and buffered in a
    :class:`~node.observe.logsink.LineSink`, whose thread writes it: text lines look as
    the node's own log lines do (``time INFO floatgate.access: ...``), JSON lines carry
    the same keys as a JSON log record plus the request's fields."""

    def __init__(
        self,
        config: AccessLogConfig | bool = True,
        meters: Meters | None = None,
        sink: LineSink | None = None,
    ) -> None:
        if isinstance(config, bool):
            config = AccessLogConfig(enabled=config)
        self.config = config
        self.meters = meters or Meters()
        self.sink = sink
        self._json = config.format == "json"
        self._second = -1
        self._stamp = ""

    def start(self) -> None:
        """Open the target and start the writer (LogTargetError: the path is unusable)."""
        # --log-level WARNING (or higher) silences the access log, as it always did
        audible = logging.getLogger("floatgate.access").isEnabledFor(logging.INFO)
        if self.config.enabled and audible and self.sink is None:
            config = self.config
            sink = LineSink(config.target, config.flush_interval, config.max_pending_kib * 1024)
            try:
                sink.open_now()
            except OSError as exc:
                sink.close()
                raise LogTargetError(
                    f"access log: cannot open {config.target}: {exc.strerror or exc} "
                    "(fix access_log.target in node.yaml)"
                ) from exc
            self.sink = sink
            self.meters.log_sink = sink

    async def close(self, timeout: float = 5.0) -> None:
        """Hand over what is buffered (on the loop), wait up to ``timeout`` seconds for
        the writer to write it (in a thread), and let a later ``start`` begin anew."""
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.close()
            await asyncio.to_thread(sink.wait, timeout)
            if self.meters.log_sink is sink:
                self.meters.log_sink = None

    def write(self, finished: Loggable) -> None:
        self.meters.request(finished)
        sink = self.sink
        if sink is not None:
            entry = finished.log_entry()
            sink.add(self._json_line(entry) if self._json else self._text_line(entry))

    def _text_line(self, entry: AccessEntry) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        millis = int((now - second) * 1000)
        return f"{self._stamp},{millis:03d} INFO floatgate.access: {entry.format()}\n"

    def _json_line(self, entry: AccessEntry) -> str:
        moment = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        document = {"ts": moment, "level": "info", "logger": "floatgate.access",
                    "message": entry.format(), "event": "access", **entry.fields()}  # fmt: skip
        return json.dumps(document) + "\n"


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
