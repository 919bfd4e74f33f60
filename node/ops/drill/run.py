"""``floatgate drill``: a failover on demand while probe requests go to the VIP at a fixed
rate, with live progress and a report (outage, failed requests, VIP move time, fencing
tokens, the takeover time the new active measured). Faults that act on a node go through
its admin API with the admin token; the node carries them out on itself."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import aiohttp

from node.admin.client import AdminClient, AdminClientError, PlainTokenRefused
from node.config.model import NodeConfig
from node.ops.clusterctl import ClusterCtlError, read_election
from node.ops.drill.report import NodeSample, Probe, double_holders, outage, verdict, vip_moved_at

# Each scenario and the fault the active carries out on itself (POST /drill, see
# node/cluster/faults.py); a switchover is asked for, not injected.
SCENARIOS: Mapping[str, str | None] = MappingProxyType({
    "switchover": None,
    "kill-active": "exit",
    "freeze-active": "freeze",
    "isolate-active": "isolate",
    "stall-active": "frontend-stall",
})  # fmt: skip
BASELINE = 2.0  # seconds of probes before the fault
SETTLE = 1.0  # seconds of probes after recovery


class DrillFailed(Exception):
    """The drill could not run (nothing was injected, or it could not be)."""


@dataclass
class DrillPlan:
    scenario: str
    token: str
    url: str | None = None  # default: http://<VIP>:<first http frontend port>/
    rate: float = 20.0  # probes per second
    seconds: float = 10.0  # how long a freeze, isolation or stall lasts
    timeout: float = 30.0  # give up waiting for recovery after this
    probe_timeout: float = 3.0
    max_outage: float | None = None


@dataclass
class _Run:
    probes: list[Probe] = field(default_factory=list)
    samples: list[NodeSample] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    phase: str = "baseline"


async def run_drill(
    node: NodeConfig, cluster: str, plan: DrillPlan, progress: Callable[[str], None]
) -> dict[str, Any]:
    if plan.scenario not in SCENARIOS:
        raise DrillFailed(f"unknown scenario {plan.scenario!r}: one of {', '.join(SCENARIOS)}")
    try:
        election = await read_election(node, cluster)
    except ClusterCtlError as exc:
        raise DrillFailed(str(exc)) from exc
    admins = {m["name"]: m["admin"] for m in election["members"] if m.get("admin")}
    leader = election["leader"]
    if leader is None:
        raise DrillFailed("no active node: there is nothing to fail over (floatgate status)")
    old = leader["name"]
    if old not in admins or len(admins) < 2:
        raise DrillFailed(f"need the active ({old}) and at least one standby registered with "
                          f"an admin address; members: {sorted(admins)}")  # fmt: skip
    try:
        client = AdminClient.for_node(node, plan.token, timeout=1.0)
    except AdminClientError as exc:
        raise DrillFailed(str(exc)) from exc
    async with client:
        before = await _status(client, admins[old])
        if before is None or before.get("role") != "active":
            raise DrillFailed(f"{old} does not answer as active on {admins[old]}")
        url = plan.url or _default_url(before)
        run = _Run()
        started = datetime.datetime.now(datetime.UTC)
        began = time.monotonic()

        def phase(name: str) -> None:  # every phase is shown the moment it starts
            run.phase = name
            progress(_line(run, began))

        sampler = asyncio.create_task(_sample(client, admins, run))
        prober = asyncio.create_task(_probe(url, plan, run))
        ticker = asyncio.create_task(_report_progress(run, progress, began))
        try:
            await asyncio.sleep(BASELINE)
            phase(f"fault: {plan.scenario} on {old}")
            fault_at = time.monotonic()
            await _inject(client, admins[old], plan)
            phase("waiting for another node to take over")
            recovered = await _wait_recovered(run, old, fault_at, plan.timeout)
            phase("settling")
            await asyncio.sleep(SETTLE if recovered else 0)
        finally:
            for task in (prober, sampler, ticker):
                task.cancel()
            await asyncio.gather(prober, sampler, ticker, return_exceptions=True)
        progress("")
        return _report(plan, run, url, cluster, started, old, before, fault_at)


def _default_url(status: dict[str, Any]) -> str:
    vip = str(status.get("vip") or "").split("/")[0]
    http = [f for f in status.get("frontends", []) if f.get("mode") == "http"]
    if not vip or not http:
        raise DrillFailed("cannot tell the URL to probe (no VIP or no http frontend): give --url")
    port = str(http[0]["bind"]).rsplit(":", 1)[1]
    return f"http://{vip}:{port}/"


async def _status(client: AdminClient, address: str) -> dict[str, Any] | None:
    answer = await client.status(address, timeout=0.5)
    return None if "error" in answer else answer


async def _inject(client: AdminClient, address: str, plan: DrillPlan) -> None:
    fault = SCENARIOS[plan.scenario]
    if fault is None:
        path, params = "/switchover", {}
    else:
        path, params = "/drill", {"fault": fault, "seconds": str(plan.seconds)}
    try:
        reply = await client.post(address, path, params, timeout=5)
    except PlainTokenRefused as exc:
        raise DrillFailed(f"{address}: {exc}") from exc
    except AdminClientError as exc:
        raise DrillFailed(f"could not reach {address} to inject the fault: {exc}") from exc
    if reply.status not in (200, 202):
        reason = reply.body.get("error") if isinstance(reply.body, dict) else reply.body
        raise DrillFailed(f"{address} refused the fault: HTTP {reply.status}: {reason}")


async def _probe(url: str, plan: DrillPlan, run: _Run) -> None:
    """One GET per tick on a fresh connection (a new client each time)."""
    timeout = aiohttp.ClientTimeout(total=plan.probe_timeout)
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        pending: set[asyncio.Task[None]] = set()

        async def one() -> None:
            sent = time.monotonic()
            try:
                async with session.get(url) as reply:
                    await reply.read()
                    ok, error = reply.status < 500, "" if reply.status < 500 else str(reply.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, error = False, type(exc).__name__
            run.probes.append(Probe(sent, time.monotonic(), ok, error))

        interval = 1.0 / plan.rate
        next_at = time.monotonic()
        try:
            while True:
                task = asyncio.create_task(one())
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def _sample(client: AdminClient, admins: dict[str, str], run: _Run) -> None:
    while True:
        answers = await asyncio.gather(*(_status(client, a) for a in admins.values()))
        now = time.monotonic()
        for name, answer in zip(admins, answers, strict=True):
            run.statuses[name] = answer or {"error": "unreachable"}
        holders = tuple(
            n for n, a in zip(admins, answers, strict=True) if a and a.get("vip_present")
        )
        actives = tuple(n for n, a in zip(admins, answers, strict=True)
                        if a and a.get("role") == "active")  # fmt: skip
        run.samples.append(NodeSample(now, holders, actives))
        await asyncio.sleep(0.1)


async def _wait_recovered(run: _Run, old: str, fault_at: float, limit: float) -> bool:
    """Another node holds the VIP and the last second of probes all succeeded."""
    deadline = fault_at + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if vip_moved_at(run.samples, fault_at, old) is None:
            continue
        now = time.monotonic()
        recent = [p for p in run.probes if p.done > now - 1.0]
        if recent and all(p.ok for p in recent) and any(p.sent > fault_at for p in recent):
            return True
    return False


def _line(run: _Run, began: float) -> str:
    ok = sum(1 for p in run.probes if p.ok)
    failed = len(run.probes) - ok
    holders = run.samples[-1].holders if run.samples else ()
    return (f"[{time.monotonic() - began:5.1f}s] {run.phase}: requests ok={ok} "
            f"failed={failed}; VIP on {', '.join(holders) or 'nobody'}")  # fmt: skip


async def _report_progress(run: _Run, progress: Callable[[str], None], began: float) -> None:
    while True:
        progress(_line(run, began))
        await asyncio.sleep(0.25)


def _report(
    plan: DrillPlan, run: _Run, url: str, cluster: str, started: datetime.datetime, old: str,
    before: dict[str, Any], fault_at: float,
) -> dict[str, Any]:  # fmt: skip
    measured = outage([p for p in run.probes if p.done >= fault_at - BASELINE], fault_at)
    moved = vip_moved_at(run.samples, fault_at, old)
    doubles = double_holders(run.samples)
    new = next((s.holders[0] for s in reversed(run.samples) if len(s.holders) == 1), None)
    after = run.statuses.get(new or "", {})
    takeovers = [t for t in after.get("takeovers", []) if t.get("from") == old]
    errors = sorted({p.error for p in run.probes if not p.ok})
    return {
        "scenario": plan.scenario, "cluster": cluster, "url": url,
        "started": started.isoformat(timespec="seconds"),
        "old_active": old, "new_active": new if new != old else None,
        "old_active_now": run.statuses.get(old, {}).get("role", "unreachable"),
        "outage_seconds": measured.gap,
        "outage_began_after_fault": round(measured.gap_start - fault_at, 3)
        if measured.gap_start is not None else None,
        "failed_requests": measured.failed, "requests": measured.total, "rate": plan.rate,
        "errors": errors,
        "vip_move_seconds": moved,
        "takeover_seconds": takeovers[-1]["takeover_seconds"] if takeovers else None,
        "fencing_token_before": before.get("fencing_token"),
        "fencing_token_after": after.get("fencing_token"),
        "lease_ttl": after.get("lease_ttl") or before.get("lease_ttl"),
        "lease_remaining_new_active": after.get("lease_remaining"),
        "double_holder_samples": len(doubles),
        "max_outage": plan.max_outage,
        "verdict": verdict(measured.gap, plan.max_outage, moved, len(doubles)),
    }  # fmt: skip


def format_report(report: dict[str, Any]) -> list[str]:
    def seconds(value: object) -> str:
        return f"{value:.3f}s" if isinstance(value, int | float) else "-"

    return [
        f"drill {report['scenario']} on cluster {report['cluster']} ({report['started']}): "
        f"{report['verdict']}",
        f"  active          {report['old_active']} -> {report['new_active'] or 'nobody'}"
        f" (old active now: {report['old_active_now']})",
        f"  client outage   {seconds(report['outage_seconds'])} longest gap between answers; "
        f"{report['failed_requests']} of {report['requests']} requests failed"
        + (f" ({', '.join(report['errors'])})" if report["errors"] else ""),
        f"  VIP moved       {seconds(report['vip_move_seconds'])} after the fault "
        f"(takeover measured by the new active: {seconds(report['takeover_seconds'])})",
        f"  fencing token   {report['fencing_token_before']} -> {report['fencing_token_after']}",
        f"  lease           TTL {report['lease_ttl']}s; new active has "
        f"{seconds(report['lease_remaining_new_active'])} left",
    ]  # fmt: skip
