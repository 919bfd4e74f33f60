"""One-screen summary of a valid cluster configuration (``floatgate check``)."""

from __future__ import annotations

from typing import Any

from node.config.model import ClusterConfig


def summarize(config: ClusterConfig) -> dict[str, Any]:
    """Structured summary (for ``--json``)."""
    return {
        "cluster": config.cluster,
        "frontends": [
            {"name": f.name, "bind": str(f.bind), "mode": f.mode, "backend": f.default_backend,
             "maxconn": f.maxconn, "forwardfor": f.forwardfor.enabled}
            for f in config.frontends
        ],
        "backends": [
            {"name": b.name, "balance": b.balance,
             "check": b.check.type if b.check else None,
             "servers": [{"name": s.name, "address": str(s.address), "weight": s.weight,
                          "backup": s.backup, "maxconn": s.maxconn} for s in b.servers]}
            for b in config.backends
        ],
        "vip": str(config.vip.address) if config.vip else None,
        "acme": {name: {"directory": c.acme.directory, "domains": list(c.acme.domains)}
                 for name, c in config.certificates.items() if c.acme is not None},
    }  # fmt: skip


def summary_lines(config: ClusterConfig) -> list[str]:
    lines = [f"cluster {config.cluster}: {len(config.frontends)} frontend(s), "
             f"{len(config.backends)} backend(s)"]  # fmt: skip
    for f in config.frontends:
        xff = ", forwardfor" if f.forwardfor.enabled else ""
        lines.append(f"frontend {f.name}: {f.mode} on {f.bind} -> {f.default_backend} "
                     f"(maxconn {f.maxconn}{xff})")  # fmt: skip
    for b in config.backends:
        check = f"{b.check.type} check every {b.check.interval:g}s" if b.check else "no check"
        servers = ", ".join(
            f"{s.name}={s.address}"
            + (f" w{s.weight}" if s.weight != 1 else "")
            + (" backup" if s.backup else "")
            for s in b.servers
        )
        lines.append(f"backend {b.name}: {b.balance}, {check}: {servers}")
    for name, source in config.certificates.items():
        if source.acme is not None:
            lines.append(f"certificate {name}: ACME from {source.acme.directory} for "
                         f"{', '.join(source.acme.domains)} (http-01)")  # fmt: skip
    if config.vip is not None:
        lines.append(f"vip {config.vip.address}")
    return lines
