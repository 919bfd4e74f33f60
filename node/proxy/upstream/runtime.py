"""Servers' runtime state, set by operators (HAProxy's runtime API meanings, pure).

- ``ready``: takes traffic as its health allows (the default).
- ``drain``: no new requests or connections; those in flight finish; health checks go
  on, so the status page still says whether it would be UP.
- ``maint``: out, and its health checks stop; in-flight work finishes. Back to ready
  (or drain), a checked server is DOWN until its next check passes.

A weight set at run time overrides the configured one (0..256; 0 takes no new traffic,
like drain). The table is what every node applies: backend -> server -> state.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_WEIGHT = 256


class RuntimeStateError(ValueError):
    """An operator's request names no such server or asks for what cannot be."""


class UnknownServer(RuntimeStateError):
    """The request names a backend or server the served configuration does not have."""


class AdminState(enum.StrEnum):
    READY = "ready"
    DRAIN = "drain"
    MAINT = "maint"


@dataclass(frozen=True, slots=True)
class ServerRuntime:
    state: AdminState = AdminState.READY
    weight: int | None = None  # None: the configured weight
    by: str = ""  # who set it (the admin API's caller: a node name, "cli")
    at: float = 0.0  # when (epoch seconds)

    @property
    def default(self) -> bool:
        return self.state is AdminState.READY and self.weight is None

    def record(self) -> dict[str, Any]:
        return {"state": self.state.value, "weight": self.weight, "by": self.by, "at": self.at}

    @classmethod
    def parse(cls, record: Mapping[str, Any]) -> ServerRuntime:
        """From :meth:`record` (etcd or the state file); raises RuntimeStateError."""
        try:
            state = AdminState(str(record.get("state", "ready")))
            weight = record.get("weight")
            if weight is not None and (not isinstance(weight, int) or isinstance(weight, bool)
                                       or not 0 <= weight <= MAX_WEIGHT):  # fmt: skip
                raise ValueError(f"weight {weight!r}")
            return cls(state, weight, str(record.get("by", "")), float(record.get("at", 0.0)))
        except (ValueError, TypeError) as exc:
            raise RuntimeStateError(f"not a server state: {exc}") from exc


# backend -> server -> its runtime state (servers in the default state are absent)
RuntimeTable = dict[str, dict[str, ServerRuntime]]


def parse_server(target: str) -> tuple[str, str]:
    """``BACKEND/SERVER`` (HAProxy's form) -> (backend, server)."""
    backend, sep, server = target.partition("/")
    if not sep or not backend or not server or "/" in server:
        raise RuntimeStateError(f"{target!r}: expected BACKEND/SERVER, e.g. app/web1")
    return backend, server


def parse_state(text: str) -> AdminState:
    try:
        return AdminState(text.strip().lower())
    except ValueError:
        raise RuntimeStateError(
            f"{text!r} is not a server state: use ready, drain or maint"
        ) from None


def parse_weight(text: str, configured: int) -> int:
    """``N`` or ``N%`` of the configured weight (as HAProxy's ``set weight``)."""
    raw = text.strip()
    match = re.fullmatch(r"(\d{1,4})(%?)", raw)
    if match is None:
        raise RuntimeStateError(f"{text!r} is not a weight: use a number 0-{MAX_WEIGHT} or N%")
    number = int(match.group(1))
    weight = (configured * number + 50) // 100 if match.group(2) else number
    if not 0 <= weight <= MAX_WEIGHT:
        raise RuntimeStateError(f"weight {weight} is out of range: 0-{MAX_WEIGHT}")
    return weight


def known(servers: Mapping[str, Iterable[str]], backend: str, server: str) -> None:
    """Raise UnknownServer unless ``backend/server`` is configured."""
    if backend not in servers:
        names = ", ".join(sorted(servers)) or "none"
        raise UnknownServer(f"no backend {backend!r} (backends: {names})")
    if server not in set(servers[backend]):
        names = ", ".join(sorted(servers[backend])) or "none"
        raise UnknownServer(f"backend {backend!r} has no server {server!r} "
                                f"(servers: {names})")  # fmt: skip


def stale(table: RuntimeTable, servers: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """The entries that name a server the configuration no longer has."""
    return sorted((b, s) for b, by_server in table.items() for s in by_server
                  if s not in set(servers.get(b, ())))  # fmt: skip


def with_entry(
    table: RuntimeTable, backend: str, server: str, entry: ServerRuntime
) -> RuntimeTable:
    """A copy of ``table`` with one server's state (removed when back to the default)."""
    copy = {b: dict(s) for b, s in table.items()}
    if entry.default:
        copy.get(backend, {}).pop(server, None)
        if backend in copy and not copy[backend]:
            del copy[backend]
    else:
        copy.setdefault(backend, {})[server] = entry
    return copy


def table_records(table: RuntimeTable) -> dict[str, dict[str, dict[str, Any]]]:
    return {b: {s: e.record() for s, e in sorted(by.items())} for b, by in sorted(table.items())}


def parse_table(records: Mapping[str, Any]) -> RuntimeTable:
    """What :func:`table_records` wrote; a malformed entry raises RuntimeStateError."""
    table: RuntimeTable = {}
    for backend, by_server in records.items():
        if not isinstance(by_server, Mapping):
            raise RuntimeStateError(f"backend {backend!r}: not a table of servers")
        for server, record in by_server.items():
            if not isinstance(record, Mapping):
                raise RuntimeStateError(f"{backend}/{server}: not a server state")
            table.setdefault(str(backend), {})[str(server)] = ServerRuntime.parse(record)
    return table
