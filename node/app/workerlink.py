"""What the node process and its data-plane workers tell each other, one JSON object
per line over a Unix socket pair the worker inherits.

node process -> worker: ``start`` (what to serve: the configuration's paths, the
listening sockets' descriptors, logging), ``serve`` (begin accepting), ``drain``
(stop accepting, finish in flight within ``grace``, exit).
worker -> node process: ``ready`` (configuration loaded, waiting for ``serve``),
``failed`` (it cannot serve this configuration: why), ``beat`` (every BEAT seconds
from the worker's event loop: it is alive and not stuck; with what it serves).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

BEAT = 0.1  # seconds between a worker's beats
COUNTS_EVERY = 10  # every tenth beat carries the worker's counters (once a second)
HUNG_AFTER = 2.0  # no beat for this long: the worker's event loop is stuck, replace it
MAX_LINE = 1 << 20


class LinkError(Exception):
    """The other end sent something that is not a message of this protocol."""


@dataclass(frozen=True, slots=True)
class StartOrder:
    cluster: str  # cluster.yaml path
    certs: str  # certificates directory
    listeners: list[tuple[str, int, int]]  # host, port, inherited descriptor
    access_log: dict[str, Any]  # AccessLogConfig's fields
    log_level: str
    log_format: str
    index: int
    generation: int
    workers: int = 1  # how many serve: each takes its share of maxconn (node.config.share)
    acme: str = ""  # a standalone node's ACME directory (issued certificates), if any

    def message(self) -> dict[str, Any]:
        return {"op": "start", **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def parse(cls, message: dict[str, Any]) -> StartOrder:
        try:
            return cls(
                cluster=str(message["cluster"]),
                certs=str(message["certs"]),
                listeners=[(str(h), int(p), int(fd)) for h, p, fd in message["listeners"]],
                access_log=dict(message["access_log"]),
                log_level=str(message["log_level"]),
                log_format=str(message["log_format"]),
                index=int(message["index"]),
                generation=int(message["generation"]),
                workers=int(message.get("workers", 1)),
                acme=str(message.get("acme", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LinkError(f"bad start order: {exc!r}") from exc


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


async def receive(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message; None when the other end closed the link."""
    try:
        line = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError) as exc:
        raise LinkError(f"message too long: {exc}") from exc
    except (ConnectionError, OSError):
        return None
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise LinkError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise LinkError(f"not a message: {line[:80]!r}")
    return message
