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
- ``failsafe``: with ``etcd_loss: failsafe``, the members a failsafe reign must ask
  (``{"leader": ..., "members": {name: admin address}}``), kept by the active under its
  fencing token. While it exists only a node it lists may campaign (the campaign
  compares its revision), so a leader that lost etcd knows everyone who could take its
  seat: a node that joined meanwhile is not listed and waits (Patroni's ``/failsafe``).
  No permanent key, no restriction; a leader without failsafe deletes it.

The view is built from one range read and then moved forward by watch events; an event
older than what the view holds is ignored, so a late reply never rolls it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: bytes
    leader: bytes
    members: bytes
    handover: bytes
    down: bytes
    failsafe: bytes

    @classmethod
    def of(cls, cluster: str) -> Keys:
        prefix = f"/floatgate/{cluster}/election/".encode()
        return cls(prefix, prefix + b"leader", prefix + b"members/", prefix + b"handover",
                   prefix + b"down/", prefix + b"failsafe")  # fmt: skip

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

    def failsafe(self, keys: Keys) -> dict[str, str | None] | None:
        """The failsafe member list (name -> admin address); None: there is none. An
        unreadable one lists nobody: safer to let no node campaign than any."""
        entry = self.entries.get(keys.failsafe)
        if entry is None or entry.value is None:
            return None
        members = _json(entry.value).get("members")
        if not isinstance(members, dict):
            return {}
        return {str(name): admin if isinstance(admin, str) else None
                for name, admin in members.items()}  # fmt: skip

    def failsafe_revision(self, keys: Keys) -> int:
        """The failsafe list's mod revision as seen (0: absent), for a compare."""
        entry = self.entries.get(keys.failsafe)
        return entry.mod_revision if entry is not None and entry.value is not None else 0

    def failsafe_changed_at(self, keys: Keys) -> int:
        """The revision of the failsafe list's last change seen, a delete included (0:
        none seen since the last full read)."""
        entry = self.entries.get(keys.failsafe)
        return entry.mod_revision if entry is not None else 0

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


VacancyKind = Literal["handover", "crash", "expiry", "silence"]


@dataclass(frozen=True, slots=True)
class Vacancy:
    """The seat was seen empty: who held it, and how the reign ended.

    ``handover``: the holder said it was leaving; ``crash``: its process died and the
    crash guard beside it ended the reign (VIP removed first, then the lease revoked:
    ``at`` is then a few milliseconds after the death); ``expiry``: etcd deleted the key when
    the lease ran out; ``silence``: the holder wrote nothing for its whole window, so a
    standby took the seat (see :class:`Silence`), and ``at`` is when its last write
    was seen."""

    at: float  # monotonic time the empty seat was observed (silence: the last write seen)
    previous: str
    fencing_token: int
    kind: VacancyKind

    def last_sign_of_life(self, ttl: float) -> float:
        """When the old leader was last known alive: the moment it left, for a planned
        handover, or its last write seen, for silence; for an expiry, TTL before the
        key vanished (etcd deletes it once the lease went TTL seconds without a
        keepalive, so that was its last one, at the latest -- etcd's lease reaping adds
        up to ~0.5 s that this cannot see)."""
        return self.at - ttl if self.kind == "expiry" else self.at


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
        kind: VacancyKind = (
            "crash" if old.payload.get("crashed") is True
            else "handover" if old.payload.get("leaving") is True
            else "expiry"
        )  # fmt: skip
        return replace(self, present=False,
                       vacancy=Vacancy(now, old.name, old.fencing_token, kind))  # fmt: skip

    def silenced(self, leader: LeaderRecord, last_write_seen: float) -> Succession:
        """``leader`` went silent: this node takes its seat."""
        vacancy = Vacancy(last_write_seen, leader.name, leader.fencing_token, "silence")
        return replace(self, seen=leader, present=False, vacancy=vacancy)


# Two nodes' monotonic clocks may run this much apart in rate (NTP slews at most 500 ppm).
CLOCK_RATE = 1e-3
SCHEDULING = 0.01  # s: between a silence judged and the kernel of the old holder


@dataclass(frozen=True, slots=True)
class Beat:
    """The leader key's latest write as one standby saw it."""

    token: int  # the reign (the key's create revision)
    revision: int  # the write (the key's mod revision)
    seen_at: float  # monotonic time this standby first saw that write
    window: float | None  # the leader's stated window (TTL - margin); None: not stated


@dataclass(frozen=True, slots=True)
class Silence:
    """When a standby may take the seat of a leader that stopped writing (pure).

    The leader writes its key under the fencing token every renewal and leads only
    until (older of its last successful keepalive and write, as *sent*) + window
    (election.lease). Every successful write of the reign is committed no later than
    the one this standby saw, and sent before it was committed, so before ``seen_at``:
    the leader's deadline is at most ``seen_at + window`` on its clock. Once
    ``seen_at + window x (1 + CLOCK_RATE) + fence_slack + SCHEDULING`` has passed here,
    its fence is shut. The takeover deletes the key only if its mod revision is still
    the one seen (a later write means the leader lives: the delete fails); after that
    delete, every write of the old reign fails, so nothing can extend its deadline.
    """

    beat: Beat | None = None

    def observed(self, token: int, revision: int, window: float | None, now: float) -> Silence:
        held = self.beat
        if held is None or held.token != token:
            return Silence(Beat(token, revision, now, window))
        if held.window is not None and (window is None or window < held.window):
            window = held.window  # the longest window the reign stated holds for all of it
        if revision < held.revision or (revision == held.revision and window == held.window):
            return self
        seen_at = held.seen_at if revision == held.revision else now
        return Silence(Beat(token, revision, seen_at, window))

    def quiet_until(self, fence_slack: float) -> float | None:
        """When the leader's fence is shut for sure, unless it writes again."""
        beat = self.beat
        if beat is None or beat.window is None:
            return None  # a leader that does not state its window is left to etcd
        return beat.seen_at + beat.window * (1 + CLOCK_RATE) + fence_slack + SCHEDULING

    def silent(self, now: float, fence_slack: float | None) -> bool:
        if fence_slack is None:
            return False
        until = self.quiet_until(fence_slack)
        return until is not None and now >= until
