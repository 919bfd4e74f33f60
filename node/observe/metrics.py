"""Prometheus meters updated as things happen (requests, handshakes, checks, etcd
requests, takeovers). Names follow HAProxy's built-in exporter with the ``floatgate_``
prefix where the concept matches (``haproxy_frontend_http_requests_total`` ->
``floatgate_frontend_http_requests_total``), so HAProxy dashboards adapt by a rename.

The per-request counters are plain integers on the event loop's thread (one ``+=``
each), turned into metric families only when scraped: prometheus-client's locked
counters cost the proxy about 12% of its request rate (measured with bench/http.py).
Rare events (etcd requests, takeovers) use prometheus-client's own types. Gauges that
describe the current state are read at scrape time by :mod:`node.app.collector`. Each
daemon owns its registry: nothing here is module-level state. Label values are bounded:
names from the configuration, HTTP status classes, fixed result words -- never client
addresses or paths.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from node.observe.logsink import LineSink

CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
HANDSHAKE_RESULTS = ("ok", "failed", "timeout", "aborted")
PROTOCOLS = ("http/1.1", "h2")  # ALPN's names (HTTP/1.0 requests count as http/1.1)
CLIENT_TIMEOUTS = ("http_request", "client", "tunnel")  # keep-alive ends are not errors
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


class Finished(Protocol):
    """What the meters read of one finished request or passthrough connection (the data
    plane's access-log entry has these fields)."""

    @property
    def frontend(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def server(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def response(self) -> float:
        """Seconds from sending the request to the response head."""

    @property
    def mode(self) -> str:
        """ "http" or "tcp"."""

    @property
    def protocol(self) -> str:
        """The client's protocol (mode http): "http/1.1" or "h2"."""


def code_class(status: int) -> str:
    return _BY_HUNDREDS[status // 100] if 100 <= status < 600 else "other"


_BY_HUNDREDS = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


def _zeros(keys: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


@dataclass(slots=True)
class FrontendMeters:
    """One frontend's counters (the callers add to them directly)."""

    requests: dict[str, int] = field(default_factory=lambda: _zeros(CODE_CLASSES))
    connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    request_errors: int = 0
    handshakes: dict[str, int] = field(default_factory=lambda: _zeros(HANDSHAKE_RESULTS))
    protocols: dict[str, int] = field(default_factory=lambda: _zeros(PROTOCOLS))
    timeouts: dict[str, int] = field(default_factory=lambda: _zeros(CLIENT_TIMEOUTS))
    client_aborts: int = 0
    accept_errors: int = 0


@dataclass(slots=True)
class BackendMeters:
    responses: dict[str, int] = field(default_factory=lambda: _zeros(CODE_CLASSES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(RESPONSE_BUCKETS) + 1))
    time_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(RESPONSE_BUCKETS, seconds)] += 1
        self.time_sum += seconds


class Meters(Collector):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._etcd = Histogram(
            "floatgate_etcd_request_duration_seconds",
            "etcd requests (election, bundles), by operation",
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
        self.frontends: dict[str, FrontendMeters] = {}
        self.backends: dict[str, BackendMeters] = {}
        self.check_changes: dict[tuple[str, str], int] = {}
        self.log_sink: LineSink | None = None  # the access log's, when it is on
        # lines written, dropped full, dropped failed: summed from worker processes
        self.log_counts: list[int] | None = None
        r.register(self)

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def frontend(self, name: str) -> FrontendMeters:
        meters = self.frontends.get(name)
        if meters is None:
            meters = self.frontends[name] = FrontendMeters()
        return meters

    def backend(self, name: str) -> BackendMeters:
        meters = self.backends.get(name)
        if meters is None:
            meters = self.backends[name] = BackendMeters()
        return meters

    def request(self, entry: Finished) -> None:
        """One finished request (mode http) or connection (mode tcp)."""
        frontend = self.frontend(entry.frontend)
        frontend.bytes_out += entry.bytes_out
        if entry.mode == "tcp":
            frontend.bytes_in += entry.bytes_in  # http counts bytes as they arrive
            return
        code = code_class(entry.status)
        frontend.requests[code] += 1
        frontend.protocols[entry.protocol] += 1
        if entry.server != "<NOSRV>" and entry.response > 0:
            backend = self.backend(entry.backend)
            backend.responses[code] += 1
            backend.observe(entry.response)

    def check_change(self, backend: str, server: str) -> None:
        key = (backend, server)
        self.check_changes[key] = self.check_changes.get(key, 0) + 1

    def server_known(self, backend: str, server: str) -> None:
        """Export 0 for a server that has not changed state yet."""
        self.check_changes.setdefault((backend, server), 0)

    def counters(self) -> dict[str, Any]:
        """The per-request counters as plain data (what a worker process reports)."""
        sink = self.log_sink
        return {
            "frontends": {name: asdict(m) for name, m in self.frontends.items()},
            "backends": {name: asdict(m) for name, m in self.backends.items()},
            "check_changes": {f"{b}/{s}": n for (b, s), n in self.check_changes.items()},
            "log": [sink.written, sink.dropped_full, sink.dropped_failed] if sink else None,
        }

    def load_counters(self, snapshots: list[dict[str, Any]]) -> None:
        """Replace the per-request counters with the sum of ``snapshots`` (counters()
        of worker processes)."""
        total: dict[str, Any] = {}
        for snapshot in snapshots:
            add_counts(total, snapshot)
        self.frontends = {n: FrontendMeters(**m) for n, m in total.get("frontends", {}).items()}
        self.backends = {n: BackendMeters(**m) for n, m in total.get("backends", {}).items()}
        self.check_changes = {
            (key.split("/", 1)[0], key.split("/", 1)[1]): n
            for key, n in total.get("check_changes", {}).items()
        }
        self.log_counts = total.get("log")

    def etcd_request(self, operation: str, seconds: float) -> None:
        self._etcd.labels(operation).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        """The per-request counters as metric families (called at scrape time)."""
        front = ["frontend"]
        requests = CounterMetricFamily(
            "floatgate_frontend_http_requests",
            "HTTP requests answered, by status class (HAProxy: "
            "haproxy_frontend_http_responses_total)",
            labels=["frontend", "code"],
        )
        connections = CounterMetricFamily(
            "floatgate_frontend_connections", "Client connections accepted", labels=front
        )
        bytes_in = CounterMetricFamily(
            "floatgate_frontend_bytes_in", "Bytes received from clients", labels=front
        )
        bytes_out = CounterMetricFamily(
            "floatgate_frontend_bytes_out",
            "Bytes sent to clients (response bodies; mode tcp: all)",
            labels=front,
        )
        errors = CounterMetricFamily(
            "floatgate_frontend_request_errors",
            "Requests refused as malformed or too large",
            labels=front,
        )
        protocols = CounterMetricFamily(
            "floatgate_frontend_protocol_requests",
            "Requests by the client's protocol (http/1.1, h2)",
            labels=["frontend", "protocol"],
        )
        handshakes = CounterMetricFamily(
            "floatgate_tls_handshakes",
            "TLS handshakes on a frontend, by result",
            labels=["frontend", "result"],
        )
        timeouts = CounterMetricFamily(
            "floatgate_frontend_client_timeouts",
            "Client connections ended by a deadline, by timeout (http_request: headers; "
            "client: request body or reading the response; tunnel: idle WebSocket/tcp)",
            labels=["frontend", "timeout"],
        )
        aborts = CounterMetricFamily(
            "floatgate_frontend_client_aborts",
            "Requests the client abandoned before its response was complete (HAProxy: cli_abrt)",
            labels=front,
        )
        accept_errors = CounterMetricFamily(
            "floatgate_frontend_accept_errors",
            "Accepted connections that failed before they could be served (e.g. reset at "
            "once), accept() errors, and accept-loop restarts",
            labels=front,
        )
        for name, m in sorted(self.frontends.items()):
            for timeout, count in m.timeouts.items():
                timeouts.add_metric([name, timeout], count)
            aborts.add_metric([name], m.client_aborts)
            accept_errors.add_metric([name], m.accept_errors)
            for code, count in m.requests.items():
                requests.add_metric([name, code], count)
            connections.add_metric([name], m.connections)
            bytes_in.add_metric([name], m.bytes_in)
            bytes_out.add_metric([name], m.bytes_out)
            errors.add_metric([name], m.request_errors)
            for result, count in m.handshakes.items():
                handshakes.add_metric([name, result], count)
            for protocol, count in m.protocols.items():
                protocols.add_metric([name, protocol], count)
        yield from (requests, connections, bytes_in, bytes_out, errors, handshakes, protocols)
        yield from (timeouts, aborts, accept_errors)
        responses = CounterMetricFamily(
            "floatgate_backend_http_responses",
            "Responses from a backend's servers, by status class",
            labels=["backend", "code"],
        )
        times = HistogramMetricFamily(
            "floatgate_backend_response_time_seconds",
            "Time from request sent to response headers (Tr)",
            labels=["backend"],
        )
        bounds = [str(b) for b in RESPONSE_BUCKETS] + ["+Inf"]
        for name, b in sorted(self.backends.items()):
            for code, count in b.responses.items():
                responses.add_metric([name, code], count)
            cumulative, running = [], 0
            for bound, count in zip(bounds, b.buckets, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            times.add_metric([name], cumulative, b.time_sum)
        yield from (responses, times)
        changes = CounterMetricFamily(
            "floatgate_server_check_up_down",
            "Health-check transitions UP<->DOWN",
            labels=["backend", "server"],
        )
        for (backend, server), count in sorted(self.check_changes.items()):
            changes.add_metric([backend, server], count)
        yield changes
        sink = self.log_sink
        counts = [sink.written, sink.dropped_full, sink.dropped_failed] if sink else self.log_counts
        if counts is not None:
            written, full, failed = counts
            yield CounterMetricFamily(
                "floatgate_access_log_lines", "Access-log lines written", value=written
            )
            dropped = CounterMetricFamily(
                "floatgate_access_log_dropped",
                "Access-log lines dropped, by reason (full: more was pending than "
                "access_log.max_pending_kib; failed: the target refused the write)",
                labels=["reason"],
            )
            dropped.add_metric(["full"], full)
            dropped.add_metric(["failed"], failed)
            yield dropped


def add_counts(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Add ``more`` into ``total``, key by key: numbers add, lists add element-wise,
    dicts recurse; a key ``total`` lacks is copied; None adds nothing."""
    for key, value in more.items():
        if value is None:
            continue
        have = total.get(key)
        if have is None:
            total[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            add_counts(have, value)
        elif isinstance(value, list):
            total[key] = [a + b for a, b in zip(have, value, strict=True)]
        else:
            total[key] = have + value
