"""``floatgate acme renew``: ask for an ACME certificate to be ordered again now (the
active does it in a cluster; a standalone node for itself). What the orderer is doing
shows in ``floatgate status`` and on the status page."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.cli.common import Commands
from node.config import ConfigError
from node.snapshot import load_node


def add_commands(commands: Commands) -> None:
    acme = commands.add_parser("acme", help="automatic certificates (ACME)")
    acme_commands = acme.add_subparsers(dest="acme_command", required=True)
    renew = acme_commands.add_parser("renew", help="order a certificate again now")
    renew.add_argument("certificate", help="its name under certificates: in cluster.yaml")
    renew.add_argument("--node", type=Path, required=True, help="node.yaml (etcd, data_dir)")
    renew.add_argument("--cluster-name", help="the cluster (a node with etcd)")
    renew.add_argument("--json", action="store_true")
    acme.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from node.acme.outlets import request_local_renewal, request_renewal
    from node.bundle.commands import store_for
    from node.bundle.errors import BundleError

    try:
        node = load_node(args.node)
    except ConfigError as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 2
    name = args.certificate
    try:
        if node.etcd is not None:
            if not args.cluster_name:
                print("floatgate: a node with etcd needs --cluster-name", file=sys.stderr)
                return 2
            asyncio.run(request_renewal(store_for(node, args.cluster_name), args.cluster_name,
                                        name))  # fmt: skip
            result = {"certificate": name, "requested": "etcd", "cluster": args.cluster_name}
            line = (
                f"renewal of {name} requested: the active orders it within seconds "
                "(floatgate status shows the progress; floatgate history the new revision)"
            )
        else:
            path = request_local_renewal(Path(node.data_dir), name)
            result = {"certificate": name, "requested": str(path)}
            line = f"renewal of {name} requested ({path}): the node orders it within seconds"
    except (BundleError, OSError) as exc:
        print(f"floatgate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else line)
    return 0
