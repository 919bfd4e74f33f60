"""``floatgate certs``: a development CA, an etcd PKI, and a look inside a PEM file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.cli.common import Commands


def add_commands(commands: Commands) -> None:
    certs = commands.add_parser("certs", help="certificate tools")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    dev_ca = certs_commands.add_parser("dev-ca", help="make a private CA, server and client certs")
    dev_ca.add_argument("--out", type=Path, required=True, help="directory to write into")
    dev_ca.add_argument("--name", action="append", required=True, help="server DNS name (repeat)")
    dev_ca.add_argument("--key", choices=("ecdsa", "rsa"), default="ecdsa")
    etcd_pki = certs_commands.add_parser(
        "etcd-pki", help="a CA and certificates for etcd members (peers, clients) and nodes"
    )
    etcd_pki.add_argument("--out", type=Path, required=True)
    etcd_pki.add_argument("--member", action="append", required=True, metavar="NAME=ADDRESS",
                          help="an etcd member and its address (repeat)")  # fmt: skip
    etcd_pki.add_argument("--client", action="append", default=[], metavar="NAME",
                          help="a client certificate: a node, an operator (repeat)")  # fmt: skip
    etcd_pki.add_argument("--admin", action="append", default=[], metavar="NAME=ADDRESS",
                          help="an admin API certificate for a node and the address of its "
                               "admin listener (admin.tls; repeat)")  # fmt: skip
    inspect = certs_commands.add_parser("inspect", help="show and check a PEM certificate file")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--key", type=Path, help="key file, if not in the PEM file")
    inspect.add_argument("--json", action="store_true")
    certs.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _certs(args)


def _certs(args: argparse.Namespace) -> int:
    if args.certs_command == "dev-ca":
        from node.tls.devca import write_dev_ca

        paths = write_dev_ca(args.out, tuple(args.name), args.key)
        print(f"wrote a development CA for {', '.join(args.name)} into {args.out}:")
        for path in paths.values():
            print(f"  {path}")
        print("Not for production: the CA key is on disk, unencrypted.")
        return 0
    if args.certs_command == "etcd-pki":
        from node.tls.devca import write_etcd_pki

        members = dict(m.split("=", 1) for m in args.member if "=" in m)
        admins = dict(a.split("=", 1) for a in args.admin if "=" in a)
        if len(members) != len(args.member) or len(admins) != len(args.admin):
            print("floatgate: --member and --admin take NAME=ADDRESS", file=sys.stderr)
            return 2
        written = write_etcd_pki(args.out, members, tuple(args.client), admins)
        print(f"wrote an etcd PKI into {args.out}: {', '.join(p.name for p in written)}")
        print("Keep ca.key offline; keys are mode 0600.")
        return 0
    from node.tls.inspect import format_report, inspect_file

    report = inspect_file(args.file, args.key)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(format_report(report)))
    return 0 if report["usable"] else 2
