"""The whole cluster as one node sees it: its own status and every member's /status,
fetched from the admin addresses the members registered in etcd (for the status page;
the browser only talks to the node that served it)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from node.admin.client import AdminClient

PEER_TIMEOUT = 0.8  # seconds per peer: a dead peer must not stall the page


async def cluster_status(
    own: dict[str, Any],
    members: list[dict[str, Any]],
    context: ssl.SSLContext,
    down: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """{"served_by": name, "nodes": {name: status or {"error": ...} or {"down": true,
    "last_seen": ...}}}. ``context``: for peers that advertise https:// (see
    node.admin.client). ``down``: members that vanished (election ``down/`` records)."""
    name = str(own.get("node", "standalone"))
    nodes: dict[str, Any] = {name: own}
    peers = {
        str(m["name"]): str(m["admin"])
        for m in members
        if m.get("name") != name and isinstance(m.get("admin"), str)
    }
    if peers:
        async with AdminClient(context, timeout=PEER_TIMEOUT) as client:
            answers = await asyncio.gather(
                *(client.status(a, PEER_TIMEOUT) for a in peers.values())
            )
        nodes.update(zip(peers, answers, strict=True))
    for gone in down or []:
        if isinstance(gone.get("name"), str) and gone["name"] not in nodes:
            nodes[gone["name"]] = {"node": gone["name"], "down": True, "role": "down",
                                   "last_seen": gone.get("last_seen"),
                                   "priority": gone.get("priority")}  # fmt: skip
    return {"served_by": name, "nodes": nodes}
