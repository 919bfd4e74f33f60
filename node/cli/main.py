"""``floatgate`` command line: the parser and the dispatch; each command group has its
module (node.cli.node, cluster, bundles, certs)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from node.cli import bundles, certs, cluster
from node.cli import node as node_commands
from node.observe.logformat import FORMATS, configure_logging

RUN: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": node_commands.run, "run": node_commands.run,
    "status": cluster.run, "switchover": cluster.run, "drill": cluster.run,
    "push": bundles.run, "history": bundles.run, "rollback": bundles.run,
    "diff": bundles.run, "secret": bundles.run,
    "certs": certs.run,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="floatgate", description="Active/passive high-availability reverse proxy."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument(
        "--log-format", choices=FORMATS, help="text or json (default: node.yaml's, else text)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (node_commands, cluster, bundles, certs):
        group.add_commands(commands)
    demo = commands.add_parser("demo", help="start two backends and floatgate, show balancing")
    demo.add_argument("--requests", type=int, default=12)
    demo.add_argument("--port", type=int, default=18080)

    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format or "text")
    run = RUN.get(args.command)
    if run is not None:
        return run(args)
    from node.ops.demo import run_demo

    return run_demo(args.requests, args.port)
