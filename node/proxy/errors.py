"""Typed data-plane errors; the HTTP handler maps each to a status and a short message."""

from __future__ import annotations

from http import HTTPStatus

_KNOWN_STATUSES = frozenset(s.value for s in HTTPStatus)


class ProxyError(Exception):
    status = 502
    message = "Bad Gateway"


class NoServerAvailable(ProxyError):
    status = 503
    message = "Service Unavailable: no server is available to handle this request"

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"backend {backend}: {reason}")


class QueueFull(ProxyError):
    status = 503
    message = "Service Unavailable: too many requests waiting"

    def __init__(self, backend: str, size: int) -> None:
        super().__init__(f"backend {backend}: queue full ({size} waiting)")


class QueueTimeout(ProxyError):
    status = 503
    message = "Service Unavailable: timed out waiting for a free server"

    def __init__(self, backend: str, seconds: float) -> None:
        super().__init__(f"backend {backend}: queued longer than {seconds:g}s")


class ConnectFailed(ProxyError):
    status = 503
    message = "Service Unavailable: could not connect to any server"


class ServerTimeout(ProxyError):
    status = 504
    message = "Gateway Timeout: the server did not answer in time"


class BadResponse(ProxyError):
    status = 502
    message = "Bad Gateway: the server sent an invalid or incomplete response"


class ListenError(Exception):
    """A frontend cannot bind or listen on its address."""


class ClientTimeout(ProxyError):
    """The client made no progress sending its request body for ``timeout.client``."""

    status = 408
    message = "Request Timeout"


class BadRequest(ProxyError):
    status = 400
    message = "Bad Request"


class Denied(ProxyError):
    """A deny rule matched: its status, with the standard phrase."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = HTTPStatus(status).phrase if status in _KNOWN_STATUSES else "Denied"


class NotImplementedCoding(ProxyError):
    status = 501
    message = "Not Implemented: only the chunked transfer coding is supported"
