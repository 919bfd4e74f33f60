"""``floatgate status`` and ``floatgate switchover``: the cluster seen from etcd and the
nodes' admin APIs."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import aetcd
import aiohttp

from node.config.model import NodeConfig


class ClusterCtlError(Exception):
    """The cluster could not be asked (etcd or an admin API unreachable, refused...)."""


async def _leader(node: NodeConfig, cluster: str) -> dict[str, Any] | None:
    if node.etcd is None:
        raise ClusterCtlError("node.yaml has no etcd section")
    endpoint = urlsplit(node.etcd.endpoints[0])
    client = aetcd.Client(host=endpoint.hostname or "localhost", port=endpoint.port or 2379,
                          timeout=3)  # fmt: skip
    try:
        found = await asyncio.wait_for(client.get(f"/floatgate/{cluster}/leader".encode()), 5)
    except (TimeoutError, aetcd.ClientError, OSError) as exc:
        raise ClusterCtlError(f"etcd at {node.etcd.endpoints[0]} did not answer: {exc}") from exc
    finally:
        await client.close()
    if found is None:
        return None
    record: dict[str, Any] = json.loads(found.value)
    record["fencing_token"] = found.create_revision
    return record


async def _admin_get(address: str) -> dict[str, Any]:
    try:
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"http://{address}/status") as response:
                data: dict[str, Any] = await response.json()
                return data
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"admin": address, "error": f"unreachable: {type(exc).__name__}"}


async def cluster_status(node: NodeConfig, cluster: str, admins: list[str]) -> dict[str, Any]:
    leader = await _leader(node, cluster)
    addresses = list(
        dict.fromkeys([*admins, *([leader["admin"]] if leader and leader.get("admin") else [])])
    )
    nodes = await asyncio.gather(*(_admin_get(a) for a in addresses))
    return {"cluster": cluster, "leader": leader, "nodes": list(nodes)}


def format_status(status: dict[str, Any]) -> list[str]:
    leader = status["leader"]
    lines = [f"cluster {status['cluster']}: " + (
        f"active {leader['name']} (fencing token {leader['fencing_token']})" if leader
        else "NO ACTIVE NODE")]  # fmt: skip
    lines.append(f"  {'node':<10}{'role':<10}{'healthy':<9}{'lease left':<12}decision")
    for entry in status["nodes"]:
        if "error" in entry:
            lines.append(f"  {entry['admin']:<10}{entry['error']}")
            continue
        lines.append(
            f"  {entry.get('node', '?'):<10}{entry.get('role', '?'):<10}"
            f"{'yes' if entry.get('healthy') else 'NO':<9}{entry.get('lease_remaining', 0):<12}"
            f"{entry.get('decision', '')}"
        )
    return lines


async def switchover(node: NodeConfig, cluster: str, token: str) -> dict[str, Any]:
    leader = await _leader(node, cluster)
    if leader is None or not leader.get("admin"):
        raise ClusterCtlError("no active node (or it advertises no admin address)")
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            url = f"http://{leader['admin']}/switchover"
            auth = {"Authorization": f"Bearer {token}"}
            async with session.post(url, headers=auth) as response:
                body: dict[str, Any] = await response.json()
                if response.status != 200:
                    raise ClusterCtlError(
                        f"{leader['name']} refused: {body.get('error', response.status)}"
                    )
                return {"from": leader["name"], **body}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ClusterCtlError(f"admin API of {leader['name']} unreachable: {exc}") from exc
