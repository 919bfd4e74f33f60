"""Gauges read from the running node at scrape time: frontends, backends and servers
(HAProxy exporter names with the ``floatgate_`` prefix), and the cluster state none of
HAProxy's metrics covers (role, lease, fencing token, VIP, bundle, certificates)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.observe.build import floatgate_version

if TYPE_CHECKING:
    from node.app.ordering import AcmeSeat
    from node.app.supervisor import WorkerPool
    from node.bundle.apply import BundleApplier
    from node.cluster.role import ClusterRole
    from node.config.model import ClusterConfig
    from node.proxy.plane import DataPlane
    from node.tls.material import TlsMaterial


class NodeParts(Protocol):
    """The running parts the gauges read (node.app.daemon.Daemon has them)."""

    plane: DataPlane | None
    workers: WorkerPool | None
    running: ClusterConfig | None  # what the workers serve
    running_tls: TlsMaterial | None
    role: ClusterRole | None
    bundles: BundleApplier | None
    restart_needed: list[str]
    acme: AcmeSeat | None


ROLES = ("active", "standby", "standalone")


class StateCollector(Collector):
    def __init__(self, daemon: NodeParts) -> None:
        self.daemon = daemon
        self.version = floatgate_version()

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("floatgate_build_info", "floatgate version", labels=["version"])
        info.add_metric([self.version], 1)
        yield info
        yield from self._data_plane()
        yield from self._workers()
        yield from self._cluster()
        yield from self._bundle()
        yield from self._acme()

    def _acme(self) -> Iterator[Metric]:
        """The ACME orderer's state, from the node that runs it (the active)."""
        seat = self.daemon.acme
        if seat is None:
            return
        yield GaugeMetricFamily("floatgate_acme_orderer",
                                "1 when this node orders ACME certificates (the active)",
                                value=1 if seat.running else 0)  # fmt: skip
        if not seat.running:
            return
        success = GaugeMetricFamily(
            "floatgate_acme_last_success_timestamp_seconds",
            "When the certificate was last issued by this node's orderer (Unix time; "
            "0: not since it started)", labels=["certificate"])  # fmt: skip
        upcoming = GaugeMetricFamily(
            "floatgate_acme_next_attempt_timestamp_seconds",
            "When the orderer orders (or looks at) the certificate next (Unix time)",
            labels=["certificate"])  # fmt: skip
        streak = GaugeMetricFamily(
            "floatgate_acme_consecutive_failures",
            "Failed orders in a row (0 after a success)", labels=["certificate"])  # fmt: skip
        failures = CounterMetricFamily(
            "floatgate_acme_failures", "Failed orders, by reason",
            labels=["certificate", "reason"])  # fmt: skip
        for name, state in sorted(seat.orderer.states.items()):
            success.add_metric([name], state.last_success or 0.0)
            upcoming.add_metric([name], state.decision.at if state.decision else 0.0)
            streak.add_metric([name], state.attempts.failures)
            for reason, count in sorted(state.failures.items()):
                failures.add_metric([name, reason], count)
        yield from (success, upcoming, streak, failures)

    def _workers(self) -> Iterator[Metric]:
        pool = self.daemon.workers
        if pool is None:
            return
        processes = GaugeMetricFamily(
            "floatgate_worker_processes",
            "Data-plane worker processes, by role (worker: serving or starting to; spare; "
            "draining: an older generation finishing its requests)",
            labels=["role"],
        )
        roles = {"worker": 0, "spare": 0, "draining": 0}
        for row in pool.table():
            roles[row["role"]] += 1
        for role, count in roles.items():
            processes.add_metric([role], count)
        yield processes
        yield CounterMetricFamily(
            "floatgate_worker_replacements",
            "Workers that died or stopped answering and were replaced",
            value=pool.restarts,
        )
        yield GaugeMetricFamily(
            "floatgate_worker_generation", "Worker generation (1 + reloads)", value=pool.generation
        )

    def _data_plane(self) -> Iterator[Metric]:
        plane = self.daemon.plane
        sessions = GaugeMetricFamily(
            "floatgate_frontend_current_sessions",
            "Client connections open now",
            labels=["frontend"],
        )
        limit = GaugeMetricFamily(
            "floatgate_frontend_limit_sessions", "maxconn of the frontend", labels=["frontend"]
        )
        status = GaugeMetricFamily(
            "floatgate_backend_status", "1 when the backend has a usable server", labels=["backend"]
        )
        active = GaugeMetricFamily(
            "floatgate_backend_active_servers", "Non-backup servers UP", labels=["backend"]
        )
        backup = GaugeMetricFamily(
            "floatgate_backend_backup_servers", "Backup servers UP", labels=["backend"]
        )
        backend_sessions = GaugeMetricFamily(
            "floatgate_backend_current_sessions",
            "Requests or connections at the backend's servers now",
            labels=["backend"],
        )
        server_status = GaugeMetricFamily(
            "floatgate_server_status", "1 UP, 0 DOWN", labels=["backend", "server"]
        )
        server_sessions = GaugeMetricFamily(
            "floatgate_server_current_sessions",
            "Requests or connections at the server now",
            labels=["backend", "server"],
        )
        server_total = CounterMetricFamily(
            "floatgate_server_sessions",
            "Requests or connections sent to the server (restarts at a reload)",
            labels=["backend", "server"],
        )
        expiry = GaugeMetricFamily(
            "floatgate_tls_certificate_expiry_timestamp_seconds",
            "notAfter of each served certificate (Unix time)",
            labels=["certificate"],
        )
        serving = GaugeMetricFamily(
            "floatgate_frontend_serving",
            "1 while the frontend answers its own end-to-end probe (health means serving)",
            labels=["frontend"],
        )
        if plane is not None:
            problems = plane.frontend_problems()
            for listener in plane.listeners.values():
                frontend = listener.handler.route.frontend
                sessions.add_metric([frontend.name], len(listener.connections))
                limit.add_metric([frontend.name], frontend.maxconn)
                serving.add_metric([frontend.name], 0 if frontend.name in problems else 1)
            for pool in plane.pools.values():
                status.add_metric([pool.name], 1 if pool.usable_count() > 0 else 0)
                up = [s for s in pool.servers if s.up]
                active.add_metric([pool.name], sum(1 for s in up if not s.config.backup))
                backup.add_metric([pool.name], sum(1 for s in up if s.config.backup))
                backend_sessions.add_metric([pool.name], sum(s.active for s in pool.servers))
                for s in pool.servers:
                    server_status.add_metric([pool.name, s.name], 1 if s.up else 0)
                    server_sessions.add_metric([pool.name, s.name], s.active)
                    server_total.add_metric([pool.name, s.name], s.total)
            for name, cert in sorted(plane.tls.certs.items()):
                expiry.add_metric([name], cert.not_after.timestamp())
        elif self.daemon.workers is not None and self.daemon.running is not None:
            # health is decided in the node process; sessions are the workers' sums
            workers, running = self.daemon.workers, self.daemon.running
            problems = workers.problems()
            open_by_frontend, by_server = workers.sessions()
            for frontend in running.frontends:
                sessions.add_metric([frontend.name], open_by_frontend.get(frontend.name, 0))
                limit.add_metric([frontend.name], frontend.maxconn)
                down = frontend.name in problems or "workers" in problems
                serving.add_metric([frontend.name], 0 if down else 1)
            for pool in workers.health.values():
                status.add_metric([pool.name], 1 if pool.usable_count() > 0 else 0)
                up = [s for s in pool.servers if s.up]
                active.add_metric([pool.name], sum(1 for s in up if not s.config.backup))
                backup.add_metric([pool.name], sum(1 for s in up if s.config.backup))
                in_flight = 0
                for s in pool.servers:
                    now, sent = by_server.get((pool.name, s.name), [0, 0])
                    in_flight += now
                    server_status.add_metric([pool.name, s.name], 1 if s.up else 0)
                    server_sessions.add_metric([pool.name, s.name], now)
                    server_total.add_metric([pool.name, s.name], sent)
                backend_sessions.add_metric([pool.name], in_flight)
            if self.daemon.running_tls is not None:
                for name, cert in sorted(self.daemon.running_tls.certs.items()):
                    expiry.add_metric([name], cert.not_after.timestamp())
        yield from (
            sessions,
            limit,
            serving,
            status,
            active,
            backup,
            backend_sessions,
            server_status,
            server_sessions,
            server_total,
            expiry,
        )

    def _cluster(self) -> Iterator[Metric]:
        role = self.daemon.role
        roles = GaugeMetricFamily(
            "floatgate_node_role", "1 for this node's current role", labels=["role"]
        )
        current = "standalone" if role is None else role.status_role()
        for name in ROLES:
            roles.add_metric([name], 1 if name == current else 0)
        yield roles
        if role is None:
            return
        election, vip = role.election, role.vip
        leader = election.leader
        token = election.fencing_token if election.is_leader() else None
        if token is None and leader is not None:
            token = leader.fencing_token
        yield CounterMetricFamily(
            "floatgate_leader_changes",
            "New reigns seen by this node",
            value=election.succession.changes,
        )
        yield GaugeMetricFamily(
            "floatgate_lease_remaining_seconds",
            "Time left before this node's leadership deadline (0: not active)",
            value=role.lease_remaining(),
        )
        yield GaugeMetricFamily(
            "floatgate_lease_ttl_seconds",
            "The lease TTL etcd granted (else the configured one)",
            value=election.granted_ttl or role.config.election.lease_ttl,
        )
        yield GaugeMetricFamily(
            "floatgate_fencing_token",
            "The current reign's fencing token as this node sees it (0: unknown)",
            value=token or 0,
        )
        yield GaugeMetricFamily(
            "floatgate_vip_present",
            "1 while the VIP is on this node",
            value=1 if vip.present else 0,
        )
        yield GaugeMetricFamily(
            "floatgate_vip_conflict",
            "1 while another host answers ARP for the VIP",
            value=1 if vip.conflict else 0,
        )
        yield CounterMetricFamily(
            "floatgate_garp_sent", "Gratuitous ARPs sent for the VIP", value=vip.garps_sent
        )
        yield GaugeMetricFamily(
            "floatgate_etcd_reachable",
            "1 while the election has a current view of etcd",
            value=1 if election.view else 0,
        )
        yield GaugeMetricFamily(
            "floatgate_node_healthy",
            "1 while this node may campaign",
            value=1 if role.healthy() else 0,
        )
        yield GaugeMetricFamily(
            "floatgate_failsafe_active",
            "1 while leading on peers' promises with etcd away",
            value=1 if election.failsafe_active else 0,
        )

    def _bundle(self) -> Iterator[Metric]:
        bundles = self.daemon.bundles
        if bundles is None:
            return
        status = bundles.status()
        info = GaugeMetricFamily(
            "floatgate_bundle_revision_info",
            "The bundle revision this node serves",
            labels=["revision"],
        )
        if status["revision"] is not None:
            info.add_metric([str(status["revision"])], 1)
        yield info
        yield GaugeMetricFamily(
            "floatgate_bundle_revision",
            "The bundle revision this node serves (0: none)",
            value=status["revision"] or 0,
        )
        yield GaugeMetricFamily(
            "floatgate_bundle_latest_revision",
            "The cluster's current revision as this node last read it (0: unknown)",
            value=status["current"] or 0,
        )
        yield GaugeMetricFamily(
            "floatgate_bundle_uptodate",
            "1 when this node serves the cluster's current revision",
            value=1 if status["uptodate"] else 0,
        )
        yield GaugeMetricFamily(
            "floatgate_bundle_restart_needed",
            "1 when the served bundle changes election/vip settings this node applies only "
            "at a restart",
            value=1 if self.daemon.restart_needed else 0,
        )
        yield CounterMetricFamily(
            "floatgate_bundle_apply_failures",
            "Bundle revisions this node refused to apply (last good kept)",
            value=bundles.failures,
        )
