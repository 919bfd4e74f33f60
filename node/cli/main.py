"""``floatgate`` command line: the parser; each command group has its module
(node.cli.node, cluster, bundles, certs), which adds its commands and names the
function that runs them (``set_defaults(run=...)``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from node.cli import bundles, certs, cluster
from node.cli import node as node_commands
from node.observe.logformat import FORMATS, configure_logging


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
    demo.set_defaults(run=_demo)

    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format or "text")
    run: Callable[[argparse.Namespace], int] = args.run  # set by each command's parser
    return run(args)


def _demo(args: argparse.Namespace) -> int:
    from node.ops.demo import run_demo

    return run_demo(args.requests, args.port)
