"""The accept loop cannot die: a loop that ends with an exception (a bug) is logged
with its reason, counted and restarted, and per-connection failures stay contained."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from node.config import parse_cluster
from node.proxy.plane import DataPlane


async def test_a_failing_accept_loop_is_restarted(caplog: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = parse_cluster(f"""
cluster: t
frontends: [{{name: web, bind: "127.0.0.1:{port}", default_backend: app}}]
backends: [{{name: app, servers: [{{name: s1, address: "127.0.0.1:9"}}]}}]
""")
    plane = DataPlane(config, access_log=False)
    await plane.start()
    try:
        listener = plane.listeners[("127.0.0.1", port)]
        original = listener._accept_loop
        calls = 0

        async def broken(sock: socket.socket) -> None:  # fails once, then the real loop
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug in the accept loop")
            await original(sock)

        listener._accept_loop = broken  # type: ignore[method-assign]
        listener._tasks[0].cancel()
        await asyncio.gather(listener._tasks[0], return_exceptions=True)
        listener._tasks[0] = asyncio.create_task(listener._accepting(listener._socket))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        assert calls == 2
        assert listener.serving() is None
        assert plane.meters.frontend("web").accept_errors == 1
        assert "accept loop failed (RuntimeError: a bug in the accept loop)" in caplog.text
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    finally:
        await plane.stop(0.1)
