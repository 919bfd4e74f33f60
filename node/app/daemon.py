"""The node daemon: wires configuration, the data plane and signals together.

Standalone mode (no etcd in node.yaml): one proxy, no election, no VIP. The cluster
wiring (election + VIP) joins here in its own issue; this is the only module that
knows about all the parts.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.admin.api import start_admin
from node.admin.status import frontend_table
from node.app.collector import StateCollector
from node.cluster.role import ClusterConfigError, ClusterRole
from node.config import ConfigError, load_cluster
from node.config.model import ClusterConfig, NodeConfig
from node.observe.metrics import Meters
from node.observe.sdnotify import Notifier
from node.proxy.errors import ListenError
from node.proxy.plane import DataPlane
from node.proxy.upstream.pool import server_table
from node.tls.material import TlsConfigError, TlsMaterial, load_tls

if TYPE_CHECKING:
    from node.bundle.apply import BundleApplier

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


def install_event_loop_policy() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def load_all(cluster_path: Path, certs_dir: Path) -> tuple[ClusterConfig, TlsMaterial]:
    """The configuration and every certificate it names, all checked, or ConfigError
    listing every problem (nothing is applied)."""
    config = load_cluster(cluster_path)
    try:
        tls = load_tls(config, certs_dir)
    except TlsConfigError as exc:
        raise ConfigError(exc.errors) from exc
    for warning in tls.warnings:
        log.warning("%s", warning)
    return config, tls


class Daemon:
    def __init__(
        self,
        cluster_path: Path,
        certs_dir: Path,
        access_log: bool = True,
        node: NodeConfig | None = None,
    ) -> None:
        self.node = node
        self.role: ClusterRole | None = None
        self.cluster_path = cluster_path
        self.certs_dir = certs_dir
        self.access_log = access_log
        self._stop = asyncio.Event()
        self._reloads: asyncio.Queue[None] = asyncio.Queue()
        self.plane: DataPlane | None = None
        self.bundles: BundleApplier | None = None
        self.restart_needed: list[str] = []  # bundle settings applied only at a restart
        self.meters = Meters()
        self.notifier = Notifier()
        self.meters.register(StateCollector(self))

    async def run(
        self, config: ClusterConfig, tls: TlsMaterial, ready: Callable[[], None] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reloads.put_nowait, None)
        self.plane = DataPlane(config, self.access_log, tls, self.meters)
        await self.plane.start()
        bundles = self._start_bundles(config)
        if self.node is not None and self.node.etcd is not None:
            self.role = ClusterRole(self.node, config, self.plane, self.bundles, self.meters)
            self.role.start()
            log.info("floatgate node %s running in cluster %s", self.node.name, config.cluster)
        else:
            log.info("floatgate running standalone (%s)", config.source)
        admin = await start_admin(self.node, self) if self.node and self.node.admin else None
        if ready is not None:
            ready()
        self._tell_systemd(config)
        watchdog = asyncio.create_task(self.notifier.watchdog())
        reloader = asyncio.create_task(self._reload_loop())
        await self._stop.wait()
        self.notifier.stopping()
        reloader.cancel()
        if bundles is not None:
            bundles.cancel()
        grace = self.plane.config.shutdown_grace
        if self.role is not None:
            await self.role.hand_over()
        log.info("SIGTERM: stopped accepting; finishing in-flight requests (grace %.1fs)", grace)
        await self.plane.stop(grace)
        if admin is not None:
            await admin.cleanup()
        watchdog.cancel()
        log.info("stopped")

    def _tell_systemd(self, config: ClusterConfig) -> None:
        """READY=1: listeners are bound and the configuration (the bundle, when the node
        follows bundles: it was fetched or read from the cache before start) is applied."""
        revision = (self.bundles.applied or {}).get("revision") if self.bundles else None
        bundle = f", bundle revision {revision}" if revision is not None else ""
        if self.role is None:
            self.notifier.ready(f"standalone: {len(config.frontends)} frontends{bundle}")
            return
        self.notifier.ready(f"standby: listeners bound{bundle}; following the election")

        def changed(leading: bool, reason: str) -> None:
            self.notifier.status(f"{'active' if leading else 'standby'}: {reason}")

        self.role.election.on_change(changed)

    def _start_bundles(self, config: ClusterConfig) -> asyncio.Task[None] | None:
        """With etcd and secret_file in node.yaml, follow the cluster's bundles."""
        node = self.node
        if node is None or node.etcd is None or node.secret_file is None:
            return None
        from node.bundle.apply import BundleApplier
        from node.bundle.commands import store_for
        from node.bundle.errors import BundleError
        from node.bundle.secret import load

        try:
            store = store_for(node, config.cluster)
            store.on_request = self.meters.etcd_request
            self.bundles = BundleApplier(store, load(node.secret_file), Path(node.data_dir),
                                         self._apply_bundle)  # fmt: skip
        except BundleError as exc:
            log.error("bundles disabled: %s", exc)
            return None
        return asyncio.create_task(self.bundles.run())

    async def _apply_bundle(self, config: ClusterConfig, tls: TlsMaterial) -> None:
        assert self.plane is not None
        running = self.role.config if self.role is not None else self.plane.config
        await self.plane.reload(config, tls)
        pending = [
            name for name in ("election", "vip") if getattr(config, name) != getattr(running, name)
        ]
        self.restart_needed = pending
        if pending:
            log.warning(
                "the new bundle changes %s: this node keeps running with the old settings "
                "until it restarts (restart nodes one at a time)", ", ".join(pending),
                extra={"event": "bundle", "restart_needed": pending},
            )  # fmt: skip
        cache = Path(self.node.data_dir if self.node else ".") / "current"
        self.cluster_path, self.certs_dir = cache / "cluster.yaml", cache  # SIGHUP re-reads it
        if self.role is not None and self.role.election.is_leader():
            await self.role.election.update_leader()  # the new revision, under the token

    def status(self) -> dict[str, Any]:
        plane = self.plane
        data: dict[str, Any] = self.role.status() if self.role else {"role": "standalone"}
        data.setdefault("node", self.node.name if self.node else "standalone")
        if self.bundles is not None:
            data["bundle"] = {**self.bundles.status(), "restart_needed": self.restart_needed}
        if plane is not None:
            data["cluster"] = plane.config.cluster
            data["backends"] = server_table(list(plane.pools.values()))
            data["frontends"] = frontend_table(plane, self.meters)
            data["frontend_problems"] = plane.frontend_problems()
        return data

    async def _reload_loop(self) -> None:
        while True:
            await self._reloads.get()
            await self.reload()

    async def reload(self) -> bool:
        """Re-read the cluster file. An invalid file changes nothing."""
        assert self.plane is not None
        try:
            config, tls = load_all(self.cluster_path, self.certs_dir)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return False
        try:
            await self.plane.reload(config, tls)
        except Exception as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        return True


def run_standalone(
    cluster_path: Path, certs_dir: Path, access_log: bool = True, node: NodeConfig | None = None
) -> int:
    try:
        require_aiohttp()
        require_c_parser()
        config, tls = load_all(cluster_path, certs_dir)
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
        asyncio.run(Daemon(cluster_path, certs_dir, access_log, node).run(config, tls))
    except (ListenError, OSError) as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 1
    return 0
