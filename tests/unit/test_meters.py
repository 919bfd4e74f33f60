"""The per-request counters become correct metric families at scrape time."""

from __future__ import annotations

from node.observe.metrics import Meters
from node.proxy.accesslog import AccessEntry


def _entry(status: int, response: float, server: str = "s1") -> AccessEntry:
    return AccessEntry(started=0.0, headers_done=0.0, client="192.0.2.7", frontend="web",
                       backend="app", request_line="GET /secret?x=1 HTTP/1.1", server=server,
                       status=status, bytes_out=10, response=response)  # fmt: skip


def test_histogram_buckets_are_cumulative_and_labels_bounded() -> None:
    meters = Meters()
    for status, seconds in ((200, 0.0005), (200, 0.003), (503, 0.2), (404, 40.0)):
        meters.request(_entry(status, seconds))
    meters.request(_entry(503, 0.0, server="<NOSRV>"))  # no server answered: no Tr
    text = meters.exposition().decode()
    sample = meters.registry.get_sample_value
    web, app = {"frontend": "web"}, {"backend": "app"}
    assert sample("floatgate_frontend_http_requests_total", {**web, "code": "5xx"}) == 2
    assert sample("floatgate_backend_http_responses_total", {**app, "code": "5xx"}) == 1
    assert sample("floatgate_backend_response_time_seconds_bucket", {**app, "le": "0.001"}) == 1
    assert sample("floatgate_backend_response_time_seconds_bucket", {**app, "le": "0.005"}) == 2
    assert sample("floatgate_backend_response_time_seconds_bucket", {**app, "le": "30.0"}) == 3
    assert sample("floatgate_backend_response_time_seconds_bucket", {**app, "le": "+Inf"}) == 4
    assert sample("floatgate_backend_response_time_seconds_count", app) == 4
    assert abs(sample("floatgate_backend_response_time_seconds_sum", app) - 40.2035) < 1e-9  # type: ignore[operator]
    assert sample("floatgate_frontend_bytes_out_total", web) == 50
    assert "192.0.2.7" not in text and "/secret" not in text


def test_check_changes_start_at_zero() -> None:
    meters = Meters()
    meters.server_known("app", "s1")
    meters.server_known("app", "s2")
    meters.check_change("app", "s2")
    sample = meters.registry.get_sample_value
    assert sample("floatgate_server_check_up_down_total", {"backend": "app", "server": "s1"}) == 0
    assert sample("floatgate_server_check_up_down_total", {"backend": "app", "server": "s2"}) == 1
