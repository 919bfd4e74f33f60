"""Per-frontend figures for /status (the status page computes rates from two polls)."""

from __future__ import annotations

from node.metrics import CODE_CLASSES, Meters
from node.proxy.runtime import DataPlane


def frontend_table(plane: DataPlane, meters: Meters) -> list[dict[str, object]]:
    totals = meters.frontend_totals()
    rows: list[dict[str, object]] = []
    for listener in plane.listeners.values():
        frontend = listener.proxy.route.frontend
        counts = totals.get(frontend.name, {})
        codes = {code: counts.get(code, 0.0) for code in CODE_CLASSES}
        rows.append({
            "frontend": frontend.name, "mode": frontend.mode, "bind": str(frontend.bind),
            "current_sessions": len(listener.connections), "maxconn": frontend.maxconn,
            "connections_total": counts.get("connections", 0.0),
            "requests_total": sum(codes.values()), "responses": codes,
        })  # fmt: skip
    return rows
