"""Starting a node process: the checks that must pass before anything binds (aiohttp's
C parser and version), the event loop, and the run of one Daemon."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Collection
from pathlib import Path

from node.app.daemon import Daemon
from node.app.eventloop import install_event_loop_policy
from node.cluster.errors import ClusterConfigError
from node.cluster.role import ClusterRole
from node.config import ConfigError
from node.config.model import DEFAULT_DATA_DIR, AccessLogConfig, NodeConfig
from node.observe.logsink import LogTargetError
from node.proxy.errors import ListenError
from node.snapshot import load

log = logging.getLogger("floatgate.daemon")


class ParserCheckError(RuntimeError):
    """aiohttp cannot run the data plane: its pure-Python HTTP parser, or too old."""


def require_c_parser() -> None:
    """The pure-Python parser has had request-smuggling bugs; refuse to run on it."""
    from aiohttp import http_parser

    if http_parser.HttpRequestParser is http_parser.HttpRequestParserPy:
        raise ParserCheckError(
            "aiohttp is using its pure-Python HTTP parser (AIOHTTP_NO_EXTENSIONS set, or "
            "the C extension is missing). floatgate refuses to run on it: reinstall aiohttp "
            "from a wheel for this platform and unset AIOHTTP_NO_EXTENSIONS."
        )


AIOHTTP_MINIMUM = (3, 14)  # the data plane uses aiohttp internals tested on this series


def aiohttp_problem(version: str, response_params: Collection[str]) -> str | None:
    """Why this aiohttp cannot run floatgate's data plane (None: it can)."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        found = (0, 0)
    wanted = ".".join(map(str, AIOHTTP_MINIMUM))
    if not AIOHTTP_MINIMUM <= found < (4, 0) or "max_headers" not in response_params:
        return (
            f"floatgate needs aiohttp {wanted} or newer (below 4), found {version}: "
            f"install it with: pip install 'aiohttp>={wanted},<4'"
        )
    return None


def require_aiohttp() -> None:
    import inspect

    import aiohttp
    from aiohttp.client_proto import ResponseHandler

    params = inspect.signature(ResponseHandler.set_response_params).parameters
    problem = aiohttp_problem(aiohttp.__version__, params)
    if problem is not None:
        raise ParserCheckError(problem)


def run_standalone(
    cluster_path: Path,
    certs_dir: Path,
    access_log: AccessLogConfig | bool = True,
    node: NodeConfig | None = None,
) -> int:
    # A standalone node keeps what ACME issues in its data_dir; a cluster node in bundles.
    standalone = node is None or node.etcd is None
    acme_dir = Path(node.data_dir if node is not None else DEFAULT_DATA_DIR) \
        if standalone else None  # fmt: skip
    try:
        require_aiohttp()
        require_c_parser()
        config, tls = load(cluster_path, certs_dir, acme_dir)
        if node is not None and node.etcd is not None:
            ClusterRole.validate(node, config)
    except ClusterConfigError as exc:
        print(f"floatgate: cannot run as a cluster node: {exc}", file=sys.stderr)
        return 2
    except ParserCheckError as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"floatgate: configuration is invalid, not starting:\n{exc}", file=sys.stderr)
        return 2
    loop_name = install_event_loop_policy()
    log.info("event loop: %s", loop_name)
    try:
        daemon = Daemon(cluster_path, certs_dir, access_log, node, acme_dir)
        asyncio.run(daemon.run(config, tls))
    except ClusterConfigError as exc:
        print(f"floatgate: cannot run as a cluster node: {exc}", file=sys.stderr)
        return 2
    except (ListenError, LogTargetError, OSError) as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 1
    return 0
