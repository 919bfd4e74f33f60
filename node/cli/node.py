"""``floatgate check`` and ``floatgate run``: configuration files and the node process."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from node.cli.common import Commands, certs_dir
from node.config import ConfigError, load_cluster
from node.config.cluster import etcd_requirements
from node.config.model import AccessLogConfig, ClusterConfig, NodeConfig
from node.config.summary import summarize, summary_lines
from node.observe.logformat import configure_logging
from node.snapshot import load_node


def add_commands(commands: Commands) -> None:
    check = commands.add_parser("check", help="validate configuration files, like haproxy -c")
    check.add_argument("cluster", type=Path, help="cluster.yaml")
    check.add_argument("--node", type=Path, help="node.yaml (optional)")
    check.add_argument(
        "--certs", type=Path, help="certificates directory (default: next to cluster.yaml)"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")

    run_parser = commands.add_parser(
        "run", help="run a node (standalone when no etcd is configured)"
    )
    run_parser.add_argument(
        "--cluster", type=Path, help="cluster.yaml (omit with bundles: from etcd, or the cache)"
    )
    run_parser.add_argument("--node", type=Path, help="node.yaml (optional)")
    run_parser.add_argument("--cluster-name", help="with bundles and no --cluster: which cluster")
    run_parser.add_argument(
        "--certs", type=Path, help="certificates directory (default: next to cluster.yaml)"
    )
    run_parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    for parser in (check, run_parser):
        parser.set_defaults(run=run)

    crashed = commands.add_parser(
        "release-crashed",
        help="after a crash: remove this node's VIP and end its lease (ExecStopPost=)",
        description="What the crash guard does, for when it died with the node (systemd's "
        "ExecStopPost=): if the floatgate process of this node.yaml is gone without handing "
        "over, remove the VIP from this machine, then end its lease in etcd, so a standby "
        "takes over at once. Does nothing after a clean stop or while floatgate runs.",
    )
    crashed.add_argument("--node", type=Path, required=True, help="node.yaml")
    crashed.add_argument("--json", action="store_true", help="machine-readable output")
    crashed.set_defaults(run=_release_crashed)

    reference = commands.add_parser(
        "config-reference",
        help="print the configuration reference (every key, its default and meaning)",
        description="Print the reference of every cluster.yaml and node.yaml key, built "
        "from the configuration readers themselves (docs/configuration.md is its output).",
    )
    reference.add_argument("--output", type=Path, help="write to this file (default: stdout)")
    reference.set_defaults(run=_reference)


def _release_crashed(args: argparse.Namespace) -> int:
    from node.cluster.guard import release_crashed
    from node.config.etcd import EtcdAccessError

    try:
        node = load_node(args.node)
        outcomes = release_crashed(node)
    except (ConfigError, EtcdAccessError) as exc:
        print(f"floatgate release-crashed: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{"record": str(path), "released": o.released, "status": o.status,
                           "said": o.said} for path, o in outcomes]))  # fmt: skip
    elif not outcomes:
        print(f"nothing to do: no running record in {node.data_dir}")
    for path, outcome in outcomes if not args.json else ():
        print(f"{path.name}: {outcome.said}")
    return max((o.status for _, o in outcomes), default=0)


def _reference(args: argparse.Namespace) -> int:
    from node.config.reference import render

    text = render()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _check(args.cluster, args.node, certs_dir(args), args.json)
    certs = certs_dir(args) if args.cluster is not None else None
    return _run(args.cluster, args.node, certs, not args.no_access_log, args.cluster_name,
                args.log_level if args.log_format is None else None,
                args.log_format)  # fmt: skip


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

        warnings.extend(etcd_requirements(config))
        try:
            warnings.extend(load_tls(config, certs_dir).warnings)
        except TlsConfigError as exc:
            errors.extend(exc.errors)
    if node is not None:
        try:
            errors.extend(_access_log_problems(load_node(node)))
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


def _access_log_problems(node: NodeConfig) -> list[str]:
    """What keeps the access-log file from being opened here (``check`` on this host)."""
    target = node.access_log.target
    if target == "stderr":
        return []
    path, where = Path(target), f"{node.source}: access_log.target"
    if path.is_dir():
        return [f"{where}: {target} is a directory (name a file in it)"]
    if path.exists():
        writable = os.access(path, os.W_OK)
        return [] if writable else [f"{where}: {target} is not writable here"]
    if not path.parent.is_dir():
        return [f"{where}: directory {path.parent} does not exist"]
    if not os.access(path.parent, os.W_OK):
        return [f"{where}: cannot create {target} (directory not writable here)"]
    return []


def _run(
    cluster: Path | None,
    node: Path | None,
    certs_dir: Path | None,
    access_log: bool,
    cluster_name: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
) -> int:
    """``log_level``: set when --log-format was not given (node.yaml's log_format applies);
    ``log_format``: --log-format, which the access log follows too."""
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

    settings = node_config.access_log if node_config is not None else AccessLogConfig()
    follows = node_config is None or settings.format == node_config.log_format
    if log_format is not None and follows:  # the access log follows the log's format
        settings = replace(settings, format=log_format)
    return run_standalone(cluster, certs_dir, replace(settings, enabled=access_log), node_config)
