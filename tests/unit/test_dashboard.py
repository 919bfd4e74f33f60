"""The Grafana dashboard is well formed: every panel queries floatgate metrics with the
cluster filter and a data source variable (that the names exist in a real scrape is
checked in the bundle lab test, where every kind of metric has samples)."""

from __future__ import annotations

import json

from tests.metricnames import DASHBOARD, dashboard_queries, names_in


def test_every_panel_queries_floatgate_metrics_of_the_chosen_cluster() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    for title, exprs in queries.items():
        assert exprs, f"panel {title!r} has no query"
        for expr in exprs:
            assert names_in(expr) or "up{" in expr, f"{title}: {expr}"
            assert 'cluster=~"$cluster"' in expr, f"{title}: no cluster filter in {expr}"


def test_panels_do_not_overlap_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "cluster"} <= variables
