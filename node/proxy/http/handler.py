"""The HTTP reverse-proxy request path for one frontend (``mode: http``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from yarl import URL

from node.config.model import FrontendConfig
from node.proxy.accesslog import AccessEntry, AccessLog
from node.proxy.errors import (
    BadResponse,
    ClientTimeout,
    ConnectFailed,
    ProxyError,
    ServerTimeout,
)
from node.proxy.http.connection import ClientConnection, error_head
from node.proxy.http.headers import (
    IDEMPOTENT_METHODS,
    UnsupportedCoding,
    add_forwarded,
    end_to_end,
    framing_problem,
    header_value,
    is_ambiguous,
    is_websocket_upgrade,
    serialize,
)
from node.proxy.http.rules import Decision, RequestFacts, evaluate
from node.proxy.http.tunnel import open_tunnel
from node.proxy.session import Host
from node.proxy.upstream.exchange import (
    ConnectError,
    RequestBody,
    StaleConnection,
    UpstreamResponse,
)
from node.proxy.upstream.pool import BackendPool, Server, ServerSlot
from node.proxy.wire.proxyproto import encode as encode_proxy_header
from node.proxy.wire.trust import is_trusted
from node.tls.material import FrontendTlsRuntime

log = logging.getLogger("floatgate.proxy")

_NO_BODY_STATUSES = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PROBE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
# Client-certificate headers are floatgate's to set: whatever a client sends is removed.
CLIENT_CERT_HEADERS = frozenset(
    {b"x-ssl-client-verify", b"x-ssl-client-subject", b"x-ssl-client-issuer",
     b"x-ssl-client-sha256", b"x-ssl-client-cert"}
)  # fmt: skip
_DROP_UPSTREAM = frozenset({b"expect"}) | CLIENT_CERT_HEADERS
_DROP_DOWNSTREAM = frozenset({b"content-length"})
_BUFFER_BODY = 65536  # request bodies up to this size are read whole before sending
_PROTO_HTTP, _PROTO_HTTPS = b"http", b"https"
_KNOWN_STATUSES = frozenset(s.value for s in HTTPStatus)


class BadRequest(ProxyError):
    status = 400
    message = "Bad Request"


class Denied(ProxyError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = HTTPStatus(status).phrase if status in _KNOWN_STATUSES else "Denied"


class NotImplementedCoding(ProxyError):
    status = 501
    message = "Not Implemented: only the chunked transfer coding is supported"


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """What one frontend does with a request (swapped whole on reload)."""

    frontend: FrontendConfig
    pool: BackendPool
    access: AccessLog
    tls: FrontendTlsRuntime | None = None
    pools: Mapping[str, BackendPool] = field(default_factory=dict)  # for use_backend
    probe_path: str = ""  # the node's own self-check request (node.proxy.selfcheck)


class ClientBodyError(Exception):
    """Reading the client's request body failed (malformed chunk, client gone)."""


class HttpHandler:
    def __init__(self, route: HttpRoute) -> None:
        self.route = route

    def new_protocol(self, listener: Host, proxied: tuple[str, int] | None) -> ClientConnection:
        return ClientConnection(listener, proxied)

    async def handle(
        self, conn: ClientConnection, message: RawRequestMessage, payload: StreamReader
    ) -> bool:
        """Serve one request; True if the client connection may serve another."""
        route = self.route
        if route.probe_path and message.path == route.probe_path:
            conn.write(_PROBE_ANSWER)  # the node's self-check: answered here, not logged
            return False
        major, minor = message.version
        entry = AccessEntry(
            started=conn.request_started or time.monotonic(),
            headers_done=time.monotonic(),
            client=conn.remote or "-",
            frontend=route.frontend.name,
            backend=route.pool.name,
            request_line=f"{message.method} {message.path} HTTP/{major}.{minor}",
        )
        keep = not message.should_close
        try:
            keep = await self._proxy(conn, message, payload, route, entry) and keep
        except ProxyError as exc:
            entry.termination = type(exc).__name__
            entry.status = exc.status
            log.debug("%s %s: %s", route.frontend.name, message.path, exc)
            keep = keep and exc.status not in (400, 408, 501) and not entry.close_client
            if conn.transport is None or conn.transport.is_closing():
                entry.termination = "ClientAborted"  # nobody is left to answer
                route.access.meters.frontend(route.frontend.name).client_aborts += 1
                keep = False
            elif entry.bytes_out == 0 and not entry.response_started:
                head_only = message.method == "HEAD"
                conn.write(error_head(exc.status, exc.message, close=not keep, head_only=head_only))
            else:
                keep = False
        except ConnectionError:
            entry.termination = "ClientAborted"
            route.access.meters.frontend(route.frontend.name).client_aborts += 1
            keep = False
        except asyncio.CancelledError:  # the client left while it waited (see connection)
            entry.termination = "ClientAborted"
            route.access.meters.frontend(route.frontend.name).client_aborts += 1
            raise
        except Exception:
            log.exception("internal error while proxying %s", entry.request_line)
            entry.termination = "InternalError"
            entry.status = 500
            if not entry.response_started and conn.transport is not None:
                conn.write(error_head(500, "Internal Server Error"))
            keep = False
        finally:
            entry.finished = time.monotonic()
            route.access.write(entry)
        return keep

    async def _proxy(
        self,
        conn: ClientConnection,
        message: RawRequestMessage,
        payload: StreamReader,
        route: HttpRoute,
        entry: AccessEntry,
    ) -> bool:
        raw = message.raw_headers
        try:
            problem = framing_problem(raw, message.version)
        except UnsupportedCoding as exc:
            raise NotImplementedCoding(str(exc)) from exc
        if problem is not None:
            raise BadRequest(problem)
        if message.method == "CONNECT":
            raise BadRequest("CONNECT is not supported")
        if conn.upgraded and (
            message.chunked or (message.headers.get("Content-Length") or "0") != "0"
        ):
            # What follows an upgrade request belongs to the new protocol: a body here is
            # unframeable (a WebSocket handshake is a GET without one, RFC 6455 4.1).
            raise BadRequest("an upgrade request with a body")
        frontend, pool = route.frontend, route.pool
        path = message.path
        if not path.startswith("/"):
            path = _origin_form(path)
        host = header_value(raw, b"host")
        # RFC 9110 section 7.8: Upgrade in an HTTP/1.0 request is ignored.
        websocket = conn.upgraded and is_websocket_upgrade(raw) and message.version >= (1, 1)
        headers = end_to_end(raw, _DROP_UPSTREAM)
        if route.tls is not None and route.tls.client_auth:
            headers += conn.client_cert_headers(route.tls.config.client_auth)
        if websocket:  # Connection and Upgrade are the point of this request
            headers += [
                (b"Connection", b"Upgrade"),
                (b"Upgrade", header_value(raw, b"upgrade") or b""),
            ]
        if frontend.forwardfor.enabled:
            trusted = is_trusted(conn.remote, frontend.forwardfor.trusted)
            proto = _PROTO_HTTPS if conn.ssl_object is not None else _PROTO_HTTP
            add_forwarded(headers, conn.remote, proto, host, trusted)
        if frontend.rules:
            decision = evaluate(frontend.rules, _facts(conn, message, path, host))
            log.debug("%s %s: %s", frontend.name, path, decision.reason)
            if decision.action == "redirect":
                return self._redirect(conn, message, decision, entry)
            if decision.action == "deny":
                raise Denied(decision.status, decision.reason)
            if decision.backend is not None:
                pool = route.pools[decision.backend]
                entry.backend = pool.name
            _apply_header_rules(headers, decision)
        key = path if pool.config.balance == "uri" else (conn.remote or "")
        if websocket:
            return await self._tunnel(conn, message, path, headers, pool, key, entry)
        # A PROXY header names one client: such a server connection is never shared.
        preamble = _proxy_preamble(pool, conn)
        one_shot = is_ambiguous(message.method, raw) or conn.upgraded or bool(preamble)
        entry.close_client = one_shot
        body = await self._request_body(conn, message, payload)
        if body.chunked:
            headers.append((b"Transfer-Encoding", b"chunked"))
        if host is None:  # HTTP/1.0 without Host: HTTP/1.1 to the server requires one
            headers.append((b"Host", b"%b" % str(pool.servers[0].config.address).encode()))
        head = serialize(f"{message.method} {path} HTTP/1.1".encode("latin-1"), headers)
        # Ambiguous requests reach a server at most once, whatever their method.
        replayable = message.method in IDEMPOTENT_METHODS and body.stream is None and not one_shot
        upstream, slot = await self._send(
            pool, message.method, head, body, replayable, key, entry, preamble
        )
        complete = False
        try:
            complete = await self._relay_response(conn, message, upstream, entry)
        finally:
            slot.server.connections.release(upstream.protocol, reusable=complete and not one_shot)
            slot.release()
        return complete and not one_shot

    def _redirect(
        self,
        conn: ClientConnection,
        message: RawRequestMessage,
        decision: Decision,
        entry: AccessEntry,
    ) -> bool:
        keep = not message.should_close and not conn.closing
        entry.status, entry.termination = decision.status, "Redirect"
        head = [(b"Location", decision.location.encode("latin-1", "replace")),
                (b"Content-Length", b"0")]  # fmt: skip
        if not keep:
            head.append((b"Connection", b"close"))
        phrase = HTTPStatus(decision.status).phrase.encode()
        entry.response_started = True
        conn.write(serialize(b"HTTP/1.1 %d %b" % (decision.status, phrase), head))
        return keep

    async def _tunnel(
        self,
        conn: ClientConnection,
        message: RawRequestMessage,
        path: str,
        headers: list[tuple[bytes, bytes]],
        pool: BackendPool,
        key: str,
        entry: AccessEntry,
    ) -> bool:
        async with await pool.acquire(key) as slot:
            server = slot.server
            entry.server = server.name
            head = serialize(f"{message.method} {path} HTTP/1.1".encode("latin-1"), headers)
            address = (server.config.address.host, server.config.address.port)
            try:
                entry.response_started = True
                entry.status, entry.bytes_out = await open_tunnel(
                    conn, address, _proxy_preamble(pool, conn) + head, pool.config.timeouts,
                    pool.tls,
                )  # fmt: skip
            except ConnectError as exc:
                entry.response_started = False
                pool.connect_failed(server, str(exc))
                raise ConnectFailed(f"{pool.name}/{server.name}: {exc}") from exc
            except ProxyError:
                entry.response_started = False
                raise
        return False

    async def _request_body(
        self, conn: ClientConnection, message: RawRequestMessage, payload: StreamReader
    ) -> RequestBody:
        if payload.is_eof() and payload.exception() is None:  # no body, or all of it is here
            data = payload.read_nowait(-1)
            if message.chunked:
                return RequestBody(data=_frame(data, True) + b"0\r\n\r\n", chunked=True)
            return RequestBody(data=data)
        expect = header_value(message.raw_headers, b"expect")
        if expect is not None and expect.lower() == b"100-continue" and message.version >= (1, 1):
            conn.write(_CONTINUE)
        length = message.headers.get("Content-Length")
        try:
            if length is not None:
                if int(length) <= _BUFFER_BODY:  # small: read whole, sent with the head
                    return RequestBody(data=await payload.readexactly(int(length)))
                return RequestBody(stream=_client_body(b"", payload))
            # Chunked: parse what has already arrived before any server is contacted, so
            # a malformed chunk in the first segment is refused with nothing forwarded.
            first = await payload.readany()
        except ClientTimeout:
            raise
        except Exception as exc:
            raise BadRequest(f"request body: {exc}") from exc
        if payload.is_eof():
            return RequestBody(data=_frame(first, True) + b"0\r\n\r\n", chunked=True)
        return RequestBody(stream=_client_body(first, payload), chunked=True)

    async def _send(
        self,
        pool: BackendPool,
        method: str,
        head: bytes,
        body: RequestBody,
        replayable: bool,
        key: str,
        entry: AccessEntry,
        preamble: bytes = b"",
    ) -> tuple[UpstreamResponse, ServerSlot]:
        """Send the request to a server (retrying where that is safe); returns the
        response head and the slot it holds, which the caller releases."""
        exclude: Server | None = None
        attempt = 0
        fresh = False
        while True:
            queued = time.monotonic()
            slot = await pool.acquire(key, exclude)
            server = slot.server
            entry.wait_queue += time.monotonic() - queued
            entry.server = server.name
            sent = time.monotonic()
            try:
                upstream = await server.connections.exchange(
                    method, head, body, fresh=fresh, preamble=preamble
                )
            except BaseException as exc:
                slot.release()
                entry.retries = attempt
                retry = self._after_failure(exc, pool, server, replayable, fresh, attempt)
                if retry == "fresh":
                    fresh = True
                    continue
                attempt += 1
                exclude = server if retry == "other" else exclude
                continue
            pool.connect_succeeded(server)
            entry.connect = upstream.connect_seconds
            entry.response = time.monotonic() - sent - entry.connect
            entry.retries = attempt
            return upstream, slot

    @staticmethod
    def _after_failure(
        exc: BaseException,
        pool: BackendPool,
        server: Server,
        replayable: bool,
        fresh: bool,
        attempt: int,
    ) -> str:
        """What to do after a failed exchange: "other" (retry on another server),
        "same" (retry), "fresh" (replay on a new connection), or raise the error the
        client is answered with."""
        retries = pool.config.retries
        where = f"{pool.name}/{server.name}"
        if isinstance(exc, ConnectError):
            pool.connect_failed(server, str(exc))
            if attempt < retries:
                return "other"
            raise ConnectFailed(f"{where}: {exc}") from exc
        if isinstance(exc, StaleConnection):
            if replayable and not fresh:  # the server closed an idle connection
                return "fresh"
            raise BadResponse(f"{where}: {exc}") from exc
        if isinstance(exc, ClientBodyError):
            if isinstance(exc.__cause__, ClientTimeout | ConnectionError):
                raise exc.__cause__
            raise BadRequest(f"request body: {exc.__cause__!r}") from exc
        if isinstance(exc, aiohttp.SocketTimeoutError | TimeoutError):
            raise ServerTimeout(f"{where}: {exc or 'no progress'}") from exc
        if isinstance(exc, aiohttp.ClientError | ConnectionError | HttpProcessingError):
            if replayable and attempt < retries:
                return "same"
            raise BadResponse(f"{where}: {exc!r}") from exc
        raise exc

    async def _relay_response(
        self,
        conn: ClientConnection,
        message: RawRequestMessage,
        upstream: UpstreamResponse,
        entry: AccessEntry,
    ) -> bool:
        """Send the response; True when it was relayed whole and the client connection
        can carry another request."""
        status = upstream.status
        entry.status = status
        no_body = message.method == "HEAD" or status in _NO_BODY_STATUSES or status < 200
        headers = end_to_end(upstream.raw_headers, _DROP_DOWNSTREAM)
        length = upstream.content_length
        chunked = False
        keep = not message.should_close and not conn.closing and not entry.close_client
        if no_body:
            if length is not None and status not in _NO_BODY_STATUSES:
                headers.append((b"Content-Length", b"%d" % length))
        elif length is not None:
            headers.append((b"Content-Length", b"%d" % length))
        elif message.version >= (1, 1):
            chunked = True
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:
            keep = False  # HTTP/1.0 without a length: the end of the body is the close
        if not keep:
            headers.append((b"Connection", b"close"))
        elif message.version < (1, 1):
            headers.append((b"Connection", b"keep-alive"))
        reason = upstream.reason.encode("latin-1", "replace") or b"-"
        head = serialize(b"HTTP/1.1 %d %b" % (status, reason), headers)
        entry.response_started = True
        if no_body:
            conn.write(head)
            return keep
        payload = upstream.payload
        try:
            if payload.is_eof():  # the whole (small) body is here: one write
                data = payload.read_nowait(-1)
                entry.bytes_out = len(data)
                conn.write(head + _frame(data, chunked) + (b"0\r\n\r\n" if chunked else b""))
                return keep
            conn.write(head)
            async for chunk in payload.iter_any():
                conn.write(_frame(chunk, chunked))
                entry.bytes_out += len(chunk)
                await conn.drain()
            if chunked:
                conn.write(b"0\r\n\r\n")
        except (
            aiohttp.ClientPayloadError,
            aiohttp.ServerTimeoutError,
            aiohttp.ClientOSError,
        ) as exc:
            # Headers are gone already: the only honest signal left is to cut the
            # client connection so it sees a truncated response.
            entry.termination = f"ServerAbort: {type(exc).__name__}"
            conn.abort()
            return False
        return keep and payload.is_eof()


def _facts(conn: ClientConnection, message: RawRequestMessage, path: str,
           host: bytes | None) -> RequestFacts:  # fmt: skip
    only_path, _, query = path.partition("?")
    host_text = (host or b"").decode("latin-1").lower()
    if host_text.startswith("["):
        host_text = host_text.split("]", 1)[0] + "]"
    else:
        host_text = host_text.rsplit(":", 1)[0] if ":" in host_text else host_text
    ssl_object = conn.ssl_object
    return RequestFacts(
        method=message.method,
        path=only_path,
        query=query,
        host=host_text,
        src=conn.remote or "",
        sni=(ssl_object.server_hostname or "").lower() if ssl_object is not None else "",
        identity=conn.identity(),
    )


def _proxy_preamble(pool: BackendPool, conn: ClientConnection) -> bytes:
    version = pool.config.send_proxy
    return encode_proxy_header(version, conn.peer, conn.local) if version else b""


def _apply_header_rules(headers: list[tuple[bytes, bytes]], decision: Decision) -> None:
    for name in decision.del_headers:
        lower = name.lower().encode()
        headers[:] = [(n, v) for n, v in headers if n.lower() != lower]
    for name, value in decision.set_headers:
        lower = name.lower().encode()
        headers[:] = [(n, v) for n, v in headers if n.lower() != lower]
        headers.append((name.encode(), value.encode("latin-1", "replace")))


def _frame(data: bytes, chunked: bool) -> bytes:
    if not chunked or not data:
        return data
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _client_body(first: bytes, content: StreamReader) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in content.iter_any():
            yield chunk
    except Exception as exc:
        raise ClientBodyError(type(exc).__name__) from exc


def _origin_form(target: str) -> str:
    """Absolute-form request targets (``GET http://h/p``) are forwarded in origin form."""
    url = URL(target, encoded=True)
    if not url.is_absolute():
        raise BadRequest(f"unsupported request target {target[:60]!r}")
    return url.raw_path_qs or "/"
