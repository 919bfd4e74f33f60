"""Per-frontend figures for /status (the status page computes rates from two polls)."""

from __future__ import annotations

from node.observe.metrics import FrontendMeters, Meters
from node.proxy.plane import DataPlane


def frontend_table(plane: DataPlane, meters: Meters) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for listener in plane.listeners.values():
        frontend = listener.handler.route.frontend
        counts = meters.frontends.get(frontend.name) or FrontendMeters()
        rows.append({
            "frontend": frontend.name, "mode": frontend.mode, "bind": str(frontend.bind),
            "current_sessions": len(listener.connections), "maxconn": frontend.maxconn,
            "connections_total": counts.connections,
            "requests_total": sum(counts.requests.values()), "responses": dict(counts.requests),
        })  # fmt: skip
    return rows
