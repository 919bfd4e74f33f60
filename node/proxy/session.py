"""What a listener and the client connections it serves know of each other.

The listener (node.proxy.listener) accepts sockets and hands each to the frontend's
handler (``mode: http`` in node.proxy.http, ``mode: tcp`` in node.proxy.tcp); the
connection objects report back through :class:`Host`. Neither side imports the other:
both speak these Protocols, and node.proxy.plane puts them together.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from node.config.model import FrontendConfig
    from node.proxy.accesslog import AccessLog
    from node.tls.material import FrontendTlsRuntime


class Phase(enum.Enum):
    """Where a client connection is, as the listener's drain and idle sweep see it."""

    IDLE = "idle"  # between requests: a drain or close_idle may close it at once
    READING = "reading"  # a request head (mode http) or a ClientHello (mode tcp) arrives
    BUSY = "busy"  # being served: a drain lets it finish within the grace period


class Served(Protocol):
    """What the listener needs of a connection it serves (HTTP or passthrough)."""

    tunnel: Any  # an open upgrade/passthrough relay, or None
    closing: bool
    proxied: tuple[str, int] | None  # the client address a PROXY header named

    @property
    def phase(self) -> Phase: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def expire(self, now: float) -> None: ...
    def quiet(self, now: float) -> bool: ...


class FrontendRoute(Protocol):
    """The part of a frontend's route every connection reads (swapped whole on reload)."""

    @property
    def frontend(self) -> FrontendConfig: ...
    @property
    def access(self) -> AccessLog: ...
    @property
    def tls(self) -> FrontendTlsRuntime | None: ...


class Handler(Protocol):
    """A frontend's request handler: makes the protocol object for each accepted socket
    (``proxied``: the client address a PROXY header named, if any)."""

    @property
    def route(self) -> FrontendRoute: ...
    def new_protocol(self, host: Host, proxied: tuple[str, int] | None) -> asyncio.BaseProtocol: ...


class Host(Protocol):
    """What a connection needs of the listener that accepted it."""

    loop: asyncio.AbstractEventLoop
    connections: set[Served]

    @property
    def name(self) -> str: ...
    @property
    def handler(self) -> Handler: ...
    def connection_closed(self, conn: Served) -> None: ...
