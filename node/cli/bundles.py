"""``floatgate push``, ``history``, ``rollback``, ``diff`` and ``secret``: configuration bundles."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.cli.common import Commands
from node.config import ConfigError
from node.snapshot import load_node


def add_commands(commands: Commands) -> None:
    push = commands.add_parser("push", help="validate and store a config + certificates bundle")
    push.add_argument("--cluster", type=Path, required=True, help="cluster.yaml")
    push.add_argument("--certs", type=Path, required=True, help="directory of the named files")
    push.add_argument("--node", type=Path, required=True, help="node.yaml (etcd, secret_file)")
    push.add_argument("-m", "--message", help="why (kept in the history)")
    push.add_argument("--force", action="store_true", help="push even if someone pushed since")
    push.add_argument(
        "--if-changed",
        action="store_true",
        help="store nothing when the current bundle has the same files",
    )
    push.add_argument(
        "--rotate-ticket-key",
        action="store_true",
        help="a new session-ticket key (sessions resumed so far start over)",
    )
    push.add_argument("--json", action="store_true")
    hist = commands.add_parser("history", help="the bundle revisions kept in etcd")
    hist.add_argument("--node", type=Path, required=True)
    hist.add_argument("--cluster-name", required=True)
    hist.add_argument("--json", action="store_true")
    back = commands.add_parser("rollback", help="push the content of an earlier revision")
    back.add_argument("revision", type=int)
    back.add_argument("--node", type=Path, required=True)
    back.add_argument("--cluster-name", required=True)
    back.add_argument("-m", "--message")
    back.add_argument("--force", action="store_true")
    back.add_argument("--json", action="store_true")
    changes = commands.add_parser("diff", help="what changed between two bundle revisions")
    changes.add_argument("revision", type=int)
    changes.add_argument("other", type=int, nargs="?", help="default: the current revision")
    changes.add_argument("--node", type=Path, required=True)
    changes.add_argument("--cluster-name", required=True)
    changes.add_argument("--json", action="store_true")
    secret = commands.add_parser("secret", help="the cluster secret (encrypts bundle keys)")
    secret_commands = secret.add_subparsers(dest="secret_command", required=True)
    generate = secret_commands.add_parser("generate", help="write a new secret (mode 0600)")
    generate.add_argument("--out", type=Path, required=True)
    for parser in (push, hist, back, changes, secret):
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _bundles(args)


def _bundles(args: argparse.Namespace) -> int:
    import asyncio

    from node.bundle import commands as bundles
    from node.bundle.errors import BundleError, BundleInvalid
    from node.bundle.secret import generate

    try:
        if args.command == "secret":
            generate(args.out)
            print(f"cluster secret written to {args.out} (mode 0600): copy it to every node "
                  "(secret_file in node.yaml); it never goes to etcd")  # fmt: skip
            return 0
        node = load_node(args.node)
        if args.command == "push":
            result = asyncio.run(bundles.push(node, args.cluster, args.certs, args.message,
                                              args.force, args.rotate_ticket_key,
                                              args.if_changed))  # fmt: skip
            lines = [f"pushed revision {result['revision']} ({result['sha'][:12]}), parent "
                     f"{result['parent']}: every node applies it now",
                     f"session-ticket key: {result['ticket_key']}"]  # fmt: skip
            if not result["changed"]:
                lines = [f"unchanged: revision {result['revision']} already holds these files; "
                         "nothing stored"]  # fmt: skip
        elif args.command == "history":
            result = asyncio.run(bundles.history(node, args.cluster_name))
            lines = bundles.format_history(result)
        elif args.command == "diff":
            from node.bundle.diff import format_diff

            result = asyncio.run(bundles.diff_revisions(node, args.cluster_name, args.revision,
                                                        args.other))  # fmt: skip
            lines = format_diff(result)
        else:
            result = asyncio.run(bundles.rollback(node, args.cluster_name, args.revision,
                                                  args.message, args.force))  # fmt: skip
            lines = [f"revision {result['revision']} ({result['sha'][:12]}) has the content "
                     f"of revision {args.revision}"]  # fmt: skip
    except BundleInvalid as exc:
        print("floatgate: refused, nothing was stored:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 2
    except (BundleError, ConfigError) as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if getattr(args, "json", False) else "\n".join(lines))
    return 0
