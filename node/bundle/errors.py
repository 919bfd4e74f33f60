"""Typed errors of the bundle package; every message says what to do next."""

from __future__ import annotations


class BundleError(Exception):
    """A bundle could not be built, stored, fetched or applied."""


class SecretError(BundleError):
    """The cluster secret is missing, unreadable, malformed or not the one used."""


class BundleUnauthenticated(SecretError):
    """A bundle document's MAC is missing or does not verify with this cluster secret."""


class BundleCorrupt(BundleError):
    """What etcd holds is not a bundle this secret and hash accept."""


class BundleInvalid(BundleError):
    """The bundle's configuration or certificates do not pass validation."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class PushConflict(BundleError):
    """Another push changed ``current`` since this one read it."""


class FenceLost(BundleError):
    """A fenced write (the active's, under its fencing token) found another reign."""
