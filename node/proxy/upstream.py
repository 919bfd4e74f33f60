"""The client side towards servers: one aiohttp session per backend pool.

The connector records how long each new connection took to establish (HAProxy's Tc)
in a context variable, which the request handler reads after the request returns.
"""

from __future__ import annotations

import contextvars
import time
from typing import Any

import aiohttp

from node.config.model import BackendConfig

# Per-request (per-task) value, not shared state: set by the connector inside the
# handler's own task, read by that handler right after.
connect_seconds: contextvars.ContextVar[float] = contextvars.ContextVar(
    "floatgate_connect_seconds", default=0.0
)


class TimedConnector(aiohttp.TCPConnector):
    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
        started = time.monotonic()
        try:
            return await super()._create_connection(req, traces, timeout)
        finally:
            connect_seconds.set(time.monotonic() - started)


def make_session(backend: BackendConfig, one_shot: bool = False) -> aiohttp.ClientSession:
    """The backend's session. ``one_shot``: every connection closes after one request
    (for requests that must never share a connection with another)."""
    connector = TimedConnector(
        limit=0,
        limit_per_host=0,
        keepalive_timeout=None if one_shot else 30.0,
        force_close=one_shot,
        ttl_dns_cache=10,
        enable_cleanup_closed=False,
    )
    timeouts = backend.timeouts
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.server
        ),
        read_bufsize=2**16,
        max_line_size=2**16,
        max_field_size=2**16,
        trust_env=False,
        raise_for_status=False,
    )
    # aiohttp silently retries idempotent requests once on a stale pooled connection;
    # the backend's own ``retries`` setting is the only retry policy floatgate applies.
    session._retry_connection = False
    return session
