"""One HTTP request on its way through the handler's phases.

The context carries what the phases decide (path, Host, headers for the server, the
backend, whether the client connection may be reused) and what happened (server,
status, timers, termination). It is not the log record: the access-log entry is built
from it once the request is over (:meth:`RequestContext.log_entry`), and only when the
access log is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp.http_parser import RawRequestMessage

from node.proxy.accesslog import AccessEntry
from node.proxy.http.client import Client
from node.proxy.upstream.pool import BackendPool

HeaderList = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class RequestContext:
    conn: Client
    message: RawRequestMessage
    frontend: str
    pool: BackendPool  # the default backend until a use_backend rule picks another
    started: float  # the request's first byte (monotonic)
    headers_done: float
    # decided by the phases
    path: str = ""
    host: bytes | None = None
    headers: HeaderList = field(default_factory=list)  # for the server
    websocket: bool = False
    one_shot: bool = False  # never reuse the client or server connection afterwards
    # what happened
    server: str = "<NOSRV>"
    status: int = 0
    bytes_out: int = 0
    wait_queue: float = 0.0
    connect: float = 0.0
    response: float = 0.0
    finished: float = 0.0
    retries: int = 0
    termination: str = "-"
    response_started: bool = False  # response bytes were written: no error page possible

    mode = "http"
    bytes_in = 0  # mode http counts request bytes as they arrive, not per request

    @property
    def backend(self) -> str:
        return self.pool.name

    @property
    def protocol(self) -> str:
        return "h2" if self.conn.http2 else "http/1.1"

    def log_entry(self) -> AccessEntry:
        message = self.message
        major, minor = (2, 0) if self.conn.http2 else message.version
        return AccessEntry(
            started=self.started,
            headers_done=self.headers_done,
            client=self.conn.remote or "-",
            frontend=self.frontend,
            backend=self.pool.name,
            request_line=f"{message.method} {message.path} HTTP/{major}.{minor}",
            server=self.server,
            status=self.status,
            bytes_out=self.bytes_out,
            wait_queue=self.wait_queue,
            connect=self.connect,
            response=self.response,
            finished=self.finished,
            retries=self.retries,
            termination=self.termination,
            protocol=self.protocol,
        )
