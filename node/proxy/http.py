"""The HTTP reverse-proxy request path for one frontend (``mode: http``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from node.config.model import FrontendConfig
from node.proxy.accesslog import AccessEntry, AccessLog
from node.proxy.errors import BadResponse, ConnectFailed, ProxyError, ServerTimeout
from node.proxy.headers import (
    IDEMPOTENT_METHODS,
    UnsupportedCoding,
    add_forwarded,
    end_to_end,
    framing_problem,
    is_ambiguous,
    is_trusted,
    is_websocket_upgrade,
)
from node.proxy.pool import BackendPool, Server
from node.proxy.upstream import (
    ConnectError,
    RequestBody,
    StaleConnection,
    UpstreamResponse,
    request_head,
)
from node.proxy.websocket import relay_websocket

log = logging.getLogger("floatgate.proxy")

_NO_BODY_STATUSES = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DROP_UPSTREAM = ("expect",)
_DROP_DOWNSTREAM = ("content-length",)
_BUFFER_BODY = 65536  # request bodies up to this size are read whole before sending


class BadRequest(ProxyError):
    status = 400
    message = "Bad Request"


class NotImplementedCoding(ProxyError):
    status = 501
    message = "Not Implemented: only the chunked transfer coding is supported"


def plain_response(status: int, message: str, close: bool = False) -> web.Response:
    response = web.Response(status=status, text=message + "\n", content_type="text/plain")
    if close:
        response.force_close()
    return response


@dataclass(frozen=True, slots=True)
class Route:
    """What one frontend does with a request (swapped whole on reload)."""

    frontend: FrontendConfig
    pool: BackendPool
    access: AccessLog


class HttpProxy:
    def __init__(self, route: Route) -> None:
        self.route = route

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self.route
        conn: Any = request.protocol
        major, minor = request.version
        entry = AccessEntry(
            started=getattr(conn, "request_started", None) or time.monotonic(),
            headers_done=time.monotonic(),
            client=request.remote or "-",
            frontend=route.frontend.name,
            backend=route.pool.name,
            request_line=f"{request.method} {request.raw_path} HTTP/{major}.{minor}",
        )
        response: web.StreamResponse | None = None
        try:
            response = await self._proxy(request, route, entry)
        except ProxyError as exc:
            entry.termination = type(exc).__name__
            log.debug("%s %s: %s", route.frontend.name, request.raw_path, exc)
            response = plain_response(exc.status, exc.message, close=exc.status in (400, 501))
        except (ConnectionError, asyncio.CancelledError):
            entry.termination = "ClientAborted"
            raise
        except Exception:
            log.exception("internal error while proxying %s", entry.request_line)
            entry.termination = "InternalError"
            response = plain_response(500, "Internal Server Error", close=True)
        finally:
            entry.finished = time.monotonic()
            if response is not None:
                if entry.close_client:
                    response.force_close()
                if entry.status == 0:
                    entry.status = response.status
            route.access.write(entry)
        return response

    async def _proxy(
        self, request: web.BaseRequest, route: Route, entry: AccessEntry
    ) -> web.StreamResponse:
        try:
            problem = framing_problem(request.raw_headers, request.version)
        except UnsupportedCoding as exc:
            raise NotImplementedCoding(str(exc)) from exc
        if problem is not None:
            raise BadRequest(problem)
        frontend, pool = route.frontend, route.pool
        path = request.raw_path
        if not path.startswith("/"):
            path = _origin_form(path)
        headers = end_to_end(request.raw_headers, _DROP_UPSTREAM)
        if frontend.forwardfor.enabled:
            trusted = is_trusted(request.remote, frontend.forwardfor.trusted)
            add_forwarded(headers, request.remote, "http", request.host, trusted)
        key = path if pool.config.balance == "uri" else (request.remote or "")
        if is_websocket_upgrade(request.raw_headers):
            server = await pool.acquire(key)
            entry.server = server.name
            try:
                entry.status = 101
                return await relay_websocket(request, pool, server, path, headers)
            finally:
                pool.release(server)
        one_shot = is_ambiguous(request.method, request.raw_headers)
        entry.close_client = one_shot
        body = await self._request_body(request)
        if body.chunked:
            headers["Transfer-Encoding"] = "chunked"
        head = request_head(request.method, path, headers.items())
        replayable = request.method in IDEMPOTENT_METHODS and body.stream is None
        upstream, server = await self._send(
            pool, request.method, head, body, replayable, key, entry
        )
        complete = False
        try:
            response, complete = await self._relay_response(request, upstream, entry)
            return response
        finally:
            server.connections.release(upstream.protocol, reusable=complete and not one_shot)
            pool.release(server)

    async def _request_body(self, request: web.BaseRequest) -> RequestBody:
        if not request.body_exists:
            return RequestBody()
        if (
            request.version >= (1, 1)
            and request.headers.get("Expect", "").lower() == "100-continue"
        ):
            assert request.transport is not None
            request.transport.write(_CONTINUE)
        content = request.content
        length = request.content_length
        try:
            if length is not None:
                if length <= _BUFFER_BODY:  # small: read whole, send with the head, replayable
                    return RequestBody(data=await content.readexactly(length))
                return RequestBody(stream=_client_body(b"", content))
            # Chunked: parse what has already arrived before any server is contacted, so
            # a malformed chunk in the first segment is refused with nothing forwarded.
            first = await content.readany()
        except Exception as exc:
            raise BadRequest(f"request body: {exc}") from exc
        return RequestBody(stream=_client_body(first, content), chunked=True)

    async def _send(
        self,
        pool: BackendPool,
        method: str,
        head: bytes,
        body: RequestBody,
        replayable: bool,
        key: str,
        entry: AccessEntry,
    ) -> tuple[UpstreamResponse, Server]:
        retries = pool.config.retries
        exclude: Server | None = None
        attempt = 0
        fresh = False
        while True:
            queued = time.monotonic()
            server = await pool.acquire(key, exclude)
            entry.wait_queue += time.monotonic() - queued
            entry.server = server.name
            sent = time.monotonic()
            try:
                upstream = await server.connections.exchange(method, head, body, fresh=fresh)
            except ConnectError as exc:
                pool.release(server)
                pool.connect_failed(server, str(exc))
                entry.retries = attempt
                if attempt < retries:
                    attempt += 1
                    exclude = server
                    continue
                raise ConnectFailed(f"{pool.name}/{server.name}: {exc}") from exc
            except StaleConnection as exc:
                pool.release(server)
                if replayable and not fresh:  # the server closed an idle connection
                    fresh = True
                    continue
                raise BadResponse(f"{pool.name}/{server.name}: {exc}") from exc
            except ClientBodyError as exc:
                pool.release(server)
                raise BadRequest(f"request body: {exc.__cause__}") from exc
            except aiohttp.SocketTimeoutError as exc:
                pool.release(server)
                raise ServerTimeout(f"{pool.name}/{server.name}: {exc}") from exc
            except (aiohttp.ClientError, ConnectionError) as exc:
                pool.release(server)
                if replayable and attempt < retries:
                    attempt += 1
                    continue
                raise BadResponse(f"{pool.name}/{server.name}: {exc!r}") from exc
            pool.connect_succeeded(server)
            entry.connect = upstream.connect_seconds
            entry.response = time.monotonic() - sent - entry.connect
            entry.retries = attempt
            return upstream, server

    async def _relay_response(
        self, request: web.BaseRequest, upstream: UpstreamResponse, entry: AccessEntry
    ) -> tuple[web.StreamResponse, bool]:
        """Send the response; True when the server's response was read to its end."""
        response = _BufferedResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(end_to_end(upstream.raw_headers, _DROP_DOWNSTREAM))
        entry.status = upstream.status
        no_body = request.method == "HEAD" or upstream.status in _NO_BODY_STATUSES
        if upstream.content_length is not None and upstream.status not in _NO_BODY_STATUSES:
            response.content_length = upstream.content_length
        elif no_body:
            response.content_length = None
        await response.prepare(request)
        if not no_body:
            try:
                async for chunk in upstream.payload.iter_any():
                    await response.write(chunk)
                    entry.bytes_out += len(chunk)
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ServerTimeoutError,
                aiohttp.ClientOSError,
            ) as exc:
                # Headers are gone already: the only honest signal left is to cut the
                # client connection so it sees a truncated response.
                entry.termination = f"ServerAbort: {type(exc).__name__}"
                if request.transport is not None:
                    request.transport.abort()
                return response, False
        await response.write_eof()
        return response, upstream.payload.is_eof()


class _BufferedResponse(web.StreamResponse):
    """Headers leave with the first body bytes (one write for a small response)."""

    _send_headers_immediately = False


class ClientBodyError(Exception):
    """Reading the client's request body failed (malformed chunk, client gone)."""


async def _client_body(first: bytes, content: Any) -> AsyncIterator[bytes]:
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
