"""WebSocket relay: handshake with the server first, then with the client, then pump
frames both ways (text, binary, ping, pong, close with its code) until either side ends."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from node.proxy.errors import BadResponse, ConnectFailed
from node.proxy.pool import BackendPool, Server

_WS_HEADERS = ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
               "sec-websocket-protocol", "host")  # fmt: skip


async def relay_websocket(
    request: web.BaseRequest, pool: BackendPool, server: Server, path: str, headers: Any
) -> web.StreamResponse:
    assert pool.ws_session is not None
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    ]
    upstream_headers = headers.copy()
    for name in _WS_HEADERS:
        upstream_headers.popall(name, None)
    if request.host:
        upstream_headers["Host"] = request.host
    try:
        upstream = await pool.ws_session.ws_connect(
            URL(server.base_url.replace("http://", "ws://", 1) + path, encoded=True),
            headers=upstream_headers,
            protocols=protocols,
            autoping=False,
            autoclose=False,
            max_msg_size=0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise BadResponse(f"websocket handshake refused by server: {exc.status}") from exc
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        pool.connect_failed(server, str(exc))
        raise ConnectFailed(str(exc)) from exc
    except aiohttp.ClientError as exc:
        raise BadResponse(str(exc)) from exc
    client = web.WebSocketResponse(
        protocols=(upstream.protocol,) if upstream.protocol else (),
        autoping=False,
        autoclose=False,
        max_msg_size=0,
    )
    try:
        await client.prepare(request)
        to_server = asyncio.create_task(_pump(client, upstream))
        to_client = asyncio.create_task(_pump(upstream, client))
        _, pending = await asyncio.wait({to_server, to_client}, return_when="FIRST_COMPLETED")
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await upstream.close()
        await client.close()
    return client


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    while True:
        message = await source.receive()
        kind = message.type
        if kind is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif kind is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif kind is aiohttp.WSMsgType.PING:
            await sink.ping(message.data)
        elif kind is aiohttp.WSMsgType.PONG:
            await sink.pong(message.data)
        elif kind is aiohttp.WSMsgType.CLOSE:
            await sink.close(code=message.data or 1000, message=(message.extra or "").encode())
            return
        else:  # CLOSING, CLOSED, ERROR
            await sink.close()
            return
