"""Admin API on ``admin.listen`` (node.yaml): status for people and tools, and the few
writes an operator or a peer needs (switchover, drills, failsafe promises).

GET / (the live status page: plain HTML, no external assets), /status (JSON: role,
leader, lease, fencing token, frontends, backends, takeovers), /cluster (this node's status
and every member's, for the page), /metrics (Prometheus), /healthz (the process answers),
/readyz (200 only when the data plane is healthy enough to campaign). Reading needs no
token.
POST /failsafe (a leader that lost etcd asks for a promise; etcd_loss: failsafe),
POST /switchover[?to=NODE] (planned handover) and POST /drill?fault=F&seconds=N
(`floatgate drill`; F one of node.cluster.faults.FAULTS) need
``Authorization: Bearer <token>`` with the token from ``admin.token_file``; without a
configured token it is refused. A wrong or
missing token gets 401 and changes nothing.

With ``admin.tls`` the listener serves HTTPS only (client certificates per
``admin.tls.verify``). Over plain HTTP, a request that carries an Authorization header
from an address that is not loopback is refused with 403 and a warning in the log: the
token has crossed the network in clear, and admin.tls is the fix.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from node.admin.auth import read_token
from node.admin.client import is_loopback
from node.admin.peers import cluster_status
from node.config.model import NodeConfig
from node.tls.admin import admin_client_context, admin_server_context

log = logging.getLogger("floatgate.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ControlRefused(Exception):
    """The node cannot do what was asked; nothing was done (the client gets 409)."""


class NodeControl(Protocol):
    """What the admin API asks of the node it serves (node.app.daemon.Daemon)."""

    @property
    def name(self) -> str | None: ...
    @property
    def clustered(self) -> bool: ...
    def status(self) -> dict[str, Any]: ...
    def ready(self) -> bool: ...
    def exposition(self) -> bytes: ...
    async def promise(self, leader: str, seconds: float) -> str | None:
        """None: promised not to campaign for ``seconds``; else why not."""

    async def switchover(self, to: str | None) -> str:
        """Hand over (raises ControlRefused); returns what happened."""

    def drill(self, fault: str, seconds: float) -> str:
        """Schedule a drill fault (raises ControlRefused); returns what will happen."""


def plain_token_refused(secure: bool, peer: str | None, authorization: str | None) -> bool:
    """Refuse a request that brought a credential over plain HTTP from an address that
    is not loopback (an unknown peer address counts as not loopback)."""
    return authorization is not None and not secure and not is_loopback(peer or "")


@web.middleware
async def _refuse_plain_tokens(request: web.Request, handler: Handler) -> web.StreamResponse:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host = str(peer[0]) if isinstance(peer, tuple) and peer else None
    if plain_token_refused(request.secure, host, request.headers.get("Authorization")):
        log.warning("refused %s %s from %s: it carried the admin token over plain HTTP, so "
                    "the token crossed the network in clear; enable admin.tls in node.yaml "
                    "on every node (and replace the token if this network is not trusted)",
                    request.method, request.path, host or "an unknown address",
                    extra={"event": "admin_plain_token", "peer": host})  # fmt: skip
        return web.json_response(
            {"error": "the admin token was sent over plain HTTP from a non-loopback address: "
                      "refused; the admin API needs admin.tls (HTTPS) for that"},
            status=403,
        )  # fmt: skip
    return await handler(request)


async def start_admin(node: NodeConfig | None, control: NodeControl) -> web.AppRunner | None:
    if node is None or node.admin is None:
        return None

    listen = node.admin.listen
    tls = admin_server_context(node.admin.tls) if node.admin.tls is not None else None
    peer_context = admin_client_context(node.admin.tls)
    if tls is None and not is_loopback(listen.host):
        log.warning(
            "admin API on %s serves plain HTTP: writes (switchover, drills, failsafe "
            "promises) from other hosts are refused; configure admin.tls",
            listen,
        )

    async def status(request: web.Request) -> web.Response:
        return web.json_response(control.status())

    page = files("node.admin").joinpath("static/status.html").read_bytes()

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    async def cluster(request: web.Request) -> web.Response:
        own = control.status()
        return web.json_response(await cluster_status(
            own, own.get("members", []), peer_context, own.get("down_members", [])))  # fmt: skip

    async def metrics(request: web.Request) -> web.Response:
        body = control.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ready = control.ready()
        return web.Response(
            status=200 if ready else 503, text="ready\n" if ready else "not ready\n"
        )

    token = read_token(node.admin.token_file)

    def authorized(request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return token is not None and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def failsafe(request: web.Request) -> web.Response:
        """A leader that lost etcd asks for a promise not to campaign (etcd_loss:
        failsafe). Granted only when this node cannot reach etcd either."""
        if not authorized(request):
            return web.json_response({"error": "a valid admin token is required"}, status=401)
        if not control.clustered:
            return web.json_response({"error": "standalone node: no cluster"}, status=409)
        try:
            leader = request.query["leader"]
            seconds = float(request.query["seconds"])
        except (KeyError, ValueError):
            return web.json_response({"error": "leader and seconds are required"}, status=400)
        if not 0 < seconds <= 60:
            return web.json_response({"error": "seconds must be in (0, 60]"}, status=400)
        refused = await control.promise(leader, seconds)
        if refused is not None:
            return web.json_response({"error": refused}, status=409)
        return web.json_response({"promised": leader, "seconds": seconds})

    async def switchover(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "a valid admin token is required"}, status=401)
        if not control.clustered:
            return web.json_response({"error": "standalone node: no cluster"}, status=409)
        to = request.query.get("to") or None
        try:
            result = await control.switchover(to)
        except ControlRefused as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"result": result, "to": to})

    async def drill(request: web.Request) -> web.Response:
        """Carry out a drill fault on this node (see node/cluster/faults.py)."""
        if not authorized(request):
            return web.json_response({"error": "a valid admin token is required"}, status=401)
        try:
            seconds = float(request.query.get("seconds", "0"))
            what = control.drill(request.query.get("fault", ""), seconds)
        except (ControlRefused, ValueError) as exc:  # refused, or not a number
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"node": control.name, "doing": what}, status=202)

    app = web.Application(middlewares=[_refuse_plain_tokens])
    app.router.add_post("/drill", drill)
    app.router.add_post("/switchover", switchover)
    app.router.add_post("/failsafe", failsafe)
    app.router.add_get("/", index)
    app.router.add_get("/status", status)
    app.router.add_get("/cluster", cluster)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, listen.host, listen.port, ssl_context=tls).start()
    return runner
