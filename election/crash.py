"""End the reign of a leader process that died: mark its key, then revoke its lease.

Called by the crash guard (node.cluster.guard) once the dead process's VIP is gone from
its machine. The lease is the dead process's own: revoking it deletes the leader key and
the member entry at once, so a standby campaigns now instead of after the window. Just
before, the key is rewritten (same lease, compared on its mod revision) with
``leaving`` and ``crashed``, so standbys time and report the takeover as a crash (see
election.view.Succession) rather than as an expiry.
"""

from __future__ import annotations

import json
from typing import Any

import aetcd

from election.etcdclient import EtcdAccess
from election.view import Keys


async def end_reign(
    access: EtcdAccess,
    cluster: str,
    lease_id: int | None,
    member_lease: int | None = None,
    timeout: float = 1.0,
) -> str:
    """Mark the leader key (when it is on ``lease_id``), revoke the member entry's lease
    (so no standby waits for a dead higher-priority member), then the leader lease;
    what was done, in words. Raises EtcdUnavailable when no endpoint answered."""
    keys = Keys.of(cluster)

    async def work(client: aetcd.Client) -> str:
        said = []
        found = await client.get(keys.leader) if lease_id is not None else None
        if found is not None and int(found.lease) == lease_id:
            value = _crashed(bytes(found.value))
            ok, _ = await client.transaction(
                compare=[client.transactions.mod(keys.leader) == found.mod_revision],
                success=[client.transactions.put(keys.leader, value, lease_id)],
                failure=[],
            )
            if ok:
                said.append("its leader key marked crashed")
        for what, lease in (("member entry", member_lease), ("leader", lease_id)):
            if lease is not None:
                said.append(f"{what} lease {lease:x} {await _revoke(client, lease)}")
        return ", ".join(said)

    result: str = await access.first_answer("end the dead reign", work, timeout)
    return result


async def _revoke(client: aetcd.Client, lease_id: int) -> str:
    try:
        await client.revoke_lease(lease_id)
    except aetcd.ClientError as exc:
        if "not found" not in str(exc).lower():
            raise
        return "was gone already"
    return "revoked"


def _crashed(value: bytes) -> bytes:
    try:
        payload: Any = json.loads(value)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    return json.dumps({**payload, "leaving": True, "crashed": True}).encode()
