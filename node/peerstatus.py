"""The whole cluster as one node sees it: its own status and every member's /status,
fetched from the admin addresses the members registered in etcd (for the status page;
the browser only talks to the node that served it)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

PEER_TIMEOUT = 0.8  # seconds per peer: a dead peer must not stall the page


async def cluster_status(own: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    """{"served_by": name, "nodes": {name: status or {"error": ...}}}."""
    name = str(own.get("node", "standalone"))
    nodes: dict[str, Any] = {name: own}
    peers = {
        str(m["name"]): str(m["admin"])
        for m in members
        if m.get("name") != name and isinstance(m.get("admin"), str)
    }
    if peers:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            answers = await asyncio.gather(*(fetch_status(session, a) for a in peers.values()))
        nodes.update(zip(peers, answers, strict=True))
    return {"served_by": name, "nodes": nodes}


async def fetch_status(
    session: aiohttp.ClientSession, address: str, timeout: float | None = None
) -> dict[str, Any]:
    """A node's GET /status, or ``{"error": ...}`` saying why there is none."""
    limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
    try:
        async with session.get(f"http://{address}/status", timeout=limit) as reply:
            if reply.status != 200:
                return {"error": f"{address}: HTTP {reply.status}"}
            data = await reply.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"error": f"{address}: {type(exc).__name__}: {exc}".rstrip(": ")}
    return data if isinstance(data, dict) else {"error": f"{address}: not a status document"}
