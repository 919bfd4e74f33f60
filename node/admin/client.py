"""Talking to a node's admin API: the one client every caller uses (the status page's
view of the cluster, ``floatgate status``/``switchover``/``drill``, failsafe promises).

An admin address is what a member advertises in etcd (``"admin"`` in its election
payload): ``https://host:port`` when its listener serves TLS, ``host:port`` (plain
HTTP, also what older nodes advertise) otherwise. Over HTTPS the server certificate is
verified against ``admin.tls.ca`` of the local node.yaml (host name included) and the
local node's certificate is presented as client certificate. The bearer token is never
sent over plain HTTP to an address that is not loopback: that raises
:class:`PlainTokenRefused` before anything is sent.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import aiohttp

from node.config.model import AdminConfig, HostPort, NodeConfig
from node.tls.admin import admin_client_context
from node.tls.errors import CertificateError

Scheme = Literal["http", "https"]


class AdminClientError(Exception):
    """An admin API could not be asked: bad address, unreachable, TLS failure..."""


class PlainTokenRefused(AdminClientError):
    """The admin token would have crossed the network in clear (nothing was sent)."""


@dataclass(frozen=True, slots=True)
class AdminTarget:
    scheme: Scheme
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return str(HostPort(self.host, self.port))

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.netloc}{path}"

    def __str__(self) -> str:
        return self.netloc if self.scheme == "http" else f"https://{self.netloc}"


@dataclass(frozen=True, slots=True)
class AdminReply:
    status: int
    body: Any  # the decoded JSON, or the text when the answer is not JSON


def advertised_address(admin: AdminConfig) -> str:
    """What this node puts in its election payload: ``https://host:port`` with
    admin.tls, else ``host:port`` (which every version reads as plain HTTP)."""
    return str(AdminTarget("https" if admin.tls is not None else "http",
                           admin.listen.host, admin.listen.port))  # fmt: skip


def parse_target(address: str) -> AdminTarget:
    """``host:port`` (plain HTTP), ``http://host:port`` or ``https://host:port``
    (IPv6 in brackets); raises AdminClientError."""
    scheme: Scheme = "http"
    rest = address.strip()
    if rest.startswith("https://"):
        scheme, rest = "https", rest.removeprefix("https://")
    elif rest.startswith("http://"):
        rest = rest.removeprefix("http://")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
    else:
        host, sep, port = rest.rpartition(":")
        if ":" in host:
            sep = ""
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AdminClientError(f"{address!r} is not an admin address (host:port or "
                               "https://host:port)")  # fmt: skip
    return AdminTarget(scheme, host, int(port))


def is_loopback(host: str) -> bool:
    """A literal loopback address (127.0.0.0/8, ::1, IPv4-mapped) or ``localhost``."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def token_may_travel(target: AdminTarget) -> bool:
    """The bearer token may be sent: over HTTPS, or to a loopback address."""
    return target.scheme == "https" or is_loopback(target.host)


def refusal(target: AdminTarget) -> str:
    return (f"not sending the admin token to {target.netloc} over plain HTTP (it would "
            "cross the network in clear): configure admin.tls in node.yaml on that node "
            "(it then advertises an https:// admin address) and on this one (the CA to "
            "trust, the client certificate to present)")  # fmt: skip


class AdminClient:
    """One HTTP session to admin APIs (``async with``). ``token``: sent only with
    :meth:`post`, and only where :func:`token_may_travel` allows."""

    def __init__(
        self, context: ssl.SSLContext, token: str | None = None, timeout: float = 3.0
    ) -> None:
        self._context = context
        self._token = token
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_node(
        cls, node: NodeConfig | None, token: str | None = None, timeout: float = 3.0
    ) -> AdminClient:
        """With the TLS settings of ``node.admin.tls`` (none: the system's CAs and no
        client certificate). Raises AdminClientError when they cannot be loaded."""
        tls = node.admin.tls if node is not None and node.admin is not None else None
        try:
            context = admin_client_context(tls)
        except CertificateError as exc:
            raise AdminClientError(str(exc)) from exc
        return cls(context, token, timeout)

    async def __aenter__(self) -> AdminClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            connector=aiohttp.TCPConnector(ssl=self._context),
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AdminClient used outside 'async with'")
        return self._session

    async def status(self, address: str, timeout: float | None = None) -> dict[str, Any]:
        """A node's GET /status, or ``{"error": ...}`` saying why there is none."""
        try:
            reply = await self.get(address, "/status", timeout)
        except AdminClientError as exc:
            return {"error": str(exc)}
        if reply.status != 200:
            return {"error": f"{address}: HTTP {reply.status}"}
        if not isinstance(reply.body, dict):
            return {"error": f"{address}: not a status document"}
        return reply.body

    async def get(self, address: str, path: str, timeout: float | None = None) -> AdminReply:
        """A read (no token). Raises AdminClientError."""
        return await self._request("GET", parse_target(address), path, {}, timeout, {})

    async def post(
        self,
        address: str,
        path: str,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> AdminReply:
        """A write with the bearer token. Raises PlainTokenRefused (nothing sent) when
        the token would travel in clear, AdminClientError when the node cannot be asked."""
        target = parse_target(address)
        if self._token is None:
            raise AdminClientError("no admin token: give --token-file or admin.token_file")
        if not token_may_travel(target):
            raise PlainTokenRefused(refusal(target))
        headers = {"Authorization": f"Bearer {self._token}"}
        return await self._request("POST", target, path, params or {}, timeout, headers)

    async def _request(
        self,
        method: str,
        target: AdminTarget,
        path: str,
        params: Mapping[str, str],
        timeout: float | None,
        headers: Mapping[str, str],
    ) -> AdminReply:
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        try:
            async with self._open().request(method, target.url(path), params=params,
                                            headers=headers, timeout=limit) as reply:  # fmt: skip
                text = await reply.text()
                try:
                    body: Any = await reply.json(content_type=None)
                except ValueError:
                    body = text
                return AdminReply(reply.status, body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise AdminClientError(f"{target}: {detail}") from exc
