"""Parse and validate ``node.yaml`` (per-machine settings, never replicated)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import yaml

from node.config.errors import ConfigError
from node.config.model import (
    DEFAULT_DATA_DIR,
    AccessLogConfig,
    AdminConfig,
    AdminTls,
    AdminVerify,
    EtcdConfig,
    EtcdTls,
    HostPort,
    NodeConfig,
)
from node.config.reader import Reader

LOOPBACK = "127.0.0.1"  # where a bare admin.listen port listens
_VERIFY = ("none", "optional", "required")

_TOP = {"name", "etcd", "interface", "admin", "secret_file", "data_dir", "priority", "log_format",
        "access_log", "workers"}  # fmt: skip
MAX_WORKERS = 64
_ACCESS_LOG = {"target", "format", "flush_interval", "max_pending_kib"}


# What a node.yaml reader may ask of the TLS room above: ``(key path, message)`` for each
# admin.tls file that cannot be used (node.snapshot passes node.tls.admin's check).
AdminTlsCheck = Callable[[AdminTls], list[tuple[str, str]]]


def load_node(path: str | Path, check_admin_tls: AdminTlsCheck | None = None) -> NodeConfig:
    """node.yaml, validated. With ``check_admin_tls`` the admin.tls files are checked
    too (node.snapshot.load_node does that); without, only the file's own content."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_node(text, source, check_admin_tls)


def parse_node(
    text: str, source: str = "<memory>", check_admin_tls: AdminTlsCheck | None = None
) -> NodeConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    errors: list[str] = []
    config = parse_node_with(Reader(source, errors), document, check_admin_tls)
    if errors:
        raise ConfigError(errors)
    return config


def parse_node_with(
    r: Reader, document: Any, check_admin_tls: AdminTlsCheck | None = None
) -> NodeConfig:
    """Read a parsed node.yaml document with ``r`` (its errors collect there)."""
    m = r.mapping(document, "", _TOP, {"name"})
    log_format = r.choice(m, "log_format", "", "text", ("text", "json"))
    config = NodeConfig(
        name=r.name(m, "name", ""),
        etcd=_etcd(r, m["etcd"]) if "etcd" in m else None,
        interface=_optional_string(r, m, "interface"),
        admin=_admin(r, m["admin"], check_admin_tls) if "admin" in m else None,
        secret_file=_optional_string(r, m, "secret_file"),
        data_dir=r.string(m, "data_dir", "", DEFAULT_DATA_DIR),
        priority=r.integer(m, "priority", "", 100, 0, 1000),
        log_format=log_format,
        access_log=_access_log(r, m.get("access_log", {}), log_format),
        workers=_workers(r, m),
        source=r.source,
    )
    return config


def _workers(r: Reader, m: Any) -> int:
    """``workers: auto`` (one per CPU this process may run on), a count, or 0 (the
    node process serves itself: the default)."""
    r.fact("", "workers", f"auto | integer 0-{MAX_WORKERS}", 0)
    value = m.get("workers", 0)
    if value == "auto":
        return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
    if isinstance(value, bool) or not isinstance(value, int):
        r.error("workers", f"must be auto or an integer, got {value!r}")
        return 0
    if not 0 <= value <= MAX_WORKERS:
        r.error("workers", f"{value} is out of range (0-{MAX_WORKERS}, or auto)")
        return 0
    return value


def _access_log(r: Reader, value: Any, log_format: str) -> AccessLogConfig:
    m = r.mapping(value, "access_log", _ACCESS_LOG, set())
    target = r.string(m, "target", "access_log", "stderr")
    if target != "stderr" and not target.startswith("/"):
        r.error("access_log.target", f"{target!r} must be stderr or an absolute file path")
    interval = r.duration(m, "flush_interval", "access_log", 0.1)
    if interval > 10:
        r.error("access_log.flush_interval", "must be at most 10s")
    return AccessLogConfig(
        target=target,
        format=r.choice(m, "format", "access_log", log_format, ("text", "json")),
        flush_interval=interval,
        max_pending_kib=r.integer(m, "max_pending_kib", "access_log", 4096, 64, 1 << 20),
    )


def _optional_string(r: Reader, m: Any, key: str, path: str = "") -> str | None:
    return r.string(m, key, path) if key in m else None


def _etcd(r: Reader, value: Any) -> EtcdConfig:
    m = r.mapping(value, "etcd", {"endpoints", "tls", "user", "password_file"}, {"endpoints"})
    r.fact("etcd", "endpoints", "list of URLs")
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


def _admin(r: Reader, value: Any, check: AdminTlsCheck | None) -> AdminConfig | None:
    m = r.mapping(value, "admin", {"listen", "token_file", "tls"}, {"listen"})
    listen = _admin_listen(r, m)
    tls = _admin_tls(r, m["tls"], check) if "tls" in m else None
    if listen is None:
        return None
    token_file = _optional_string(r, m, "token_file", "admin")
    return AdminConfig(listen=listen, token_file=token_file, tls=tls)


def _admin_listen(r: Reader, m: Any) -> HostPort | None:
    """``host:port``, or a bare port (``9100``, ``"9100"``, ``":9100"``): loopback only.
    Listening on every address takes an explicit ``0.0.0.0:PORT`` or ``[::]:PORT``."""
    value = m.get("listen")
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.removeprefix(":").isdigit():
        port = int(value.removeprefix(":"))
    else:
        return r.host_port(m, "listen", "admin")
    if not 0 < port < 65536:
        r.error("admin.listen", f"{value!r} is not a port (1-65535) or host:port")
        return None
    return HostPort(LOOPBACK, port)


def _admin_tls(r: Reader, value: Any, check: AdminTlsCheck | None) -> AdminTls | None:
    before = len(r.errors)
    m = r.mapping(value, "admin.tls", {"cert", "key", "ca", "verify"}, {"cert", "key"})
    verify = r.choice(m, "verify", "admin.tls", "none", _VERIFY)
    tls = AdminTls(
        cert=r.string(m, "cert", "admin.tls"),
        key=r.string(m, "key", "admin.tls"),
        ca=_optional_string(r, m, "ca", "admin.tls"),
        verify=cast(AdminVerify, verify),
    )
    if tls.verify != "none" and tls.ca is None:
        r.error("admin.tls.ca", f"is required with verify: {tls.verify} (the CA that signs "
                                "client certificates)")  # fmt: skip
    if len(r.errors) > before:
        return None
    for error in check(tls) if check is not None else ():
        r.error(*error)
    return tls if len(r.errors) == before else None
