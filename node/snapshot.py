"""One validated snapshot of what a node serves: cluster.yaml and every certificate it
names, loaded and checked together, or a ConfigError listing every problem (nothing is
applied). Also node.yaml with its files checked. The daemon's start and reload, SIGHUP,
bundle validation and ``floatgate check`` all load through here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from node.config import ConfigError, load_cluster
from node.config.model import ClusterConfig, NodeConfig
from node.config.nodefile import load_node as read_node
from node.tls.acme import ensure_account_key
from node.tls.admin import admin_tls_problems
from node.tls.errors import CertificateError
from node.tls.material import TlsConfigError, TlsMaterial, load_tls

log = logging.getLogger("floatgate.daemon")  # the logger these warnings always had


class Snapshot(NamedTuple):
    config: ClusterConfig
    tls: TlsMaterial


def load(cluster_path: Path, certs_dir: Path, acme_dir: Path | None = None) -> Snapshot:
    """cluster.yaml and its certificates (found under ``certs_dir``; ACME-issued ones
    under ``acme_dir`` when given), all checked."""
    config = load_cluster(cluster_path)
    try:
        if acme_dir is not None and any(s.acme for s in config.certificates.values()):
            created = ensure_account_key(acme_dir)
            if created:
                log.info("acme: created the account key %s", created)
        tls = load_tls(config, certs_dir, acme_dir=acme_dir)
    except TlsConfigError as exc:
        raise ConfigError(exc.errors) from exc
    except CertificateError as exc:
        raise ConfigError([str(exc)]) from exc
    for warning in tls.warnings:
        log.warning("%s", warning)
    return Snapshot(config, tls)


def load_node(path: str | Path) -> NodeConfig:
    """node.yaml, including a check that its admin.tls files can be used."""
    return read_node(path, admin_tls_problems)
