"""Typed election errors."""

from __future__ import annotations


class ElectionError(Exception):
    """The election could not do what was asked (etcd unreachable, refused, ...)."""


class EtcdUnavailable(ElectionError):
    """etcd did not answer in time; counts against leadership, never for it."""
