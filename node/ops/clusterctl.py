"""``floatgate status`` and ``floatgate switchover``: the cluster seen from etcd (leader
and member keys) and the nodes' admin APIs."""

from __future__ import annotations

import asyncio
from typing import Any

import aetcd

from election.errors import EtcdUnavailable
from election.view import Keys, snapshot
from node.admin.client import AdminClient, AdminClientError, PlainTokenRefused, parse_target
from node.bundle.store import BundleKeys, parse_record
from node.config.etcd import EtcdAccessError, etcd_access
from node.config.model import NodeConfig


class ClusterCtlError(Exception):
    """The cluster could not be asked (etcd or an admin API unreachable, refused...)."""


async def read_election(node: NodeConfig, cluster: str) -> dict[str, Any]:
    """The leader and members as etcd has them (any endpoint that answers)."""
    if node.etcd is None:
        raise ClusterCtlError("node.yaml has no etcd section")
    try:
        access = etcd_access(node.etcd)
    except EtcdAccessError as exc:
        raise ClusterCtlError(str(exc)) from exc
    keys = Keys.of(cluster)

    async def read(client: aetcd.Client) -> tuple[Any, Any]:
        found = await client.get_prefix(keys.prefix)
        return found, await client.get(BundleKeys.of(cluster).current)

    try:
        found, bundle = await access.first_answer("reading the cluster", read, 5.0)
    except EtcdUnavailable as exc:
        raise ClusterCtlError(f"{exc}: check etcd and node.yaml") from exc
    view = snapshot((kv.key, kv.value, kv.create_revision, kv.mod_revision) for kv in found.kvs)
    leader = view.leader(keys)
    return {
        "leader": {"name": leader.name, "fencing_token": leader.fencing_token,
                   "admin": leader.payload.get("admin")} if leader else None,
        "members": [{"name": m.name, "priority": m.priority, "healthy": m.healthy,
                     "admin": m.payload.get("admin"),
                     "bundle_revision": m.payload.get("bundle_revision"),
                     "uptodate": m.payload.get("uptodate", True)}
                    for m in view.members(keys)],
        "down": list(view.down(keys)),
        "handover_to": view.handover_to(keys),
        "bundle": parse_record(bundle.value) if bundle is not None else None,
    }  # fmt: skip


async def _admin_get(client: AdminClient, name: str, address: str) -> dict[str, Any]:
    data = await client.status(address)
    if "error" in data:
        return {"node": name, "admin": address, "error": f"admin API unreachable: {data['error']}"}
    data.pop("backends", None)
    return data


async def cluster_status(node: NodeConfig, cluster: str, admins: list[str]) -> dict[str, Any]:
    election = await read_election(node, cluster)
    targets = {m["name"]: m["admin"] for m in election["members"] if m.get("admin")}
    known = {_endpoint(a) for a in targets.values()}
    for address in admins:  # an --admin that a member advertises (any scheme) is that member
        if _endpoint(address) not in known:
            targets[address] = address
    try:
        client = AdminClient.for_node(node, timeout=3)
    except AdminClientError as exc:
        raise ClusterCtlError(str(exc)) from exc
    async with client:
        answers = await asyncio.gather(*(_admin_get(client, n, a) for n, a in targets.items()))
    holders = [a["node"] for a in answers if a.get("vip_present")]
    return {"cluster": cluster, **election, "vip_holders": holders, "nodes": list(answers)}


def _endpoint(address: str) -> str:
    """host:port of an admin address, whatever its scheme."""
    try:
        target = parse_target(address)
    except AdminClientError:
        return address
    return f"{target.host}:{target.port}"


def format_status(status: dict[str, Any]) -> list[str]:
    leader = status["leader"]
    head = (f"active {leader['name']} (fencing token {leader['fencing_token']})" if leader
            else "NO ACTIVE NODE")  # fmt: skip
    holders = status["vip_holders"]
    vip = ("VIP on " + ", ".join(holders)) if holders else "VIP on no node"
    if len(holders) > 1:
        vip += "  <-- MORE THAN ONE HOLDER"
    lines = [f"cluster {status['cluster']}: {head}; {vip}"]
    if status.get("handover_to"):
        lines.append(f"  switchover to {status['handover_to']} in progress")
    bundle = status.get("bundle")
    current = bundle.get("revision") if bundle else None
    if bundle:
        lines.append(f"  bundle: current revision {current} ({str(bundle.get('sha'))[:12]}, "
                     f"{bundle.get('author', '?')}: {bundle.get('message') or '-'})")  # fmt: skip
    revisions = {m["name"]: m for m in status.get("members", [])}
    lines.append(f"  {'node':<10}{'role':<9}{'prio':<6}{'healthy':<9}{'VIP':<5}"
                 f"{'bundle':<11}{'lease left':<12}decision")  # fmt: skip
    for entry in status["nodes"]:
        if "error" in entry:
            lines.append(f"  {entry['node']:<10}{entry['error']} ({entry['admin']})")
            continue
        member = revisions.get(str(entry.get("node")), {})
        applied = member.get("bundle_revision")
        if applied is None:
            shown = "-"
        else:
            shown = f"{applied}" + ("" if applied == current and member.get("uptodate") else
                                    " STALE")  # fmt: skip
        lines.append(
            f"  {entry.get('node', '?'):<10}{entry.get('role', '?'):<9}"
            f"{entry.get('priority', ''):<6}{'yes' if entry.get('healthy') else 'NO':<9}"
            f"{'yes' if entry.get('vip_present') else '-':<5}{shown:<11}"
            f"{entry.get('lease_remaining', 0):<12}{entry.get('decision', '')}"
        )
    for entry in status["nodes"]:  # the orderer runs on one node: the active
        for name, cert in sorted((entry.get("acme") or {}).get("certificates", {}).items()):
            failure = f"; last failure: {cert['last_failure']}" if cert.get("last_failure") \
                else ""  # fmt: skip
            doing = f"ordering ({cert['ordering']})" if cert.get("ordering") else cert.get("next")
            lines.append(f"  acme {name} (on {entry.get('node')}): {doing}{failure}")
    for gone in status.get("down", []):
        seen = gone.get("last_seen", "?")
        lines.append(f"  {gone['name']:<10}{'DOWN':<9}{gone.get('priority', ''):<6}"
                     f"last seen {seen} (its member entry vanished)")  # fmt: skip
    return lines


async def switchover(
    node: NodeConfig, cluster: str, token: str, to: str | None = None
) -> dict[str, Any]:
    election = await read_election(node, cluster)
    leader = election["leader"]
    if leader is None or not leader.get("admin"):
        raise ClusterCtlError("no active node (or it advertises no admin address)")
    if to is not None and to not in {m["name"] for m in election["members"]}:
        known = ", ".join(m["name"] for m in election["members"]) or "none"
        raise ClusterCtlError(f"{to} is not a running member (members: {known})")
    params = {"to": to} if to else {}
    try:
        async with AdminClient.for_node(node, token, timeout=10) as client:
            reply = await client.post(leader["admin"], "/switchover", params)
    except PlainTokenRefused as exc:  # nothing was sent; says what to configure
        raise ClusterCtlError(f"{leader['name']}: {exc}") from exc
    except AdminClientError as exc:
        raise ClusterCtlError(f"admin API of {leader['name']} unreachable: {exc}") from exc
    body = reply.body if isinstance(reply.body, dict) else {"error": reply.body}
    if reply.status != 200:
        raise ClusterCtlError(f"{leader['name']} refused: {body.get('error', reply.status)}")
    return {"from": leader["name"], **body}
