"""The HTTP reverse-proxy request path for one frontend (``mode: http``).

One request goes through named phases, each a method below, over one
:class:`~node.proxy.http.context.RequestContext`:

1. ``_check_request``   framing, method and target checks; path, Host, WebSocket
2. ``_server_headers``  the header list for the server (hop-by-hop headers dropped,
                        client-certificate and X-Forwarded-* headers set)
3. ``_apply_rules``     redirect / deny (final), use_backend, set/del header
4. ``_tunnel``          a WebSocket upgrade: relay bytes both ways, or else
5. ``_send``            read the body, pick a server, send (retrying where safe)
6. ``_relay_response``  the response head and body back to the client
7. log                  ``handle``'s finally: meters and the access-log line

Errors are typed (node.proxy.errors) and answered in ``_answer_error``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from yarl import URL

from node.config.model import FrontendConfig
from node.proxy.accesslog import AccessLog
from node.proxy.errors import (
    BadRequest,
    BadResponse,
    ClientTimeout,
    ConnectFailed,
    Denied,
    NotImplementedCoding,
    ProxyError,
    ServerTimeout,
)
from node.proxy.http.body import ClientBodyError, request_body
from node.proxy.http.client import Client
from node.proxy.http.connection import ClientConnection, error_head
from node.proxy.http.context import HeaderList, RequestContext
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
from node.proxy.http.rules import RequestFacts, RuleVerdict, evaluate
from node.proxy.http.stream import pieces
from node.proxy.http.tunnel import open_tunnel
from node.proxy.session import Host
from node.proxy.upstream.connect import ConnectError
from node.proxy.upstream.exchange import (
    RequestBody,
    StaleConnection,
    UpstreamResponse,
)
from node.proxy.upstream.pool import BackendPool, Server, ServerSlot
from node.proxy.wire.chunked import LAST_CHUNK, chunk
from node.proxy.wire.proxyproto import encode as encode_proxy_header
from node.proxy.wire.trust import is_trusted
from node.tls.acme import CHALLENGE_PREFIX, key_authorization
from node.tls.material import FrontendTlsRuntime

log = logging.getLogger("floatgate.proxy")

_NO_BODY_STATUSES = frozenset({204, 304})
_PROBE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
# Client-certificate headers are floatgate's to set: whatever a client sends is removed.
CLIENT_CERT_HEADERS = frozenset(
    {b"x-ssl-client-verify", b"x-ssl-client-subject", b"x-ssl-client-issuer",
     b"x-ssl-client-sha256", b"x-ssl-client-cert"}
)  # fmt: skip
_DROP_UPSTREAM = frozenset({b"expect"}) | CLIENT_CERT_HEADERS
_DROP_DOWNSTREAM = frozenset({b"content-length"})
_PROTO_HTTP, _PROTO_HTTPS = b"http", b"https"


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """What one frontend does with a request (swapped whole on reload)."""

    frontend: FrontendConfig
    pool: BackendPool
    access: AccessLog
    tls: FrontendTlsRuntime | None = None
    pools: Mapping[str, BackendPool] = field(default_factory=dict)  # for use_backend
    probe_path: str = ""  # the node's own self-check request (node.proxy.selfcheck)
    acme_thumbprint: str | None = None  # answer ACME http-01 challenges (node.tls.acme)


class HttpHandler:
    def __init__(self, route: HttpRoute) -> None:
        self.route = route

    def new_protocol(self, listener: Host, proxied: tuple[str, int] | None) -> ClientConnection:
        return ClientConnection(listener, proxied)

    async def handle(self, conn: Client, message: RawRequestMessage, payload: StreamReader) -> bool:
        """Serve one request; True if the client connection may serve another."""
        route = self.route
        if route.probe_path and message.path == route.probe_path:
            conn.write(_PROBE_ANSWER)  # the node's self-check: answered here, not logged
            return False
        now = time.monotonic()
        ctx = RequestContext(
            conn, message, route.frontend.name, route.pool, conn.request_started or now, now
        )
        keep = not message.should_close
        try:
            keep = await self._serve(ctx, payload) and keep
        except ProxyError as exc:
            keep = self._answer_error(ctx, exc, keep)
        except ConnectionError:
            self._client_aborted(ctx)
            keep = False
        except asyncio.CancelledError:  # the client left while it waited (see connection)
            self._client_aborted(ctx)
            raise
        except Exception:
            major, minor = message.version
            log.exception("internal error while proxying %s %s HTTP/%d.%d",
                          message.method, message.path, major, minor)  # fmt: skip
            ctx.termination = "InternalError"
            ctx.status = 500
            if not ctx.response_started and conn.writable():
                conn.write(error_head(500, "Internal Server Error"))
            keep = False
        finally:
            ctx.finished = time.monotonic()
            route.access.write(ctx)
        return keep

    async def _serve(self, ctx: RequestContext, payload: StreamReader) -> bool:
        """The phases of one request, in order; True if the client connection may
        serve another request."""
        self._check_request(ctx)
        if self.route.acme_thumbprint and ctx.path.startswith(CHALLENGE_PREFIX):
            return self._answer_challenge(ctx, self.route.acme_thumbprint)
        self._server_headers(ctx)
        if self.route.frontend.rules and self._apply_rules(ctx):
            return self._redirect_sent(ctx)
        key = ctx.path if ctx.pool.config.balance == "uri" else (ctx.conn.remote or "")
        if ctx.websocket:
            return await self._tunnel(ctx, key)
        upstream, slot = await self._send(ctx, payload, key)
        complete = False
        try:
            complete = await self._relay_response(ctx, upstream)
        finally:
            reusable = complete and not ctx.one_shot
            slot.server.connections.release(upstream.protocol, reusable=reusable)
            slot.release()
        return complete and not ctx.one_shot

    # -- 1. request checks --------------------------------------------------------------

    def _check_request(self, ctx: RequestContext) -> None:
        conn, message = ctx.conn, ctx.message
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
        path = message.path
        ctx.path = path if path.startswith("/") else _origin_form(path)
        ctx.host = header_value(raw, b"host")
        # RFC 9110 section 7.8: Upgrade in an HTTP/1.0 request is ignored.
        ctx.websocket = conn.upgraded and is_websocket_upgrade(raw) and message.version >= (1, 1)

    def _answer_challenge(self, ctx: RequestContext, account_thumbprint: str) -> bool:
        """ACME http-01, before rules: ``token.thumbprint`` for any token (stateless, so
        whichever node holds the VIP answers for the order of any other), 404 for a
        path that is not a token. Only GET/HEAD; a body is refused by the caller."""
        token = ctx.path[len(CHALLENGE_PREFIX) :]
        answer = key_authorization(token, account_thumbprint)
        method = ctx.message.method
        if method not in ("GET", "HEAD"):
            status, answer = 405, b""
        else:
            status = 200 if answer is not None else 404
        body = answer or b""
        head = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(body)),
                (b"Cache-Control", b"no-store")]  # fmt: skip
        message = ctx.message
        bodiless = not message.chunked and (message.headers.get("Content-Length") or "0") == "0"
        keep = self._redirect_sent(ctx) and bodiless  # an unread body ends the connection
        if not keep:
            head.append((b"Connection", b"close"))
        ctx.status, ctx.termination, ctx.response_started = status, "AcmeChallenge", True
        phrase = HTTPStatus(status).phrase.encode()
        ctx.conn.write(serialize(b"HTTP/1.1 %d %b" % (status, phrase), head)
                       + (b"" if method == "HEAD" else body))  # fmt: skip
        return keep

    # -- 2. headers for the server ------------------------------------------------------

    def _server_headers(self, ctx: RequestContext) -> None:
        conn, raw = ctx.conn, ctx.message.raw_headers
        route, frontend = self.route, self.route.frontend
        headers = end_to_end(raw, _DROP_UPSTREAM)
        if route.tls is not None and route.tls.client_auth:
            headers += conn.client_cert_headers(route.tls.config.client_auth)
        if ctx.websocket:  # Connection and Upgrade are the point of this request
            headers += [
                (b"Connection", b"Upgrade"),
                (b"Upgrade", header_value(raw, b"upgrade") or b""),
            ]
        if frontend.forwardfor.enabled:
            trusted = is_trusted(conn.remote, frontend.forwardfor.trusted)
            proto = _PROTO_HTTPS if conn.ssl_object is not None else _PROTO_HTTP
            add_forwarded(headers, conn.remote, proto, ctx.host, trusted)
        ctx.headers = headers

    # -- 3. rules -----------------------------------------------------------------------

    def _apply_rules(self, ctx: RequestContext) -> bool:
        """Run the frontend's rules: True when a redirect was decided (and written);
        a deny raises; use_backend and header rules change the context."""
        frontend = self.route.frontend
        verdict = evaluate(frontend.rules, _facts(ctx))
        log.debug("%s %s: %s", frontend.name, ctx.path, verdict.reason)
        if verdict.action == "redirect":
            self._write_redirect(ctx, verdict)
            return True
        if verdict.action == "deny":
            raise Denied(verdict.status, verdict.reason)
        if verdict.backend is not None:
            ctx.pool = self.route.pools[verdict.backend]
        _apply_header_rules(ctx.headers, verdict)
        return False

    def _write_redirect(self, ctx: RequestContext, verdict: RuleVerdict) -> None:
        ctx.status, ctx.termination = verdict.status, "Redirect"
        head = [(b"Location", verdict.location.encode("latin-1", "replace")),
                (b"Content-Length", b"0")]  # fmt: skip
        if not self._redirect_sent(ctx):
            head.append((b"Connection", b"close"))
        phrase = HTTPStatus(verdict.status).phrase.encode()
        ctx.response_started = True
        ctx.conn.write(serialize(b"HTTP/1.1 %d %b" % (verdict.status, phrase), head))

    @staticmethod
    def _redirect_sent(ctx: RequestContext) -> bool:
        """After a redirect: may the client connection carry another request?"""
        return not ctx.message.should_close and not ctx.conn.closing

    # -- 4. WebSocket -------------------------------------------------------------------

    async def _tunnel(self, ctx: RequestContext, key: str) -> bool:
        pool, message, conn = ctx.pool, ctx.message, ctx.conn
        assert isinstance(conn, ClientConnection)  # an upgrade is HTTP/1.1's
        async with await pool.acquire(key) as slot:
            server = slot.server
            ctx.server = server.name
            head = serialize(f"{message.method} {ctx.path} HTTP/1.1".encode("latin-1"),
                             ctx.headers)  # fmt: skip
            try:
                ctx.response_started = True
                ctx.status, ctx.bytes_out = await open_tunnel(
                    conn, server.config.address, head, pool.config.timeouts, pool.tls,
                    _proxy_preamble(pool, conn),
                )  # fmt: skip
            except ConnectError as exc:
                ctx.response_started = False
                pool.connect_failed(server, str(exc))
                raise ConnectFailed(f"{pool.name}/{server.name}: {exc}") from exc
            except ProxyError:
                ctx.response_started = False
                raise
        return False

    # -- 5. pick a server and send --------------------------------------------------------

    async def _send(
        self, ctx: RequestContext, payload: StreamReader, key: str
    ) -> tuple[UpstreamResponse, ServerSlot]:
        """Send the request to a server (retrying where that is safe); returns the
        response head and the slot it holds, which the caller releases."""
        conn, message, pool, headers = ctx.conn, ctx.message, ctx.pool, ctx.headers
        # A PROXY header names one client: such a server connection is never shared.
        preamble = _proxy_preamble(pool, conn)
        ctx.one_shot = (
            is_ambiguous(message.method, message.raw_headers) or conn.upgraded or (bool(preamble))
        )
        body = await request_body(conn, message, payload)
        if body.chunked:
            headers.append((b"Transfer-Encoding", b"chunked"))
        if ctx.host is None:  # HTTP/1.0 without Host: HTTP/1.1 to the server requires one
            headers.append((b"Host", b"%b" % str(pool.servers[0].config.address).encode()))
        head = serialize(f"{message.method} {ctx.path} HTTP/1.1".encode("latin-1"), headers)
        # Ambiguous requests reach a server at most once, whatever their method.
        replayable = (
            message.method in IDEMPOTENT_METHODS and body.stream is None and not ctx.one_shot
        )
        return await self._exchange(ctx, head, body, replayable, key, preamble)

    async def _exchange(
        self,
        ctx: RequestContext,
        head: bytes,
        body: RequestBody,
        replayable: bool,
        key: str,
        preamble: bytes,
    ) -> tuple[UpstreamResponse, ServerSlot]:
        pool, method = ctx.pool, ctx.message.method
        exclude: Server | None = None
        attempt = 0
        fresh = False
        while True:
            queued = time.monotonic()
            slot = await pool.acquire(key, exclude)
            server = slot.server
            ctx.wait_queue += time.monotonic() - queued
            ctx.server = server.name
            sent = time.monotonic()
            try:
                upstream = await server.connections.exchange(
                    method, head, body, fresh=fresh, preamble=preamble
                )
            except BaseException as exc:
                slot.release()
                ctx.retries = attempt
                retry = self._after_failure(exc, pool, server, replayable, fresh, attempt)
                if retry == "fresh":
                    fresh = True
                    continue
                attempt += 1
                exclude = server if retry == "other" else exclude
                continue
            pool.connect_succeeded(server)
            ctx.connect = upstream.connect_seconds
            ctx.response = time.monotonic() - sent - ctx.connect
            ctx.retries = attempt
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

    # -- 6. the response ------------------------------------------------------------------

    async def _relay_response(self, ctx: RequestContext, upstream: UpstreamResponse) -> bool:
        """Send the response; True when it was relayed whole and the client connection
        can carry another request."""
        conn, message = ctx.conn, ctx.message
        status = upstream.status
        ctx.status = status
        no_body = message.method == "HEAD" or status in _NO_BODY_STATUSES or status < 200
        headers = end_to_end(upstream.raw_headers, _DROP_DOWNSTREAM)
        length = upstream.content_length
        chunked = False
        keep = not message.should_close and not conn.closing and not ctx.one_shot
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
        ctx.response_started = True
        if no_body:
            conn.write(head)
            return keep
        payload = upstream.payload
        try:
            if payload.is_eof():  # the whole (small) body is here: one write
                data = payload.read_nowait(-1)
                ctx.bytes_out = len(data)
                conn.write(head + (chunk(data) + LAST_CHUNK if chunked else data))
                return keep
            conn.write(head)
            async for data in pieces(payload):
                conn.write(chunk(data) if chunked else data)
                ctx.bytes_out += len(data)
                await conn.drain()
            if chunked:
                conn.write(LAST_CHUNK)
        except (
            aiohttp.ClientPayloadError,
            aiohttp.ServerTimeoutError,
            aiohttp.ClientOSError,
        ) as exc:
            # Headers are gone already: the only honest signal left is to cut the
            # client connection so it sees a truncated response.
            ctx.termination = f"ServerAbort: {type(exc).__name__}"
            conn.abort()
            return False
        return keep and payload.is_eof()

    # -- errors -----------------------------------------------------------------------------

    def _answer_error(self, ctx: RequestContext, exc: ProxyError, keep: bool) -> bool:
        """Answer a typed error with its status when nothing was sent yet; True if the
        client connection may go on."""
        conn, message = ctx.conn, ctx.message
        ctx.termination = type(exc).__name__
        ctx.status = exc.status
        log.debug("%s %s: %s", self.route.frontend.name, message.path, exc)
        keep = keep and exc.status not in (400, 408, 501) and not ctx.one_shot
        if not conn.writable():
            self._client_aborted(ctx)  # nobody is left to answer
            return False
        if ctx.bytes_out == 0 and not ctx.response_started:
            head_only = message.method == "HEAD"
            conn.write(error_head(exc.status, exc.message, close=not keep, head_only=head_only))
            return keep
        return False

    def _client_aborted(self, ctx: RequestContext) -> None:
        ctx.termination = "ClientAborted"
        self.route.access.meters.frontend(self.route.frontend.name).client_aborts += 1


def _facts(ctx: RequestContext) -> RequestFacts:
    conn = ctx.conn
    only_path, _, query = ctx.path.partition("?")
    host_text = (ctx.host or b"").decode("latin-1").lower()
    if host_text.startswith("["):
        host_text = host_text.split("]", 1)[0] + "]"
    else:
        host_text = host_text.rsplit(":", 1)[0] if ":" in host_text else host_text
    ssl_object = conn.ssl_object
    return RequestFacts(
        method=ctx.message.method,
        path=only_path,
        query=query,
        host=host_text,
        src=conn.remote or "",
        sni=(ssl_object.server_hostname or "").lower() if ssl_object is not None else "",
        identity=conn.identity(),
    )


def _proxy_preamble(pool: BackendPool, conn: Client) -> bytes:
    version = pool.config.send_proxy
    return encode_proxy_header(version, conn.peer, conn.local) if version else b""


def _apply_header_rules(headers: HeaderList, verdict: RuleVerdict) -> None:
    for name in verdict.del_headers:
        lower = name.lower().encode()
        headers[:] = [(n, v) for n, v in headers if n.lower() != lower]
    for name, value in verdict.set_headers:
        lower = name.lower().encode()
        headers[:] = [(n, v) for n, v in headers if n.lower() != lower]
        headers.append((name.encode(), value.encode("latin-1", "replace")))


def _origin_form(target: str) -> str:
    """Absolute-form request targets (``GET http://h/p``) are forwarded in origin form."""
    url = URL(target, encoded=True)
    if not url.is_absolute():
        raise BadRequest(f"unsupported request target {target[:60]!r}")
    return url.raw_path_qs or "/"
