"""A path-tracking reader over parsed YAML that collects every error.

Each accessor returns a typed value (or a fallback when the value is invalid) and records
``file: path: message`` errors instead of raising, so one run of ``floatgate check``
lists every problem at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from node.config.model import HostPort, Network

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)$")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_duration(text: str) -> float:
    """``'200ms'`` -> 0.2. Raises ValueError with an operator-readable message."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 2s, 1m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_host_port(text: str) -> HostPort:
    """``'10.0.0.1:80'``, ``':443'`` (all addresses), ``'[::1]:8080'``, ``'name:80'``."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r} is not host:port")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{text!r} is not host:port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not host:port (port must be 1-65535)")
    if host == "":
        host = "0.0.0.0"
    elif not re.fullmatch(r"[A-Za-z0-9.:_-]+", host):
        raise ValueError(f"{text!r} is not host:port")
    return HostPort(host, int(port_text))


@dataclass(frozen=True)
class KeyFact:
    """What the reader knows of one key: its kind of value and its default."""

    kind: str
    default: str = ""


@dataclass
class KeysSeen:
    """What a Reader was asked while reading (node.config.reference builds the
    configuration reference from it): the keys each mapping accepts, the mappings
    whose keys are names, and the kind and default of each key read."""

    accepted: dict[str, set[str]] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    named: set[str] = field(default_factory=set)
    facts: dict[str, KeyFact] = field(default_factory=dict)


class Reader:
    """Walks one YAML document; ``errors`` accumulates ``file: path: message`` lines.
    With ``seen``, every mapping and key it reads is recorded there."""

    def __init__(self, source: str, errors: list[str], seen: KeysSeen | None = None) -> None:
        self.source = source
        self.errors = errors
        self.seen = seen

    def error(self, path: str, message: str) -> None:
        where = f"{self.source}: {path}" if path else self.source
        self.errors.append(f"{where}: {message}")

    def fact(self, path: str, key: str, kind: str, default: object = None) -> None:
        """Record a key's kind and default (a reference pass; otherwise nothing)."""
        if self.seen is not None:
            shown = "" if default is None or default == "" else _shown(default)
            self.seen.facts.setdefault(_join(path, key), KeyFact(kind, shown))

    def mapping(
        self,
        value: Any,
        path: str,
        allowed: AbstractSet[str],
        required: AbstractSet[str] = frozenset(),
    ) -> Mapping[str, Any]:
        if self.seen is not None:
            self.seen.accepted.setdefault(path, set()).update(allowed)
            self.seen.required.update(_join(path, key) for key in required)
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, got {_kind(value)}")
            return {}
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.error(_join(path, str(key)), f"unknown key (allowed here: {hint})")
        for key in sorted(required - set(value)):
            self.error(_join(path, key), "is required")
        return value

    def named(self, value: Any, path: str) -> Mapping[str, Any]:
        """A mapping whose keys are names the operator chooses (certificates, CAs)."""
        if self.seen is not None:
            self.seen.named.add(path)
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, got {_kind(value)}")
            return {}
        for key in value:
            if not isinstance(key, str) or not _NAME.match(key):
                self.error(_join(path, str(key)), "is not a valid name (letters, digits, _ . -)")
        return value

    def items(self, value: Any, path: str) -> Iterator[tuple[str, Any]]:
        """Index paths and elements of a list (reports non-lists)."""
        if value is None:
            return
        if not isinstance(value, list):
            self.error(path, f"must be a list, got {_kind(value)}")
            return
        for index, element in enumerate(value):
            yield f"{path}[{index}]", element

    def string(
        self, m: Mapping[str, Any], key: str, path: str, default: str = "", kind: str = "string"
    ) -> str:
        self.fact(path, key, kind, default)
        value = m.get(key, default)
        if not isinstance(value, str):
            self.error(_join(path, key), f"must be a string, got {_kind(value)}")
            return default
        return value

    def name(self, m: Mapping[str, Any], key: str, path: str) -> str:
        value = self.string(m, key, path, kind="name")
        if key in m and isinstance(m[key], str) and not _NAME.match(value):
            self.error(_join(path, key), f"{value!r} is not a valid name (letters, digits, _ . -)")
        return value

    def boolean(self, m: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        self.fact(path, key, "true or false", default)
        value = m.get(key, default)
        if not isinstance(value, bool):
            self.error(_join(path, key), f"must be true or false, got {value!r}")
            return default
        return value

    def choice(
        self, m: Mapping[str, Any], key: str, path: str, default: str, options: tuple[str, ...]
    ) -> str:
        """One of ``options`` (the default when absent or invalid)."""
        self.fact(path, key, " | ".join(options), default)
        value = m.get(key, default)
        if value not in options:
            self.error(_join(path, key), f"{value!r} is not one of {', '.join(options)}")
            return default
        return str(value)

    def integer(
        self, m: Mapping[str, Any], key: str, path: str, default: int, low: int, high: int
    ) -> int:
        self.fact(path, key, f"integer {low}-{high}", default)
        value = m.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(_join(path, key), f"must be an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self.error(_join(path, key), f"{value} is out of range ({low}-{high})")
            return default
        return value

    def duration(
        self, m: Mapping[str, Any], key: str, path: str, default: float, low: float = 0.001
    ) -> float:
        self.fact(path, key, "duration" if low <= 0.001 else f"duration, at least {low:g}s",
                  _seconds(default))  # fmt: skip
        if key not in m:
            return default
        value = m[key]
        if not isinstance(value, str):
            self.error(_join(path, key), f"{value!r} is not a duration (use e.g. 500ms, 2s, 1m)")
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(_join(path, key), str(exc))
            return default
        if seconds < low:
            self.error(_join(path, key), f"{value!r} is too short (minimum {low:g}s)")
            return default
        return seconds

    def host_port(self, m: Mapping[str, Any], key: str, path: str) -> HostPort | None:
        self.fact(path, key, "host:port")
        value = m.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(_join(path, key), f"{value!r} is not host:port")
            return None
        try:
            return parse_host_port(value)
        except ValueError as exc:
            self.error(_join(path, key), str(exc))
            return None

    def networks(self, value: Any, path: str) -> tuple[Network, ...]:
        if self.seen is not None:
            self.seen.facts.setdefault(path, KeyFact("list of CIDR networks"))
        result: list[Network] = []
        for item_path, item in self.items(value, path):
            try:
                result.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                self.error(item_path, f"{item!r} is not an IP network (CIDR)")
        return tuple(result)


def _seconds(value: float) -> str:
    """A duration as an operator writes it: 0.2 -> 200ms, 600 -> 10m."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        count = value / size
        if value >= size and abs(count - round(count)) < 1e-6:
            return f"{round(count)}{unit}"
    return f"{value:g}s"


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else repr(value)
