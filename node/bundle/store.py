"""Bundles in etcd. Keys under ``/floatgate/<cluster>/``:

- ``bundles/<sha256>``: a bundle document (see :mod:`node.bundle.format`), immutable;
- ``bundle/current``: JSON {revision, sha, author, time, message, parent};
- ``bundle/history/<revision, 10 digits>``: the same record for every revision kept.

A push is one transaction (document, current, history entry) that also compares
``current``'s mod revision with the one the push read: two pushes cannot silently
overwrite each other. The revision number is sealed in the document too (its meta,
under the MAC): a node takes only a revision newer than the one it serves, so an old
genuine document put back as ``current`` is refused (node.bundle.apply).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aetcd

from election.errors import EtcdUnavailable
from election.etcdclient import EtcdAccess
from election.view import Keys
from node.bundle.errors import BundleError, FenceLost, PushConflict

KEEP = 20  # revisions kept in history (their documents too)


@dataclass(frozen=True, slots=True)
class BundleKeys:
    current: bytes
    history: bytes
    documents: bytes

    @classmethod
    def of(cls, cluster: str) -> BundleKeys:
        base = f"/floatgate/{cluster}/"
        return cls((base + "bundle/current").encode(), (base + "bundle/history/").encode(),
                   (base + "bundles/").encode())  # fmt: skip

    def document(self, sha: str) -> bytes:
        return self.documents + sha.encode()

    def entry(self, revision: int) -> bytes:
        return self.history + f"{revision:010d}".encode()


class BundleStore:
    def __init__(self, access: EtcdAccess, cluster: str, timeout: float = 5.0) -> None:
        self.access = access
        self.keys = BundleKeys.of(cluster)
        self.members = Keys.of(cluster).members  # election member entries
        self.leader = Keys.of(cluster).leader  # whose create revision fences the active
        self.timeout = timeout
        self.on_request: Callable[[str, float], None] | None = None  # (operation, seconds)
        self.isolated_until = 0.0  # a drill: no request goes out before this (monotonic)

    async def _with_client(self, what: str, work: Any) -> Any:
        """Run ``work(client)`` against the first endpoint that answers."""
        started = time.monotonic()
        if started < self.isolated_until:
            raise BundleError(f"{what}: etcd traffic dropped (drill: isolate)")
        try:
            result = await self.access.first_answer(what, work, self.timeout)
            if self.on_request is not None:
                self.on_request(f"bundle {what}", time.monotonic() - started)
            return result
        except EtcdUnavailable as exc:
            raise BundleError(f"{exc}; nothing was changed — check etcd and node.yaml") from exc

    async def current(self) -> dict[str, Any] | None:
        async def read(client: aetcd.Client) -> dict[str, Any] | None:
            found = await client.get(self.keys.current)
            return parse_record(found.value) if found is not None else None

        result: dict[str, Any] | None = await self._with_client("reading current", read)
        return result

    async def document(self, sha: str) -> bytes:
        async def read(client: aetcd.Client) -> bytes | None:
            found = await client.get(self.keys.document(sha))
            return bytes(found.value) if found is not None else None

        data = await self._with_client(f"fetching bundle {sha[:12]}", read)
        if data is None:
            raise BundleError(f"bundle {sha[:12]} is not in etcd (pruned or never stored)")
        assert isinstance(data, bytes)
        return data

    async def served_revisions(self) -> list[int]:
        """The bundle revisions the running nodes serve, as their election member
        entries say: a push continues above them (after etcd was restored from an
        older backup, its ``current`` may be behind what the nodes serve)."""

        async def read(client: aetcd.Client) -> list[int]:
            found = await client.get_prefix(self.members)
            served = []
            for kv in found.kvs:
                try:
                    revision = json.loads(kv.value).get("bundle_revision")
                except (ValueError, AttributeError):
                    continue
                if isinstance(revision, int) and not isinstance(revision, bool):
                    served.append(revision)
            return served

        result: list[int] = await self._with_client("reading the nodes' revisions", read)
        return result

    async def history(self) -> list[dict[str, Any]]:
        async def read(client: aetcd.Client) -> list[dict[str, Any]]:
            found = await client.get_prefix(self.keys.history)
            return [parse_record(kv.value) for kv in found.kvs]

        records: list[dict[str, Any]] = await self._with_client("reading history", read)
        return sorted(records, key=lambda r: int(r.get("revision", 0)))

    async def push(
        self,
        sha: str,
        document: bytes,
        meta: dict[str, Any],
        seen: int | None,
        force: bool,
        fence: int | None = None,
    ) -> dict[str, Any]:
        """Store a new revision on top of revision ``seen`` (what the pusher read before
        preparing the bundle; None: no bundle yet). Anything else there: PushConflict,
        unless ``force``. ``fence``: the active's fencing token; the write happens only
        while the leader key is still that reign's (FenceLost otherwise)."""

        async def write(client: aetcd.Client) -> dict[str, Any]:
            found = await client.get(self.keys.current)
            parent = parse_record(found.value) if found is not None else None
            after = int(parent["revision"]) if parent else 0
            sealed = meta.get("revision")  # the number sealed in the document, if any
            revision = sealed if isinstance(sealed, int) else after + 1
            if revision <= after:  # (forced over a newer push: the seal cannot change)
                raise PushConflict(f"{_raced(parent)} (the bundle was sealed as revision "
                                   f"{revision})")  # fmt: skip
            record = {**meta, "revision": revision, "sha": sha,
                      "parent": parent["revision"] if parent else None}  # fmt: skip
            if not force and (parent["revision"] if parent else None) != seen:
                raise PushConflict(_raced(parent))
            value = json.dumps(record, sort_keys=True).encode()
            if force:
                compare = []
            elif found is None:
                compare = [client.transactions.create(self.keys.current) == 0]
            else:
                compare = [client.transactions.mod(self.keys.current) == found.mod_revision]
            if fence is not None:
                compare.append(client.transactions.create(self.leader) == fence)
            ok, _ = await client.transaction(
                compare=compare,
                success=[client.transactions.put(self.keys.document(sha), document),
                         client.transactions.put(self.keys.current, value),
                         client.transactions.put(self.keys.entry(revision), value)],
                failure=[],
            )  # fmt: skip
            if not ok:
                if fence is not None:
                    leader = await client.get(self.leader)
                    if leader is None or leader.create_revision != fence:
                        raise FenceLost(f"the reign with fencing token {fence} ended: "
                                        "nothing was stored")  # fmt: skip
                again = await client.get(self.keys.current)
                raise PushConflict(_raced(parse_record(again.value) if again else None))
            await self._prune(client, revision)
            return record

        result: dict[str, Any] = await self._with_client("pushing", write)
        return result

    async def _prune(self, client: aetcd.Client, newest: int) -> None:
        """Keep the last KEEP revisions (best effort: a failure leaves extra history)."""
        found = await client.get_prefix(self.keys.history)
        records = sorted((parse_record(kv.value) for kv in found.kvs), key=lambda r: r["revision"])
        old, kept = records[:-KEEP], records[-KEEP:]
        keep_docs = {r["sha"] for r in kept}
        for record in old:
            await client.delete(self.keys.entry(int(record["revision"])))
            if record["sha"] not in keep_docs:
                await client.delete(self.keys.document(str(record["sha"])))


def parse_record(value: bytes) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        return {"revision": 0, "sha": "", "error": "unreadable record"}
    return data if isinstance(data, dict) else {"revision": 0, "sha": ""}


def _raced(current: dict[str, Any] | None) -> str:
    if current is None:
        return "current changed while this push was prepared; push again"
    return (f"revision {current.get('revision')} was pushed meanwhile by "
            f"{current.get('author', '?')} ({current.get('message') or 'no message'}): "
            "review it (floatgate history) and push again, or use --force")  # fmt: skip
