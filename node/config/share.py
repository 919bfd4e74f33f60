"""A node's connection limits split among its worker processes (``workers: N``).

``maxconn`` of a frontend and of a server is for the node as a whole: each of N workers
gets ``ceil(maxconn / N)``, so the node admits at most ``maxconn + N - 1`` (exactly
``maxconn`` when N divides it). A worker at its share stops accepting; the clients wait
in the shared listen backlog and another worker with room accepts them. A server's share
is per worker: a request waits in its worker's queue even when another worker has room
at that server (``maxqueue`` and the queue timeout hold per worker)."""

from __future__ import annotations

from dataclasses import replace

from node.config.model import ClusterConfig


def share(limit: int, workers: int) -> int:
    """One worker's part of ``limit`` (0, unlimited, stays 0)."""
    if limit <= 0 or workers <= 1:
        return limit
    return -(-limit // workers)


def split_limits(config: ClusterConfig, workers: int) -> ClusterConfig:
    """``config`` as one of ``workers`` workers serves it."""
    if workers <= 1:
        return config
    frontends = tuple(replace(f, maxconn=share(f.maxconn, workers)) for f in config.frontends)
    backends = tuple(
        replace(b, servers=tuple(replace(s, maxconn=share(s.maxconn, workers)) for s in b.servers))
        for b in config.backends
    )
    return replace(config, frontends=frontends, backends=backends)
