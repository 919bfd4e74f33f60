"""``floatgate`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from node.admin.auth import read_token
from node.config import ConfigError, load_cluster
from node.config.model import ClusterConfig, NodeConfig
from node.config.summary import summarize, summary_lines
from node.observe.logformat import FORMATS, configure_logging
from node.snapshot import load_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="floatgate", description="Active/passive high-availability reverse proxy."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument(
        "--log-format", choices=FORMATS, help="text or json (default: node.yaml's, else text)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="validate configuration files, like haproxy -c")
    check.add_argument("cluster", type=Path, help="cluster.yaml")
    check.add_argument("--node", type=Path, help="node.yaml (optional)")
    check.add_argument(
        "--certs", type=Path, help="certificates directory (default: next to cluster.yaml)"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")

    run = commands.add_parser("run", help="run a node (standalone when no etcd is configured)")
    run.add_argument(
        "--cluster", type=Path, help="cluster.yaml (omit with bundles: from etcd, or the cache)"
    )
    run.add_argument("--node", type=Path, help="node.yaml (optional)")
    run.add_argument("--cluster-name", help="with bundles and no --cluster: which cluster")
    run.add_argument(
        "--certs", type=Path, help="certificates directory (default: next to cluster.yaml)"
    )
    run.add_argument("--no-access-log", action="store_true", help="do not log each request")

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
    inspect.add_argument("--key", type=Path, help="key file, if not in the bundle")
    inspect.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", help="start two backends and floatgate, show balancing")
    demo.add_argument("--requests", type=int, default=12)
    demo.add_argument("--port", type=int, default=18080)

    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format or "text")
    if args.command == "check":
        return _check(args.cluster, args.node, _certs_dir(args), args.json)
    if args.command == "run":
        certs_dir = _certs_dir(args) if args.cluster is not None else None
        return _run(args.cluster, args.node, certs_dir, not args.no_access_log, args.cluster_name,
                    args.log_level if args.log_format is None else None)  # fmt: skip
    if args.command == "certs":
        return _certs(args)
    if args.command == "drill":
        return _drill(args)
    if args.command in ("status", "switchover"):
        return _clusterctl(args)
    if args.command in ("push", "history", "rollback", "secret", "diff"):
        return _bundles(args)
    from node.ops.demo import run_demo

    return run_demo(args.requests, args.port)


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


def _certs_dir(args: argparse.Namespace) -> Path:
    chosen: Path = args.certs if args.certs is not None else args.cluster.resolve().parent
    return chosen


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


def _check(cluster: Path, node: Path | None, certs_dir: Path, as_json: bool) -> int:
    errors: list[str] = []
    warnings: list[str] = []
    config: ClusterConfig | None = None
    try:
        config = load_cluster(cluster)
    except ConfigError as exc:
        errors.extend(exc.errors)
    if config is not None:
        from node.tls.material import TlsConfigError, load_tls

        try:
            warnings.extend(load_tls(config, certs_dir).warnings)
        except TlsConfigError as exc:
            errors.extend(exc.errors)
    if node is not None:
        try:
            load_node(node)
        except ConfigError as exc:
            errors.extend(exc.errors)
    if as_json:
        summary = summarize(config) if config is not None and not errors else None
        document = {"valid": not errors, "errors": errors, "warnings": warnings, "summary": summary}
        print(json.dumps(document, indent=2))
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
    for warning in warnings:
        print(f"  warning: {warning}")
    return 0


def _run(
    cluster: Path | None,
    node: Path | None,
    certs_dir: Path | None,
    access_log: bool,
    cluster_name: str | None = None,
    log_level: str | None = None,
) -> int:
    """``log_level``: set when --log-format was not given (node.yaml's log_format applies)."""
    if node is not None:
        try:
            node_config = load_node(node)
        except ConfigError as exc:
            print(f"floatgate: configuration is invalid, not starting:\n{exc}", file=sys.stderr)
            return 2
        if log_level is not None:
            configure_logging(log_level, node_config.log_format)
    else:
        node_config = None
    if cluster is None:  # bundle mode: the cluster file comes from etcd (or the cache)
        if node_config is None:
            print("floatgate: give --cluster, or --node with etcd and secret_file", file=sys.stderr)
            return 2
        from node.bundle.startup import initial_bundle

        try:
            cluster = initial_bundle(node_config, cluster_name)
        except Exception as exc:
            print(f"floatgate: {exc}", file=sys.stderr)
            return 2
        certs_dir = cluster.parent
    assert certs_dir is not None
    from node.app.boot import run_standalone

    return run_standalone(cluster, certs_dir, access_log, node_config)
