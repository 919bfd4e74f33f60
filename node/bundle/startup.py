"""Start-up in bundle mode: the current bundle from etcd into the cache, or, with etcd
unreachable, the last good bundle cached under data_dir."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from node.bundle import secret as secrets_file
from node.bundle.apply import BundleApplier, cached
from node.bundle.commands import store_for
from node.bundle.errors import BundleError
from node.config.model import NodeConfig

log = logging.getLogger("floatgate.bundle")


def cluster_name(node: NodeConfig) -> str:
    """The cluster a node belongs to, as recorded with its cached bundle or given by
    etcd's only cluster: node.yaml names no cluster, so the cache keeps it."""
    found = cached(Path(node.data_dir))
    if found is not None and found[1].get("cluster"):
        return str(found[1]["cluster"])
    raise BundleError(
        "bundle mode needs the cluster name: start once with --cluster cluster.yaml, "
        "or push first and start with --cluster"
    )


def initial_bundle(node: NodeConfig, cluster: str | None = None) -> Path:
    key = secrets_file.load(node.secret_file)
    data_dir = Path(node.data_dir)
    name = cluster or cluster_name(node)

    async def noop(*_: object) -> None:
        return None

    applier = BundleApplier(store_for(node, name), key, data_dir, noop)
    try:
        return asyncio.run(applier.fetch_to_cache())
    except BundleError as exc:
        found = cached(data_dir)
        if found is None:
            raise BundleError(f"{exc}; and no cached bundle under {data_dir}") from exc
        log.warning("etcd: %s; serving the cached bundle revision %s", exc,
                    found[1].get("revision"))  # fmt: skip
        return found[0]
