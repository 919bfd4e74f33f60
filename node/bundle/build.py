"""From files to a bundle (push side) and from a bundle to a running configuration
(node side). Both validate the same way: the bundle is written to a directory and
loaded with the same code as ``floatgate check`` and ``floatgate run``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from node.bundle.errors import BundleInvalid
from node.bundle.format import Bundle
from node.config.errors import ConfigError
from node.config.model import ClusterConfig
from node.tls.acme import ACCOUNT_KEY_FILE, new_account_key
from node.tls.material import TlsMaterial

CLUSTER_FILE = "cluster.yaml"


def referenced_files(config: ClusterConfig) -> list[str]:
    """Every file the configuration names (certificates, keys, client CAs, CRLs)."""
    names = []
    for source in config.certificates.values():
        if source.acme is not None:  # issued files come from the CA, not from --certs
            if source.acme.directory_ca:
                names.append(source.acme.directory_ca)
            continue
        names.append(source.cert)
        if source.key:
            names.append(source.key)
    names.extend(config.client_cas.values())
    names.extend(config.crls.values())
    return sorted(set(names))


def acme_files(config: ClusterConfig, previous: dict[str, bytes]) -> dict[str, bytes]:
    """What a push carries over for ACME: the account key (a new one for the cluster's
    first ACME certificate) and every issued certificate still configured, so a push of
    an unrelated change never drops what the CA issued."""
    names = [n for n, source in config.certificates.items() if source.acme is not None]
    if not names:
        return {}
    files = {ACCOUNT_KEY_FILE: previous.get(ACCOUNT_KEY_FILE) or new_account_key()}
    for name in names:
        issued = config.certificates[name].cert
        if issued in previous:
            files[issued] = previous[issued]
    return files


def collect(
    cluster_path: Path,
    certs_dir: Path,
    meta: dict[str, Any],
    extra: dict[str, bytes] | None = None,
) -> Bundle:
    """Read cluster.yaml and every file it names, and validate them all (the same
    checks as ``floatgate check``); BundleInvalid lists every problem."""
    from node.config.cluster import load_cluster

    try:
        config = load_cluster(cluster_path)
    except ConfigError as exc:
        raise BundleInvalid(exc.errors) from exc
    errors = []
    files: dict[str, bytes] = {}
    for name in referenced_files(config):
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            errors.append(f"{cluster_path}: {name}: bundled files are named relative to "
                          "--certs (no absolute paths, no ..)")  # fmt: skip
            continue
        try:
            files[name] = (certs_dir / name).read_bytes()
        except OSError as exc:
            errors.append(f"{certs_dir / name}: cannot read: {exc.strerror}")
    if errors:
        raise BundleInvalid(errors)
    files.update(extra or {})  # generated files (the session-ticket key)
    bundle = Bundle(cluster_path.read_text(encoding="utf-8"), files, meta)
    validate(bundle)
    return bundle


def validate(bundle: Bundle) -> None:
    """What is stored must serve cluster nodes (push, rollback): the node's own loading,
    in a scratch directory, and a vip (a cluster node does not start without one).
    BundleInvalid, or nothing."""
    with tempfile.TemporaryDirectory(prefix="floatgate-check-") as scratch:
        config, _ = load_bundle(bundle, Path(scratch))
    if config.vip is None:
        raise BundleInvalid([f"{CLUSTER_FILE}: vip: a bundle serves cluster nodes, and a "
                             "cluster node needs the VIP it holds when active: add vip: "
                             "{address: ...}"])  # fmt: skip


def write_bundle(bundle: Bundle, directory: Path) -> Path:
    """Write the bundle's files (mode 0600) into ``directory``; returns cluster.yaml."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in [(CLUSTER_FILE, bundle.cluster_yaml.encode()), *bundle.files.items()]:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise BundleInvalid([f"bundle file {name}: not a relative name"])
        target = directory / name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return directory / CLUSTER_FILE


def load_bundle(bundle: Bundle, directory: Path) -> tuple[ClusterConfig, TlsMaterial]:
    """Write and load: the configuration and certificates, checked, or BundleInvalid."""
    from node.snapshot import load

    cluster_path = write_bundle(bundle, directory)
    try:
        return load(cluster_path, directory)
    except ConfigError as exc:
        raise BundleInvalid(exc.errors) from exc
