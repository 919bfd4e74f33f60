"""What both client-connection kinds (HTTP/1.1 and HTTP/2) know of their client: its
address and, on TLS, the certificate it proved."""

from __future__ import annotations

import asyncio
import ssl

from node.config.model import ClientAuthConfig
from node.tls.peer import ClientIdentity, client_cert_headers, client_identity


def client_address(
    transport: asyncio.BaseTransport, proxied: tuple[str, int] | None
) -> tuple[str, int]:
    """The client's address: the one a PROXY header named, else the socket's peer."""
    if proxied is not None:
        return proxied
    peer = transport.get_extra_info("peername")
    return (peer[0], peer[1]) if peer else ("", 0)  # IPv6: 4 items


def local_address(transport: asyncio.BaseTransport | None) -> tuple[str, int]:
    """The address the client connected to (for a PROXY header to the servers)."""
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return (sockname[0], sockname[1]) if sockname else ("", 0)


class TlsFacts:
    """The client-certificate facts of one TLS session, computed once per connection
    (a mixin: the connection class provides the three attributes, in its own slots;
    the mixin has none, so that it adds no instance dict)."""

    __slots__ = ()
    ssl_object: ssl.SSLObject | None
    _identity: ClientIdentity | None
    _cert_headers: list[tuple[bytes, bytes]] | None

    def identity(self) -> ClientIdentity:
        """What this TLS client proved."""
        if self._identity is None:
            self._identity = client_identity(self.ssl_object)  # type: ignore[misc]
        return self._identity

    def client_cert_headers(self, auth: ClientAuthConfig | None) -> list[tuple[bytes, bytes]]:
        """The client-certificate headers for this TLS session."""
        if self._cert_headers is None:
            forward_pem = auth is not None and auth.forward_pem
            self._cert_headers = client_cert_headers(self.ssl_object, forward_pem)  # type: ignore[misc]
        return list(self._cert_headers)


def keep_session(ssl_object: ssl.SSLObject) -> None:
    """A TLS client that left between requests, most often without close_notify: mark
    the connection shut down before it is freed. OpenSSL drops the session of a
    connection freed without a shutdown from the server's cache, so that client could
    not resume with its session ID (TLS 1.1 and later allow resuming it: RFC 4346,
    7.2.1). The close_notify this writes goes nowhere: the connection is gone."""
    try:
        ssl_object.unwrap()
    except (ssl.SSLError, OSError, ValueError):
        pass  # SSL_shutdown has marked it either way (it waits for the peer's alert)
