"""``floatgate`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from node.config import ConfigError, load_cluster, load_node
from node.config.model import ClusterConfig
from node.config.summary import summarize, summary_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="floatgate", description="Active/passive high-availability reverse proxy."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="validate configuration files, like haproxy -c")
    check.add_argument("cluster", type=Path, help="cluster.yaml")
    check.add_argument("--node", type=Path, help="node.yaml (optional)")
    check.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser("run", help="run a node (standalone when no etcd is configured)")
    run.add_argument("--cluster", type=Path, required=True, help="cluster.yaml")
    run.add_argument("--node", type=Path, help="node.yaml (optional)")
    run.add_argument("--no-access-log", action="store_true", help="do not log each request")

    demo = commands.add_parser("demo", help="start two backends and floatgate, show balancing")
    demo.add_argument("--requests", type=int, default=12)
    demo.add_argument("--port", type=int, default=18080)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "check":
        return _check(args.cluster, args.node, args.json)
    if args.command == "run":
        return _run(args.cluster, args.node, not args.no_access_log)
    from node.demo import run_demo

    return run_demo(args.requests, args.port)


def _check(cluster: Path, node: Path | None, as_json: bool) -> int:
    errors: list[str] = []
    config: ClusterConfig | None = None
    try:
        config = load_cluster(cluster)
    except ConfigError as exc:
        errors.extend(exc.errors)
    if node is not None:
        try:
            load_node(node)
        except ConfigError as exc:
            errors.extend(exc.errors)
    if as_json:
        summary = summarize(config) if config is not None and not errors else None
        print(json.dumps({"valid": not errors, "errors": errors, "summary": summary}, indent=2))
        return 2 if errors else 0
    if errors:
        print(f"Configuration is invalid ({len(errors)} error(s)):", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 2
    assert config is not None
    print(f"Configuration file is valid: {cluster}")
    for line in summary_lines(config):
        print(f"  {line}")
    return 0


def _run(cluster: Path, node: Path | None, access_log: bool) -> int:
    if node is not None:
        try:
            node_config = load_node(node)
        except ConfigError as exc:
            print(f"floatgate: configuration is invalid, not starting:\n{exc}", file=sys.stderr)
            return 2
        if node_config.etcd is not None:
            print(
                "floatgate: cluster mode (etcd in node.yaml) is not available in this version; "
                "remove etcd from node.yaml to run standalone.",
                file=sys.stderr,
            )
            return 2
    from node.daemon import run_standalone

    return run_standalone(cluster, access_log)


if __name__ == "__main__":
    sys.exit(main())
