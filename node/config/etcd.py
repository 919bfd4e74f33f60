"""node.yaml's ``etcd`` section -> how the election and the CLI reach etcd."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from election.errors import ElectionError
from election.etcdclient import EtcdAccess, EtcdTlsFiles
from node.config.model import EtcdConfig


class EtcdAccessError(ValueError):
    """The etcd section cannot be used as written (scheme, files, password)."""


def etcd_access(etcd: EtcdConfig) -> EtcdAccess:
    endpoints = []
    schemes = set()
    for url in etcd.endpoints:
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or parsed.hostname is None:
            raise EtcdAccessError(f"etcd endpoint {url}: expected http://HOST:PORT or https://")
        schemes.add(parsed.scheme)
        endpoints.append((parsed.hostname, parsed.port or 2379))
    if len(schemes) > 1:
        raise EtcdAccessError("etcd endpoints mix http and https: use one scheme for all")
    if "https" in schemes and etcd.tls is None:
        raise EtcdAccessError("https etcd endpoints need etcd.tls (at least ca) in node.yaml")
    if "http" in schemes and etcd.tls is not None:
        raise EtcdAccessError("etcd.tls is set but the endpoints are http://: use https://")
    tls = None
    if etcd.tls is not None:
        try:
            tls = EtcdTlsFiles.load(etcd.tls.ca, etcd.tls.cert, etcd.tls.key)
        except ElectionError as exc:
            raise EtcdAccessError(str(exc)) from exc
    password = None
    if etcd.password_file is not None:
        try:
            password = Path(etcd.password_file).read_text().strip()
        except OSError as exc:
            raise EtcdAccessError(
                f"etcd.password_file {etcd.password_file}: {exc.strerror}"
            ) from exc
        if not password:
            raise EtcdAccessError(f"etcd.password_file {etcd.password_file} is empty")
    return EtcdAccess(tuple(endpoints), tls, etcd.user, password)
