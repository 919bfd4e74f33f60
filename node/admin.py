"""Admin API on ``admin.listen`` (node.yaml): read-only status for people and tools.

GET /status (JSON: role, leader, lease, fencing token, backends), /healthz (the process
answers), /readyz (200 only when the data plane is healthy enough to campaign).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from node.config.model import NodeConfig

if TYPE_CHECKING:
    from node.daemon import Daemon


async def start_admin(node: NodeConfig | None, daemon: Daemon) -> web.AppRunner | None:
    if node is None or node.admin is None:
        return None

    async def status(request: web.Request) -> web.Response:
        return web.json_response(daemon.status())

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ready = daemon.role.healthy() if daemon.role is not None else daemon.plane is not None
        return web.Response(
            status=200 if ready else 503, text="ready\n" if ready else "not ready\n"
        )

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, node.admin.listen.host, node.admin.listen.port).start()
    return runner
