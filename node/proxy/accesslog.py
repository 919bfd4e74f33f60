"""One access-log line per request, with HAProxy-style timers.

``Tq`` first byte to end of headers, ``Tw`` time queued waiting for a server slot,
``Tc`` TCP connect to the server (0 on a reused connection), ``Tr`` server response
headers, ``Tt`` total. All in milliseconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


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
    close_client: bool = False  # never reuse the client connection after this request
    response_started: bool = False  # response bytes were written: no error page possible

    def format(self) -> str:
        tq = _ms(self.headers_done - self.started)
        tt = _ms(self.finished - self.started)
        timers = f"{tq}/{_ms(self.wait_queue)}/{_ms(self.connect)}/{_ms(self.response)}/{tt}"
        return (
            f"{self.client} {self.frontend} {self.backend}/{self.server} {timers} "
            f"{self.status} {self.bytes_out} retries={self.retries} {self.termination} "
            f'"{self.request_line}"'
        )


class AccessLog:
    def __init__(self, enabled: bool, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("floatgate.access")
        self.enabled = enabled

    def write(self, entry: AccessEntry) -> None:
        if self.enabled and self.logger.isEnabledFor(logging.INFO):
            self.logger.info("%s", entry.format())


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
