"""``floatgate`` command line: the parser; each command group has its module
(node.cli.node, cluster, bundles, certs), which adds its commands and names the
function that runs them (``set_defaults(run=...)``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from typing import Any

from node.cli import acme, bundles, certs, cluster
from node.cli import node as node_commands
from node.observe.build import floatgate_version
from node.observe.logformat import FORMATS, configure_logging

N = "--node /etc/floatgate/node.yaml"
# One example per command, shown at the end of its --help (a test checks that every
# command has one).
EXAMPLES = {
    "check": "floatgate check /etc/floatgate/cluster.yaml --node /etc/floatgate/node.yaml",
    "run": f"floatgate run --cluster /etc/floatgate/cluster.yaml {N}",
    "config-reference": "floatgate config-reference --output configuration.md",
    "status": f"floatgate status {N} --cluster-name edge",
    "switchover": f"floatgate switchover {N} --cluster-name edge --to n2",
    "release-crashed": f"floatgate release-crashed {N}",
    "drill": f"floatgate drill {N} --cluster-name edge --scenario switchover",
    "push": f"floatgate push --cluster cluster.yaml --certs certs {N} -m 'renew shop cert'",
    "history": f"floatgate history {N} --cluster-name edge",
    "rollback": f"floatgate rollback 41 {N} --cluster-name edge -m 'back to 41'",
    "diff": f"floatgate diff 41 {N} --cluster-name edge",
    "secret": "floatgate secret generate --out /etc/floatgate/secret",
    "secret generate": "floatgate secret generate --out /etc/floatgate/secret",
    "certs": "floatgate certs dev-ca --out certs --name shop.example.com",
    "certs dev-ca": "floatgate certs dev-ca --out certs --name shop.example.com",
    "certs etcd-pki": "floatgate certs etcd-pki --out pki --member etcd1=10.0.0.5 "
    "--client fg1 --admin fg1=10.0.0.11",
    "certs inspect": "floatgate certs inspect certs/shop.example.com.pem",
    "demo": "floatgate demo --requests 12",
    "acme": f"floatgate acme renew blog {N} --cluster-name edge",
    "acme renew": f"floatgate acme renew blog {N} --cluster-name edge",
}


Subcommand = tuple[str, str, argparse.ArgumentParser, "argparse._SubParsersAction[Any]"]


def subcommands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[Subcommand]:
    """Every command under ``parser``: (its path, e.g. "certs dev-ca", its name, its
    parser, the action that holds it), depth first."""
    for action in parser._actions:  # argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{path} {name}".strip()
                yield command, name, sub, action
                yield from subcommands(sub, command)


def _add_examples(parser: argparse.ArgumentParser) -> None:
    """Give every command its example (tests/unit/test_cli_help.py: each has one)."""
    for command, name, sub, action in subcommands(parser):
        example = EXAMPLES.get(command)
        if example is not None:
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
            sub.epilog = f"example:\n  {example}"
            sub.description = sub.description or action_help(action, name)


def action_help(action: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> str:
    """The one-line help a subcommand was added with (its --help shows it too)."""
    for choice in action._choices_actions:
        if choice.dest == name and choice.help:
            return choice.help[0].upper() + choice.help[1:] + "."
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, each command with its example."""
    top = argparse.ArgumentParser(
        prog="floatgate", description="Active/passive high-availability reverse proxy."
    )
    top.add_argument("--version", action="version", version=f"floatgate {floatgate_version()}")
    top.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    top.add_argument(
        "--log-format", choices=FORMATS, help="text or json (default: node.yaml's, else text)"
    )
    commands = top.add_subparsers(dest="command", required=True)
    for group in (node_commands, cluster, bundles, certs, acme):
        group.add_commands(commands)
    demo = commands.add_parser("demo", help="start two backends and floatgate, show balancing")
    demo.add_argument("--requests", type=int, default=12)
    demo.add_argument("--port", type=int, default=18080)
    demo.set_defaults(run=_demo)
    _add_examples(top)
    return top


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format or "text")
    run: Callable[[argparse.Namespace], int] = args.run  # set by each command's parser
    return run(args)


def _demo(args: argparse.Namespace) -> int:
    from node.ops.demo import run_demo

    return run_demo(args.requests, args.port)
