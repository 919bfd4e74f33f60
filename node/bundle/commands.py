"""``floatgate push | history | rollback | secret generate``: bundles from the
operator's side. Each returns a JSON-able result or raises BundleError with what to do
next; nothing is written to etcd unless everything validated."""

from __future__ import annotations

import asyncio
import datetime
import getpass
import json
import socket
from pathlib import Path
from typing import Any

from node.bundle import secret as secrets_file
from node.bundle.build import acme_files, collect, validate
from node.bundle.diff import diff
from node.bundle.errors import BundleError, BundleInvalid, PushConflict
from node.bundle.format import Bundle, seal, unseal
from node.bundle.store import BundleStore
from node.config.errors import ConfigError
from node.config.etcd import EtcdAccessError, etcd_access
from node.config.model import NodeConfig
from node.tls.tickets import TICKET_KEY_FILE, new_key_file


def store_for(node: NodeConfig, cluster: str) -> BundleStore:
    if node.etcd is None:
        raise BundleError(f"{node.source}: no etcd section: bundles live in etcd")
    try:
        return BundleStore(etcd_access(node.etcd), cluster)
    except EtcdAccessError as exc:
        raise BundleError(str(exc)) from exc


def _meta(message: str | None) -> dict[str, Any]:
    return {
        "author": f"{getpass.getuser()}@{socket.gethostname()}",
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "message": message or "",
    }


async def push(
    node: NodeConfig,
    cluster_path: Path,
    certs_dir: Path,
    message: str | None,
    force: bool,
    rotate_ticket_key: bool = False,
    if_changed: bool = False,
) -> dict[str, Any]:
    """``if_changed``: when the current bundle already holds exactly these files (the
    session-ticket key aside), store nothing and say so (``changed: false``)."""
    from node.config.cluster import load_cluster

    key = secrets_file.load(node.secret_file)
    try:
        config = load_cluster(cluster_path)
    except ConfigError as exc:
        raise BundleInvalid(exc.errors) from exc
    name = config.cluster
    store = store_for(node, name)
    seen = await store.current()  # read before preparing: the parent this push builds on
    ticket, why_new = None, "first bundle" if seen is None else "--rotate-ticket-key"
    previous: Bundle | None = None
    carried: Bundle | None = None  # where the cluster's session-ticket key comes from
    if seen is not None:
        document = await store.document(seen["sha"])
        try:
            previous = carried = unseal(seen["sha"], document, key)
        except BundleError as exc:  # a damaged current bundle must not block a fix
            why_new = f"the current bundle is unreadable ({exc})"
            carried = _legacy(seen["sha"], document, key)
    if carried is not None and not rotate_ticket_key:  # keep the cluster's ticket key
        ticket = carried.files.get(TICKET_KEY_FILE)
        why_new = "the current bundle had none"
    extra = {TICKET_KEY_FILE: ticket or new_key_file(),
             **acme_files(config, carried.files if carried is not None else {})}  # fmt: skip
    meta = {**_meta(message), "cluster": name, "revision": await _next_revision(store, seen)}
    bundle = collect(cluster_path, certs_dir, meta, extra)
    unchanged = previous is not None and _same_content(previous, bundle)
    if if_changed and seen is not None and unchanged and not rotate_ticket_key:
        return {"changed": False, "revision": seen["revision"], "sha": seen["sha"],
                "parent": seen["revision"], "ticket_key": "kept"}  # fmt: skip
    sha, document = seal(bundle, key)
    record = await store.push(sha, document, bundle.meta,
                              seen["revision"] if seen else None, force)  # fmt: skip
    record["ticket_key"] = "kept" if ticket else f"new: {why_new}"
    record["changed"] = True
    return record


async def amend(
    store: BundleStore,
    key: bytes,
    files: dict[str, bytes],
    message: str,
    author: str,
    fence: int | None,
    attempts: int = 3,
) -> dict[str, Any]:
    """A new revision made by a node itself (the active's ACME orderer): the current
    bundle with ``files`` added or replaced, validated, stored under ``fence``. A push
    that lands meanwhile is built upon (up to ``attempts`` times); FenceLost when the
    reign ended."""
    for attempt in range(attempts):
        seen = await store.current()
        if seen is None:
            raise BundleError("no bundle in etcd to add to: push one first (floatgate push)")
        current = unseal(seen["sha"], await store.document(seen["sha"]), key)
        meta = {**_meta(message), "author": author, "cluster": current.meta.get("cluster"),
                "revision": await _next_revision(store, seen)}  # fmt: skip
        bundle = Bundle(current.cluster_yaml, {**current.files, **files}, meta)
        await asyncio.to_thread(validate, bundle)
        sha, document = seal(bundle, key)
        try:
            return await store.push(sha, document, meta, seen["revision"], False, fence)
        except PushConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def _next_revision(store: BundleStore, seen: dict[str, Any] | None) -> int:
    """The number the new revision is sealed with: after ``current`` and after every
    revision a running node serves (nodes take only newer revisions than theirs)."""
    after = int(seen["revision"]) if seen else 0
    return max([after, *await store.served_revisions()]) + 1


def _legacy(sha: str, document: bytes, key: bytes) -> Bundle | None:
    """A format-1 current bundle (no MAC): read only so that a push after an upgrade keeps
    the session-ticket key, which is sealed (AES-GCM authenticates it with the secret)."""
    try:
        bundle = unseal(sha, document, key, legacy=True)
        entry = json.loads(document)["files"].get(TICKET_KEY_FILE, {})
    except (BundleError, ValueError, KeyError, AttributeError):
        return None
    if not isinstance(entry, dict) or "sealed" not in entry:
        return None  # a ticket key in clear could be anyone's: never carried over
    return bundle


def _same_content(old: Bundle, new: Bundle) -> bool:
    def files(bundle: Bundle) -> dict[str, bytes]:
        return {k: v for k, v in bundle.files.items() if k != TICKET_KEY_FILE}

    return old.cluster_yaml == new.cluster_yaml and files(old) == files(new)


async def history(node: NodeConfig, cluster: str) -> dict[str, Any]:
    store = store_for(node, cluster)
    current = await store.current()
    return {"current": current, "revisions": await store.history()}


async def rollback(
    node: NodeConfig, cluster: str, revision: int, message: str | None, force: bool
) -> dict[str, Any]:
    """A new revision with the content of ``revision`` (validated again)."""
    key = secrets_file.load(node.secret_file)
    store = store_for(node, cluster)
    seen = await store.current()
    entries = {int(r["revision"]): r for r in await store.history()}
    if revision not in entries:
        known = ", ".join(str(r) for r in sorted(entries)) or "none"
        raise BundleError(f"revision {revision} is not in the history (kept: {known})")
    old = unseal(entries[revision]["sha"], await store.document(entries[revision]["sha"]), key)
    meta = {**_meta(message or f"rollback to revision {revision}"), "cluster": cluster,
            "revision": await _next_revision(store, seen)}  # fmt: skip
    restored = Bundle(old.cluster_yaml, old.files, meta)
    validate(restored)  # still valid today (a certificate may have expired since)
    sha, document = seal(restored, key)
    return await store.push(sha, document, meta, seen["revision"] if seen else None, force)


async def diff_revisions(
    node: NodeConfig, cluster: str, first: int, second: int | None
) -> dict[str, Any]:
    """What changed from revision ``first`` to ``second`` (default: current)."""
    key = secrets_file.load(node.secret_file)
    store = store_for(node, cluster)
    entries = {int(r["revision"]): r for r in await store.history()}
    current = await store.current()
    target = second if second is not None else (int(current["revision"]) if current else None)
    for wanted in (first, target):
        if wanted not in entries:
            known = ", ".join(str(r) for r in sorted(entries)) or "none"
            raise BundleError(f"revision {wanted} is not in the history (kept: {known})")
    assert target is not None
    bundles = []
    for revision in (first, target):
        sha = entries[revision]["sha"]
        bundles.append(unseal(sha, await store.document(sha), key))
    return diff(bundles[0], bundles[1], str(first), str(target))


def format_history(result: dict[str, Any]) -> list[str]:
    current = result["current"]
    lines = [f"current: revision {current['revision']} ({current['sha'][:12]})" if current
             else "no bundle pushed yet"]  # fmt: skip
    for record in reversed(result["revisions"]):
        mark = "*" if current and record["revision"] == current["revision"] else " "
        lines.append(f"{mark} {record['revision']:>5}  {record.get('time', '?'):<26}"
                     f"{record.get('author', '?'):<24}{record.get('message', '')}")  # fmt: skip
    return lines
