"""The node side: watch ``current`` in etcd, fetch, verify, decrypt, validate, then
swap the running configuration; keep the last good bundle under ``data_dir`` (mode
0700/0600) so a node restarted while etcd is down serves at once. Any failure keeps
what is serving and is reported (status, log)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from election.etcdclient import ETCD_ERRORS, close_client
from node.bundle.build import CLUSTER_FILE, load_bundle
from node.bundle.errors import BundleError
from node.bundle.format import unseal
from node.bundle.store import BundleStore
from node.config.model import ClusterConfig
from node.tls.material import TlsMaterial

log = logging.getLogger("floatgate.bundle")
RECORD = "bundle.json"

Apply = Callable[[ClusterConfig, TlsMaterial], Awaitable[None]]
Applied = Callable[[dict[str, Any]], Awaitable[None]]


def cached(data_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(cluster.yaml, record) of the last good bundle, if any."""
    current = data_dir / "current"
    try:
        record = json.loads((current / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return current / CLUSTER_FILE, record


class BundleApplier:
    def __init__(
        self,
        store: BundleStore,
        secret: bytes,
        data_dir: Path,
        apply: Apply,
        poll: float = 5.0,
        *,
        lock: asyncio.Lock | None = None,
        applied: Applied | None = None,
    ) -> None:
        """``apply`` puts a validated bundle into service (raising refuses it);
        ``applied`` runs once its record is the cache's ``current``; ``lock``, when
        given, is held from ``apply`` until then (the daemon's SIGHUP reload takes it
        too, so the two never interleave)."""
        self.store = store
        self.secret = secret
        self.data_dir = data_dir
        self.apply = apply
        self.poll = poll
        self.lock = lock or asyncio.Lock()
        self.on_applied = applied
        found = cached(data_dir)
        self.applied: dict[str, Any] | None = found[1] if found else None
        self.error: str | None = None
        self.failures = 0
        self._refused: str | None = None  # sha of a bundle that failed: not retried
        self.latest: dict[str, Any] | None = None  # the current record last read from etcd
        # The staged bundle's directory while ``apply`` runs (worker processes load the
        # new configuration from there; it becomes ``current`` once applied).
        self.applying_from: Path | None = None

    def uptodate(self) -> bool:
        """Serving the cluster's current bundle (as last read from etcd) without error."""
        if self.latest is None:
            return self.applied is not None  # etcd not read yet: the cache, if any
        applied = self.applied or {}
        return applied.get("sha") == self.latest.get("sha") and self._refused is None

    def status(self) -> dict[str, Any]:
        applied = self.applied or {}
        latest = self.latest or {}
        return {"revision": applied.get("revision"), "sha": applied.get("sha"),
                "current": latest.get("revision"), "uptodate": self.uptodate(),
                "error": self.error, "failures": self.failures}  # fmt: skip

    async def run(self) -> None:
        """Check now, then whenever the watch on ``current`` fires, and every ``poll``
        seconds in case a watch event was missed."""
        wake = asyncio.Event()
        watcher = asyncio.create_task(self._watch(wake))
        try:
            while True:
                wake.clear()
                try:
                    await self.check()
                except BundleError as exc:
                    self.error = str(exc)
                    log.debug("bundle check: %s", exc)
                try:
                    async with asyncio.timeout(self.poll):
                        await wake.wait()
                except TimeoutError:
                    pass
        finally:
            watcher.cancel()

    async def _watch(self, wake: asyncio.Event) -> None:
        endpoint = 0
        while True:
            if time.monotonic() < self.store.isolated_until:  # a drill: etcd is "away"
                await asyncio.sleep(0.5)
                continue
            client = self.store.access.client(endpoint, self.store.timeout)
            try:
                async with asyncio.timeout(self.store.timeout):
                    watch = await client.watch(self.store.keys.current)
                wake.set()  # (re)armed: look once, events may have been missed
                async for _ in watch:
                    wake.set()
            except ETCD_ERRORS as exc:
                log.debug("bundle watch: %s", exc)
            finally:
                await close_client(client)
            endpoint += 1
            await asyncio.sleep(1.0)

    async def check(self) -> bool:
        """Apply ``current`` if it is new. True when something was applied."""
        current = await self.store.current()
        if current is None:
            return False
        self.latest = current
        sha = str(current.get("sha", ""))
        if self.applied and self.applied.get("sha") == sha:
            self.error = None
            return False
        if sha == self._refused:
            return False
        try:
            await self._apply(sha, current)
        except BundleError as exc:
            self._refused = sha
            self.failures += 1
            self.error = f"revision {current.get('revision')}: {exc}"
            serving = (self.applied or {}).get("revision")
            log.error("bundle revision %s refused, still serving revision %s:\n%s",
                      current.get("revision"), serving, exc)  # fmt: skip
            return False
        return True

    async def fetch_to_cache(self) -> Path:
        """At start-up: the current bundle from etcd into the cache (validated)."""
        current = await self.store.current()
        if current is None:
            raise BundleError("no bundle in etcd yet: push one (floatgate push)")
        staging, _, _ = await self._stage(str(current["sha"]), current)
        self._promote(staging, current)
        return self.data_dir / "current" / CLUSTER_FILE

    async def _stage(
        self, sha: str, record: dict[str, Any]
    ) -> tuple[Path, ClusterConfig, TlsMaterial]:
        bundle = unseal(sha, await self.store.document(sha), self.secret)
        self._check_revision(bundle.meta.get("revision"), sha, record)
        staging = self.data_dir / f".staging-{record.get('revision')}"
        shutil.rmtree(staging, ignore_errors=True)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            config, tls = await asyncio.to_thread(load_bundle, bundle, staging)
        except BundleError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging, config, tls

    def _check_revision(self, sealed: object, sha: str, record: dict[str, Any]) -> None:
        """Only a revision newer than the one served, sealed with the number ``current``
        names: ``current`` itself carries no MAC, so an old genuine document put back
        there (a replay) would otherwise roll the node back."""
        applied = self.applied
        if applied is not None and applied.get("sha") == sha:
            return  # what this node serves already
        if not isinstance(sealed, int) or isinstance(sealed, bool):
            if applied is None:
                return  # a first bundle sealed by an older floatgate (no number in it)
            raise BundleError("the document has no sealed revision number (pushed by an "
                              "older floatgate): push it again with this version")  # fmt: skip
        if sealed != record.get("revision"):
            raise BundleError(
                f"bundle/current names revision {record.get('revision')} but the document "
                f"is sealed as revision {sealed}: current was rewritten without a push"
            )
        served = applied.get("revision") if applied is not None else None
        if isinstance(served, int) and sealed <= served:
            raise BundleError(
                f"revision {sealed} is not newer than revision {served}, which this node "
                "serves: an old bundle was put back in etcd (if etcd was restored from a "
                "backup, push again: a push continues above what the nodes serve)"
            )

    async def _apply(self, sha: str, record: dict[str, Any]) -> None:
        staging, config, tls = await self._stage(sha, record)
        async with self.lock:
            self.applying_from = staging  # where the files are while ``apply`` runs
            try:
                await self.apply(config, tls)
            except Exception as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise BundleError(f"applying failed: {exc}") from exc
            finally:
                self.applying_from = None
            self._promote(staging, record)
            log.info("bundle revision %s (%s) applied", record.get("revision"), sha[:12])
            if self.on_applied is not None:
                try:  # the bundle is current now: nothing here may refuse it
                    await self.on_applied(record)
                except Exception:
                    log.exception("after applying bundle revision %s", record.get("revision"))

    def _promote(self, staging: Path, record: dict[str, Any]) -> None:
        (staging / RECORD).write_text(json.dumps(record, sort_keys=True))
        current, old = self.data_dir / "current", self.data_dir / ".previous"
        shutil.rmtree(old, ignore_errors=True)
        if current.exists():
            current.rename(old)
        staging.rename(current)
        shutil.rmtree(old, ignore_errors=True)
        self.applied, self.error, self._refused = record, None, None
