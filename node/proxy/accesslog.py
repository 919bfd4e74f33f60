"""One access-log line per request, with HAProxy-style timers.

``Tq`` first byte to end of headers, ``Tw`` time queued waiting for a server slot,
``Tc`` TCP connect to the server (0 on a reused connection), ``Tr`` server response
headers, ``Tt`` total. All in milliseconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

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
        }  # fmt: skip


class AccessLog:
    """Where finished requests go: the meters (always) and the access log (if on)."""

    def __init__(
        self, enabled: bool, meters: Meters | None = None, logger: logging.Logger | None = None
    ) -> None:
        self.logger = logger or logging.getLogger("floatgate.access")
        self.enabled = enabled
        self.meters = meters or Meters()

    def write(self, finished: Loggable) -> None:
        self.meters.request(finished)
        if self.enabled and self.logger.isEnabledFor(logging.INFO):
            entry = finished.log_entry()
            self.logger.info("%s", entry.format(), extra={"event": "access", **entry.fields()})


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
