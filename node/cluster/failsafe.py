"""etcd_loss: failsafe -- a leader that lost etcd keeps its seat only on the promises of
the other members, asked over their admin APIs (POST /failsafe, admin token, HTTPS)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from election.view import Member
from node.admin.client import AdminClient, AdminClientError, PlainTokenRefused
from node.config.model import NodeConfig

log = logging.getLogger("floatgate.cluster")


async def ask_for_promises(
    node: NodeConfig, token: str | None, peers: Sequence[Member], seconds: float
) -> bool:
    """Every member in ``peers`` must promise, over its admin API, not to campaign for
    ``seconds`` (granted only by a node that cannot reach etcd either). Any refusal,
    silence, missing token, no peer known at all (an empty list would otherwise be
    "everyone agreed" and the reign unbounded), or a peer that could only be asked over
    plain HTTP (the token would cross the network in clear: see node.admin.client):
    False."""
    if token is None or not peers:
        return False  # no token, or nobody known who could promise: no reign on promises
    addresses = [m.payload.get("admin") for m in peers]
    if not all(isinstance(a, str) for a in addresses):
        return False  # a peer that cannot be asked cannot promise
    params = {"leader": node.name, "seconds": str(seconds)}

    async def ask(client: AdminClient, address: str) -> bool:
        try:
            reply = await client.post(address, "/failsafe", params)
        except PlainTokenRefused as exc:
            log.warning("failsafe: cannot ask %s for a promise: %s", address, exc)
            return False
        except AdminClientError:
            return False
        return reply.status == 200

    try:  # peers try etcd for 0.25 s first
        client = AdminClient.for_node(node, token, timeout=0.45)
    except AdminClientError as exc:
        log.warning("failsafe: cannot ask the other members for a promise: %s", exc)
        return False
    async with client:
        answers = await asyncio.gather(*(ask(client, str(a)) for a in addresses))
    return all(answers)
