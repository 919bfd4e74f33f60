"""Parse and validate ``node.yaml`` (per-machine settings, never replicated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from node.config.errors import ConfigError
from node.config.model import AdminConfig, EtcdConfig, EtcdTls, NodeConfig
from node.config.reader import Reader

_TOP = {"name", "etcd", "interface", "admin", "secret_file", "data_dir", "priority", "log_format"}


def load_node(path: str | Path) -> NodeConfig:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_node(text, source)


def parse_node(text: str, source: str = "<memory>") -> NodeConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    errors: list[str] = []
    r = Reader(source, errors)
    m = r.mapping(document, "", _TOP, {"name"})
    config = NodeConfig(
        name=r.name(m, "name", ""),
        etcd=_etcd(r, m["etcd"]) if "etcd" in m else None,
        interface=_optional_string(r, m, "interface"),
        admin=_admin(r, m["admin"]) if "admin" in m else None,
        secret_file=_optional_string(r, m, "secret_file"),
        data_dir=r.string(m, "data_dir", "", "/var/lib/floatgate"),
        priority=r.integer(m, "priority", "", 100, 0, 1000),
        log_format=r.string(m, "log_format", "", "text"),
        source=source,
    )
    if config.log_format not in ("text", "json"):
        r.error("log_format", f"must be text or json, not {config.log_format!r}")
    if errors:
        raise ConfigError(errors)
    return config


def _optional_string(r: Reader, m: Any, key: str, path: str = "") -> str | None:
    return r.string(m, key, path) if key in m else None


def _etcd(r: Reader, value: Any) -> EtcdConfig:
    m = r.mapping(value, "etcd", {"endpoints", "tls", "user", "password_file"}, {"endpoints"})
    endpoints: list[str] = []
    for path, item in r.items(m.get("endpoints"), "etcd.endpoints"):
        if not isinstance(item, str) or not item.startswith(("http://", "https://")):
            r.error(path, f"{item!r} must be an http:// or https:// URL")
        else:
            endpoints.append(item)
    if "endpoints" in m and not endpoints:
        r.error("etcd.endpoints", "needs at least one endpoint")
    tls = None
    if "tls" in m:
        t = r.mapping(m["tls"], "etcd.tls", {"ca", "cert", "key"}, {"ca"})
        tls = EtcdTls(
            ca=r.string(t, "ca", "etcd.tls"),
            cert=_optional_string(r, t, "cert", "etcd.tls"),
            key=_optional_string(r, t, "key", "etcd.tls"),
        )
        if (tls.cert is None) != (tls.key is None):
            r.error("etcd.tls", "cert and key go together")
    user = _optional_string(r, m, "user", "etcd")
    password_file = _optional_string(r, m, "password_file", "etcd")
    if (user is None) != (password_file is None):
        r.error("etcd", "user and password_file go together")
    return EtcdConfig(tuple(endpoints), tls, user, password_file)


def _admin(r: Reader, value: Any) -> AdminConfig | None:
    m = r.mapping(value, "admin", {"listen", "token_file"}, {"listen"})
    listen = r.host_port(m, "listen", "admin")
    if listen is None:
        return None
    return AdminConfig(listen=listen, token_file=_optional_string(r, m, "token_file", "admin"))
