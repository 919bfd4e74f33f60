"""What the cluster role asks of the data plane: the in-process DataPlane has it, and so
has the node process's view of its workers (node.app.workerplane)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from node.proxy.upstream.pool import BackendPool


class ServingPlane(Protocol):
    @property
    def listeners(self) -> Mapping[Any, Any]:
        """The frontends' listeners (empty: none open)."""

    @property
    def pools(self) -> Mapping[str, BackendPool]:
        """The backends, with their servers' health."""

    def frontend_problems(self) -> dict[str, str]: ...

    def hold_new(self, hold: bool) -> None:
        """Drop (not refuse) new connections, or stop doing so."""

    def quiet(self) -> bool:
        """No connection waiting to be accepted and no exchange in progress."""

    def close_idle(self) -> None:
        """Close keep-alive connections between requests."""

    async def idle_closed(self, limit: float) -> None:
        """Return once what close_idle ordered is done (up to ``limit`` seconds)."""

    def stop_accepting(self) -> None: ...
