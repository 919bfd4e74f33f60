"""The one way the data plane connects to a server: requests (the keep-alive pool),
WebSocket tunnels, passthrough and health checks.

Order on the wire: TCP connect, then the PROXY header (``send_proxy``) in clear, then
the TLS handshake when the server is reached over TLS (``tls`` on the backend). That is
what HAProxy sends for ``send-proxy ... ssl`` and what a server such as nginx's
``listen ... ssl proxy_protocol`` expects. The whole connect, header and handshake
included, has one deadline. (TCP_NODELAY: asyncio and uvloop set it on every TCP
transport they make, so it is not set again here.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterator
from typing import TypeVar

from node.config.model import HostPort
from node.tls.material import BackendTlsRuntime

P = TypeVar("P", bound=asyncio.BaseProtocol)
STREAM_LIMIT = 1 << 16  # asyncio stream buffer for tunnels and checks


class ConnectError(Exception):
    """No connection could be established: nothing reached the server. ``handshake``:
    TCP worked, the TLS handshake did not; ``detail``: the cause alone."""

    def __init__(self, message: str, detail: str, handshake: bool = False) -> None:
        super().__init__(message)
        self.detail = detail
        self.handshake = handshake


@contextlib.contextmanager
def _connect_errors(timeout: float) -> Iterator[None]:
    """Every way a connect can fail, as one ConnectError with a reason."""
    try:
        yield
    except ssl.SSLError as exc:
        detail = str(exc.reason or exc)
        raise ConnectError(f"TLS handshake with the server failed: {detail}", detail,
                           handshake=True) from exc  # fmt: skip
    except TimeoutError as exc:
        detail = f"connect timeout ({timeout:g}s)"
        raise ConnectError(detail, detail) from exc
    except OSError as exc:
        detail = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(detail, detail) from exc


async def connect_server(
    factory: Callable[[], P],
    address: HostPort,
    timeout: float,
    tls: BackendTlsRuntime | None = None,
    preamble: bytes = b"",
) -> tuple[asyncio.Transport, P]:
    """A connected transport and its protocol; ConnectError says why not. After a TLS
    handshake that follows a PROXY header, the protocol is told of the TLS transport
    (``connection_made`` again: for protocols that only keep the transport, such as
    aiohttp's ResponseHandler)."""
    loop = asyncio.get_running_loop()
    with _connect_errors(timeout):
        async with asyncio.timeout(timeout):
            if tls is not None and not preamble:
                transport, protocol = await loop.create_connection(
                    factory, address.host, address.port, ssl=tls.context,
                    server_hostname=tls.sni or address.host,
                )  # fmt: skip
            else:
                transport, protocol = await loop.create_connection(
                    factory, address.host, address.port
                )
                if preamble:
                    transport.write(preamble)
                if tls is not None:
                    secure = await loop.start_tls(
                        transport, protocol, tls.context, server_hostname=tls.sni or address.host
                    )
                    if secure is None:
                        raise ConnectionResetError("the server closed during the TLS handshake")
                    transport = secure
                    protocol.connection_made(transport)
    return transport, protocol


async def open_server_stream(
    address: HostPort,
    timeout: float,
    tls: BackendTlsRuntime | None = None,
    preamble: bytes = b"",
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The same connection as asyncio streams (tunnels, health checks)."""
    with _connect_errors(timeout):
        async with asyncio.timeout(timeout):
            if tls is not None and not preamble:
                reader, writer = await asyncio.open_connection(
                    address.host, address.port, limit=STREAM_LIMIT, ssl=tls.context,
                    server_hostname=tls.sni or address.host,
                )  # fmt: skip
            else:
                reader, writer = await asyncio.open_connection(
                    address.host, address.port, limit=STREAM_LIMIT
                )
                if preamble:
                    writer.write(preamble)
                if tls is not None:
                    await writer.start_tls(tls.context, server_hostname=tls.sni or address.host)
    return reader, writer
