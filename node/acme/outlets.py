"""Where the orderer's results go.

- :class:`ClusterOutlet`: a new bundle revision on top of the current one (the issued
  chain and key, sealed), stored under the active's fencing token; operators' renewal
  requests are keys in etcd (``/floatgate/<cluster>/acme/renew/<certificate>``), so
  whichever node is active when one is made sees it.
- :class:`LocalOutlet` (a standalone node): ``<data_dir>/acme/<certificate>.pem``
  (mode 0600), then the node reloads; requests are files ``<data_dir>/acme/renew/<name>``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aetcd

from node.acme.errors import LeadershipLost
from node.bundle.commands import amend
from node.bundle.errors import BundleError, FenceLost
from node.bundle.store import BundleStore
from node.config.acme import ACME_DIR, issued_file


def renew_key(cluster: str, name: str = "") -> bytes:
    return f"/floatgate/{cluster}/acme/renew/{name}".encode()


class ClusterOutlet:
    def __init__(
        self, store: BundleStore, secret: bytes, cluster: str, node: str,
        token: Callable[[], int | None],
    ) -> None:  # fmt: skip
        """``token``: the fencing token while this node is the active, else None."""
        self.bundles, self.secret, self.cluster, self.node = store, secret, cluster, node
        self.token = token

    def _fence(self) -> int:
        token = self.token()
        if token is None:
            raise LeadershipLost("this node is no longer the active")
        return token

    async def store(self, name: str, pem: bytes, message: str) -> None:
        try:
            await amend(self.bundles, self.secret, {issued_file(name): pem}, message,
                        f"acme@{self.node}", self._fence())  # fmt: skip
        except FenceLost as exc:
            raise LeadershipLost(str(exc)) from exc

    async def requested(self) -> set[str]:
        prefix = renew_key(self.cluster)

        async def read(client: aetcd.Client) -> set[str]:
            found = await client.get_prefix(prefix)
            return {bytes(kv.key)[len(prefix) :].decode(errors="replace") for kv in found.kvs}

        result: set[str] = await self.bundles.access.first_answer(
            "reading ACME renewal requests", read, self.bundles.timeout
        )
        return result

    async def done(self, name: str) -> None:
        token, key, leader = self._fence(), renew_key(self.cluster, name), self.bundles.leader

        async def delete(client: aetcd.Client) -> None:
            await client.transaction(compare=[client.transactions.create(leader) == token],
                                     success=[client.transactions.delete(key)],
                                     failure=[])  # fmt: skip

        await self.bundles.access.first_answer("clearing an ACME renewal request", delete,
                                               self.bundles.timeout)  # fmt: skip


async def request_renewal(store: BundleStore, cluster: str, name: str) -> None:
    """``floatgate acme renew NAME`` on a cluster: the active orders at its next look."""
    key = renew_key(cluster, name)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").encode()

    async def put(client: aetcd.Client) -> None:
        await client.put(key, stamp)

    try:
        await store.access.first_answer("requesting an ACME renewal", put, store.timeout)
    except Exception as exc:
        raise BundleError(f"cannot reach etcd to request the renewal: {exc}") from exc


class LocalOutlet:
    def __init__(self, data_dir: Path, reload: Callable[[], Awaitable[bool]]) -> None:
        self.root = data_dir
        self.reload = reload

    async def store(self, name: str, pem: bytes, message: str) -> None:
        target = self.root / issued_file(name)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.new")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(scratch, target)
        if not await self.reload():
            raise BundleError(f"{target} was written but the reload failed (see the log)")

    async def requested(self) -> set[str]:
        folder = self.root / ACME_DIR / "renew"
        try:
            return {p.name for p in folder.iterdir() if p.is_file()}
        except FileNotFoundError:
            return set()

    async def done(self, name: str) -> None:
        (self.root / ACME_DIR / "renew" / name).unlink(missing_ok=True)


def request_local_renewal(data_dir: Path, name: str) -> Path:
    folder = data_dir / ACME_DIR / "renew"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    path.write_text(datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds") + "\n")
    return path
