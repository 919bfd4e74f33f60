"""Metric names: those a scrape really carries (with at least one sample), and those the
Grafana dashboard's panel queries use."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "floatgate.json"
_NAME = re.compile(r"\bfloatgate_[a-zA-Z0-9_]+")


def sample_names(exposition: str) -> set[str]:
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_queries(path: Path = DASHBOARD) -> dict[str, list[str]]:
    """Panel title -> its query expressions (rows have none; annotations included)."""
    dashboard = json.loads(path.read_text())
    queries: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            queries[panel["title"]] = [t["expr"] for t in panel.get("targets", [])]
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            queries[f"annotation {annotation['name']}"] = [annotation["expr"]]
    return queries


def names_in(expression: str) -> set[str]:
    return set(_NAME.findall(expression))
