"""Faults a node carries out on itself for `floatgate drill` (POST /drill, admin token):
exit without any cleanup (like a crash: the VIP stays until its kernel lifetime ends,
the lease until its TTL), freeze the event loop, drop its etcd traffic, stop its
frontends accepting for a while (frontend-stall), or close the first frontend's listening
socket (frontend-close). The last two break serving while the process and its lease
stay fine: the node's self-check must notice and hand over."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from node.proxy.plane import DataPlane

if TYPE_CHECKING:
    from node.bundle.store import BundleStore
    from node.cluster.role import ClusterRole

log = logging.getLogger("floatgate.drill")

FAULTS = ("exit", "freeze", "isolate", "frontend-stall", "frontend-close")
MAX_SECONDS = 120.0


class DrillError(ValueError):
    """The drill request cannot be carried out (nothing was done)."""


def inject(
    role: ClusterRole | None, fault: str, seconds: float, bundles: BundleStore | None = None
) -> str:
    """Schedule ``fault`` (50 ms from now, so the HTTP answer goes out first); returns
    what will happen."""
    if role is None:
        raise DrillError("standalone node: drills need a cluster")
    if fault not in FAULTS:
        raise DrillError(f"unknown fault {fault!r}: one of {', '.join(FAULTS)}")
    if fault not in ("exit", "frontend-close") and not 0 < seconds <= MAX_SECONDS:
        raise DrillError(f"seconds must be in (0, {MAX_SECONDS:.0f}]")
    loop = asyncio.get_running_loop()
    name = role.node.name
    if fault == "exit":
        log.warning("%s: drill: exiting now without cleanup (like a crash)", name)
        loop.call_later(0.05, os._exit, 70)
        return "exiting without cleanup"
    if fault == "freeze":
        log.warning("%s: drill: freezing the event loop for %.1fs", name, seconds)
        loop.call_later(0.05, time.sleep, seconds)
        return f"freezing the event loop for {seconds:.1f}s"
    if fault.startswith("frontend-") and not isinstance(role.plane, DataPlane):
        raise DrillError(f"{fault} acts on an in-process data plane: this node runs workers")
    if fault == "frontend-stall":
        for listener in role.plane.listeners.values():
            listener.stall(seconds)
        log.warning("%s: drill: frontends stop accepting for %.1fs", name, seconds)
        return f"frontends stop accepting for {seconds:.1f}s"
    if fault == "frontend-close":
        listener = next(iter(role.plane.listeners.values()))
        listener.close_socket()
        log.warning("%s: drill: listening socket of frontend %s closed", name, listener.name)
        return f"listening socket of frontend {listener.name} closed (restart to reopen)"
    role.election.isolate(seconds)
    if bundles is not None:  # the bundle watcher is cut off too
        bundles.isolated_until = time.monotonic() + seconds
    return f"dropping etcd traffic for {seconds:.1f}s"
