"""What a node knows of the election keys in etcd (pure: no I/O, no clock).

Keys under ``/floatgate/<cluster>/election/``:

- ``leader``: the active node (JSON with name, priority, admin address, ...); attached to
  the leader's lease. Its create revision is the fencing token of the reign.
- ``members/<name>``: every running node (priority, healthy, admin, ...); attached to a
  member lease the node keeps alive whatever its role, so a dead node's entry vanishes
  after one TTL.
- ``handover``: a planned switchover to a named node (``{"to": ..., "from": ...}``),
  written by the active with a short lease, under the fencing token.
- ``down/<name>``: a member whose entry vanished, as the active saw it last (priority,
  admin, ``last_seen`` in UTC); on a lease of ``election.down_visible_for`` so it stays
  visible for that while; the node deletes it when it registers again.

The view is built from one range read and then moved forward by watch events; an event
older than what the view holds is ignored, so a late reply never rolls it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: bytes
    leader: bytes
    members: bytes
    handover: bytes
    down: bytes

    @classmethod
    def of(cls, cluster: str) -> Keys:
        prefix = f"/floatgate/{cluster}/election/".encode()
        return cls(prefix, prefix + b"leader", prefix + b"members/", prefix + b"handover",
                   prefix + b"down/")  # fmt: skip

    def member(self, name: str) -> bytes:
        return self.members + name.encode()

    def down_member(self, name: str) -> bytes:
        return self.down + name.encode()


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """What the leader key holds."""

    name: str
    fencing_token: int  # the key's create revision: one value per reign
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    priority: int
    healthy: bool
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One key as last seen: its value (None once deleted) and the revision of that."""

    value: bytes | None
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class ClusterView:
    entries: dict[bytes, Entry] = field(default_factory=dict)

    def applied(self, key: bytes, entry: Entry) -> ClusterView:
        """The view after one watch event; events older than what is held are ignored."""
        held = self.entries.get(key)
        if held is not None and held.mod_revision >= entry.mod_revision:
            return self
        return replace(self, entries={**self.entries, key: entry})

    def leader(self, keys: Keys) -> LeaderRecord | None:
        entry = self.entries.get(keys.leader)
        if entry is None or entry.value is None:
            return None
        payload = _json(entry.value)
        return LeaderRecord(str(payload.get("name", "?")), entry.create_revision, payload)

    def members(self, keys: Keys) -> tuple[Member, ...]:
        found = []
        for key, entry in sorted(self.entries.items()):
            if not key.startswith(keys.members) or entry.value is None:
                continue
            payload = _json(entry.value)
            name = key[len(keys.members) :].decode(errors="replace")
            priority = payload.get("priority")
            found.append(Member(
                name, priority if isinstance(priority, int) else 0,
                payload.get("healthy") is True, payload,
            ))  # fmt: skip
        return tuple(found)

    def down(self, keys: Keys) -> tuple[dict[str, Any], ...]:
        """Members that vanished (``down/<name>``), unless running again."""
        running = {m.name for m in self.members(keys)}
        found = []
        for key, entry in sorted(self.entries.items()):
            if not key.startswith(keys.down) or entry.value is None:
                continue
            name = key[len(keys.down) :].decode(errors="replace")
            if name not in running:
                found.append({**_json(entry.value), "name": name})
        return tuple(found)

    def handover_to(self, keys: Keys) -> str | None:
        entry = self.entries.get(keys.handover)
        if entry is None or entry.value is None:
            return None
        target = _json(entry.value).get("to")
        return target if isinstance(target, str) else None


def snapshot(items: Iterable[tuple[bytes, bytes, int, int]]) -> ClusterView:
    """A view from a range read: (key, value, create_revision, mod_revision) tuples."""
    return ClusterView({key: Entry(value, create, mod) for key, value, create, mod in items})


def _json(value: bytes) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class Vacancy:
    """The leader key was seen gone: who held it, and whether it said it was leaving."""

    at: float  # monotonic time the empty seat was observed
    previous: str
    fencing_token: int
    planned: bool  # the holder resigned (handover), rather than its lease expiring

    def last_sign_of_life(self, ttl: float) -> float:
        """When the old leader was last known alive: the moment it left, for a planned
        handover; for an expiry, TTL before the key vanished (etcd deletes it once the
        lease went TTL seconds without a keepalive, so that was its last one, at the
        latest -- etcd's lease reaping adds up to ~0.5 s that this cannot see)."""
        return self.at if self.planned else self.at - ttl


@dataclass(frozen=True, slots=True)
class Succession:
    """Leader changes as one node observes them (pure: the caller passes the clock)."""

    seen: LeaderRecord | None = None  # the last leader seen (kept while the seat is empty)
    present: bool = False
    changes: int = 0  # new reigns seen after the first one
    vacancy: Vacancy | None = None  # the last time the seat was seen empty

    def observed(self, leader: LeaderRecord | None, now: float) -> Succession:
        if leader is not None:
            seen = self.seen
            new_reign = seen is not None and seen.fencing_token != leader.fencing_token
            return replace(self, seen=leader, present=True,
                           changes=self.changes + (1 if new_reign else 0))  # fmt: skip
        if not self.present or self.seen is None:
            return self
        old = self.seen
        vacancy = Vacancy(now, old.name, old.fencing_token, old.payload.get("leaving") is True)
        return replace(self, present=False, vacancy=vacancy)
