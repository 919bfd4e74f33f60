"""``floatgate status``, ``switchover`` and ``drill``: a running cluster, through etcd and the
nodes' admin APIs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.admin.auth import read_token
from node.cli.common import Commands
from node.config import ConfigError
from node.config.model import NodeConfig
from node.snapshot import load_node


def add_commands(commands: Commands) -> None:
    status = commands.add_parser("status", help="the cluster: active node, every node's state")
    status.add_argument("--node", type=Path, required=True, help="node.yaml (for etcd)")
    status.add_argument("--cluster-name", required=True, help="the cluster name (cluster.yaml)")
    status.add_argument("--admin", action="append", default=[], help="a node's admin host:port")
    status.add_argument("--json", action="store_true")
    switch = commands.add_parser("switchover", help="planned handover away from the active")
    switch.add_argument("--node", type=Path, required=True, help="node.yaml (etcd, token)")
    switch.add_argument("--cluster-name", required=True)
    switch.add_argument("--token-file", type=Path, help="default: admin.token_file of node.yaml")
    switch.add_argument("--to", metavar="NODE", help="the standby to hand over to")
    switch.add_argument("--json", action="store_true")
    drill = commands.add_parser("drill", help="fail over on purpose and measure what clients saw")
    drill.add_argument("--node", type=Path, required=True, help="node.yaml (etcd, token)")
    drill.add_argument("--cluster-name", required=True)
    from node.ops.drill.run import SCENARIOS as scenarios

    drill.add_argument("--scenario", required=True, choices=list(scenarios))
    drill.add_argument("--token-file", type=Path, help="default: admin.token_file of node.yaml")
    drill.add_argument("--url", help="what to probe (default: http://VIP:<http frontend port>/)")
    drill.add_argument("--rate", type=float, default=20.0, help="probe requests per second")
    drill.add_argument(
        "--seconds", type=float, default=10.0, help="how long a freeze, isolation or stall lasts"
    )
    drill.add_argument("--timeout", type=float, default=30.0, help="wait this long for recovery")
    drill.add_argument("--probe-timeout", type=float, default=3.0,
                       help="a probe unanswered this long fails (default 3 s: a client "
                       "that waits for one SYN retransmission)")  # fmt: skip
    drill.add_argument("--max-outage", type=float, help="exit 3 if the outage is longer (seconds)")
    drill.add_argument("--record", type=Path, help="drill log (default: data_dir/drills.jsonl)")
    drill.add_argument("--json", action="store_true")
    for parser in (status, switch, drill):
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.command == "drill":
        return _drill(args)
    return _clusterctl(args)


def _clusterctl(args: argparse.Namespace) -> int:
    import asyncio

    from node.ops.clusterctl import ClusterCtlError, cluster_status, format_status, switchover

    try:
        node = load_node(args.node)
        if args.command == "status":
            result = asyncio.run(cluster_status(node, args.cluster_name, args.admin))
            lines = format_status(result)
        else:
            token = _admin_token(args.token_file, node)
            if token is None:
                return 2
            result = asyncio.run(switchover(node, args.cluster_name, token, args.to))
            lines = [f"switchover from {result['from']}: {result.get('result')}"]
    except ConfigError as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 2
    except (ClusterCtlError, OSError) as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else "\n".join(lines))
    return 0


def _admin_token(given: Path | None, node: NodeConfig) -> str | None:
    """--token-file, else admin.token_file of node.yaml; None (having said why) if
    neither gives a readable, non-empty token."""
    path = given or (node.admin.token_file if node.admin else None)
    token = read_token(str(path) if path is not None else None)
    if token is None:
        where = path or "nowhere: give --token-file"
        print(f"floatgate: no admin token ({where}): it is missing, unreadable or empty",
              file=sys.stderr)  # fmt: skip
    return token


def _drill(args: argparse.Namespace) -> int:
    import asyncio

    from node.ops.drill.record import record_drill
    from node.ops.drill.run import DrillFailed, DrillPlan, format_report, run_drill

    try:
        node = load_node(args.node)
    except ConfigError as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 2
    token = _admin_token(args.token_file, node)
    if token is None:
        return 2
    if not 0 < args.rate <= 200:
        print("floatgate: --rate must be in (0, 200] requests per second", file=sys.stderr)
        return 2
    plan = DrillPlan(args.scenario, token, args.url, args.rate, args.seconds, args.timeout,
                     args.probe_timeout, args.max_outage)  # fmt: skip
    live = sys.stderr.isatty()
    last, shown = [0.0], [""]

    def progress(line: str) -> None:
        import time

        if live:
            print(f"\r\033[K{line}", end="" if line else "\r", file=sys.stderr, flush=True)
        elif line:  # a log: each phase's first line, then one line a second
            phase = line.split("] ", 1)[-1].split(":", 1)[0]
            if phase != shown[0] or time.monotonic() - last[0] >= 1.0:
                last[0], shown[0] = time.monotonic(), phase
                print(line, file=sys.stderr, flush=True)

    try:
        report = asyncio.run(run_drill(node, args.cluster_name, plan, progress))
    except DrillFailed as exc:
        print(f"floatgate: drill not run: {exc}", file=sys.stderr)
        return 1
    where = record_drill(report, args.record, node.data_dir)
    print(json.dumps(report, indent=2) if args.json else "\n".join(format_report(report)))
    print(f"recorded in {where}" if where else "could not write the drill log", file=sys.stderr)
    return 0 if report["verdict"] == "ok" else 3
