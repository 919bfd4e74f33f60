"""Server names (SNI) matched against names and patterns: certificate names for TLS
offload, route patterns for passthrough. One rule for both: case does not matter, a
trailing dot is ignored, an exact name wins over a wildcard, and a wildcard
``*.example.com`` covers exactly one label (``a.example.com``, not ``example.com`` nor
``a.b.example.com``), as in RFC 6125 section 6.4.3."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


def normalize_server_name(name: str) -> str:
    return name.lower().rstrip(".")


class NameTable(Generic[V]):
    """Names and wildcard patterns to values; the first value given for a pattern wins."""

    def __init__(self, entries: Iterable[tuple[str, V]]) -> None:
        self._exact: dict[str, V] = {}
        self._wildcard: dict[str, V] = {}
        for pattern, value in entries:
            pattern = normalize_server_name(pattern)
            if pattern.startswith("*."):
                self._wildcard.setdefault(pattern[2:], value)
            else:
                self._exact.setdefault(pattern, value)

    def lookup(self, server_name: str | None) -> V | None:
        if not server_name:
            return None
        name = normalize_server_name(server_name)
        found = self._exact.get(name)
        if found is None and "." in name:
            found = self._wildcard.get(name.split(".", 1)[1])
        return found
