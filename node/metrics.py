"""Prometheus meters updated as things happen (requests, handshakes, checks, etcd
requests, takeovers). Names follow HAProxy's built-in exporter with the ``floatgate_``
prefix where the concept matches (``haproxy_frontend_http_requests_total`` ->
``floatgate_frontend_http_requests_total``), so HAProxy dashboards adapt by a rename.

Gauges that describe the current state (sessions, server status, role, lease) are read
at scrape time by :mod:`node.metricstate`. Each daemon owns its registry: nothing here is
module-level state. Label values are bounded: names from the configuration, HTTP status
classes, fixed result words -- never client addresses or paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from node.proxy.accesslog import AccessEntry

CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
HANDSHAKE_RESULTS = ("ok", "failed", "timeout", "aborted")
# Backend response times: 1 ms .. 30 s (HAProxy's Tr); takeovers: 50 ms .. 30 s.
RESPONSE_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
ETCD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TAKEOVER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 10.0, 30.0)


def code_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


@dataclass(frozen=True, slots=True)
class FrontendMeters:
    """One frontend's counters, bound once (no label lookup per request)."""

    requests: dict[str, Counter]
    connections: Counter
    bytes_in: Counter
    bytes_out: Counter
    request_errors: Counter
    handshakes: dict[str, Counter]


@dataclass(frozen=True, slots=True)
class BackendMeters:
    responses: dict[str, Counter]
    response_time: Histogram


class Meters:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "floatgate_frontend_http_requests",
            "HTTP requests answered, by status class (HAProxy: "
            "haproxy_frontend_http_responses_total)",
            ["frontend", "code"],
            registry=r,
        )
        self._connections = Counter(
            "floatgate_frontend_connections",
            "Client connections accepted",
            ["frontend"],
            registry=r,
        )
        self._bytes_in = Counter(
            "floatgate_frontend_bytes_in", "Bytes received from clients", ["frontend"], registry=r
        )
        self._bytes_out = Counter(
            "floatgate_frontend_bytes_out",
            "Bytes sent to clients (response bodies; mode tcp: all)",
            ["frontend"],
            registry=r,
        )
        self._request_errors = Counter(
            "floatgate_frontend_request_errors",
            "Requests refused as malformed or too large",
            ["frontend"],
            registry=r,
        )
        self._handshakes = Counter(
            "floatgate_tls_handshakes",
            "TLS handshakes on a frontend, by result",
            ["frontend", "result"],
            registry=r,
        )
        self._responses = Counter(
            "floatgate_backend_http_responses",
            "Responses from a backend's servers, by status class",
            ["backend", "code"],
            registry=r,
        )
        self._response_time = Histogram(
            "floatgate_backend_response_time_seconds",
            "Time from request sent to response headers (Tr)",
            ["backend"],
            buckets=RESPONSE_BUCKETS,
            registry=r,
        )
        self._check_changes = Counter(
            "floatgate_server_check_up_down",
            "Health-check transitions UP<->DOWN",
            ["backend", "server"],
            registry=r,
        )
        self._etcd = Histogram(
            "floatgate_etcd_request_duration_seconds",
            "etcd requests made by the election, by operation",
            ["operation"],
            buckets=ETCD_BUCKETS,
            registry=r,
        )
        self.takeover = Histogram(
            "floatgate_takeover_duration_seconds",
            "Takeovers by this node: from the old leader's last sign "
            "of life to the VIP announced here",
            buckets=TAKEOVER_BUCKETS,
            registry=r,
        )
        self.last_takeover = Gauge(
            "floatgate_takeover_last_duration_seconds",
            "The last takeover by this node (0: none yet)",
            registry=r,
        )
        self._frontends: dict[str, FrontendMeters] = {}
        self._backends: dict[str, BackendMeters] = {}

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def frontend(self, name: str) -> FrontendMeters:
        meters = self._frontends.get(name)
        if meters is None:
            meters = self._frontends[name] = FrontendMeters(
                requests={c: self._requests.labels(name, c) for c in CODE_CLASSES},
                connections=self._connections.labels(name),
                bytes_in=self._bytes_in.labels(name),
                bytes_out=self._bytes_out.labels(name),
                request_errors=self._request_errors.labels(name),
                handshakes={r: self._handshakes.labels(name, r) for r in HANDSHAKE_RESULTS},
            )
        return meters

    def backend(self, name: str) -> BackendMeters:
        meters = self._backends.get(name)
        if meters is None:
            meters = self._backends[name] = BackendMeters(
                responses={c: self._responses.labels(name, c) for c in CODE_CLASSES},
                response_time=self._response_time.labels(name),
            )
        return meters

    def request(self, entry: AccessEntry) -> None:
        """One finished request (mode http) or connection (mode tcp)."""
        frontend = self.frontend(entry.frontend)
        frontend.bytes_out.inc(entry.bytes_out)
        if entry.mode == "tcp":
            frontend.bytes_in.inc(entry.bytes_in)  # http counts bytes as they arrive
            return
        code = code_class(entry.status)
        frontend.requests[code].inc()
        if entry.server != "<NOSRV>" and entry.response > 0:
            backend = self.backend(entry.backend)
            backend.responses[code].inc()
            backend.response_time.observe(entry.response)

    def check_change(self, backend: str, server: str) -> None:
        self._check_changes.labels(backend, server).inc()

    def server_known(self, backend: str, server: str) -> None:
        """Export 0 for a server that has not changed state yet."""
        self._check_changes.labels(backend, server)

    def etcd_request(self, operation: str, seconds: float) -> None:
        self._etcd.labels(operation).observe(seconds)

    def frontend_totals(self) -> dict[str, dict[str, float]]:
        """frontend -> {"connections": n, "<code class>": n, ...} (for /status)."""
        totals: dict[str, dict[str, float]] = {}
        for counter, word in ((self._requests, None), (self._connections, "connections")):
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        key = word or sample.labels["code"]
                        totals.setdefault(sample.labels["frontend"], {})[key] = sample.value
        return totals
