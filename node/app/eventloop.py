"""The event loop every floatgate process runs on: uvloop where it is installed."""

from __future__ import annotations

import asyncio


def install_event_loop_policy() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
