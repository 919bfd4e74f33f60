"""Typed errors of the cluster room."""

from __future__ import annotations


class ClusterConfigError(ValueError):
    """node.yaml / cluster.yaml do not describe a runnable cluster node."""


class SwitchoverError(Exception):
    """A planned handover cannot be done (not active, no such standby, ...)."""
