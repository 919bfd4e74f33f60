"""Parse and validate ``cluster.yaml`` into :class:`ClusterConfig`.

Every error names the file and the key path; nothing is returned unless the whole
document is valid (bad input changes nothing).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from node.config.acme import check_challenge_frontends, parse_acme
from node.config.errors import ConfigError
from node.config.model import (
    BackendConfig,
    BackendTls,
    BalanceAlgorithm,
    CertificateSource,
    CheckType,
    ClientAuthConfig,
    ClusterConfig,
    ElectionConfig,
    ForwardFor,
    FrontendConfig,
    FrontendTls,
    GarpConfig,
    HealthCheck,
    HostPort,
    Http2Settings,
    Mode,
    Network,
    SelfCheckConfig,
    ServerConfig,
    SniRoute,
    Timeouts,
    VipConfig,
)
from node.config.reader import Reader
from node.config.rules import parse_rules

_ALPN = ("h2", "http/1.1")
_WINDOW, _MB = (1 << 31) - 1, 1 << 20

_TOP = {
    "cluster", "election", "vip", "defaults", "frontends", "backends", "shutdown_grace",
    "self_check",
    "certificates", "client_cas", "crls",
}  # fmt: skip
# Which side reads which timeout: a key given where nothing reads it is refused.
_FRONTEND_TIMEOUTS = frozenset({"client", "http_request", "http_keep_alive", "tunnel"})
_BACKEND_TIMEOUTS = frozenset({"connect", "server", "queue"})
_BALANCE = ("roundrobin", "leastconn", "source", "uri")
_METHOD_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NO_ADDRESS = HostPort("", 0)  # placeholder while collecting errors; never returned


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate a cluster file. Raises :class:`ConfigError` listing every error."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_cluster(text, source)


def parse_cluster(text: str, source: str = "<memory>") -> ClusterConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    errors: list[str] = []
    config = _Parser(Reader(source, errors)).document(document)
    if errors or config is None:
        raise ConfigError(errors or [f"{source}: empty configuration"])
    return config


def etcd_requirements(config: ClusterConfig) -> list[str]:
    """What etcd must be set to for the election to run as written (``floatgate check``
    prints it: it cannot see etcd's flags). etcd grants at least ceil(1.5 x its election
    timeout), 2 s with its default 1000 ms."""
    ttl = config.election.lease_ttl
    if config.vip is None or ttl >= 2:
        return []
    longest = int(ttl * 1000 / 1.5)
    return [
        f"election.lease_ttl {ttl:g}s needs --election-timeout of at most {longest} ms on "
        "every etcd member (etcd grants at least ceil(1.5 x it): 2 s with its default "
        "1000 ms), such as the Ansible etcd role's etcd_profile: lan (heartbeat 50 ms, "
        "election 500 ms); with a longer one the nodes lead on what etcd grants and "
        "say so in /status (lease_ttl_note)"
    ]


class _Parser:
    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def document(self, doc: Any) -> ClusterConfig | None:
        r = self.r
        top = r.mapping(doc, "", _TOP, {"cluster", "frontends", "backends"})
        if not top:
            return None
        cluster = r.name(top, "cluster", "")
        defaults = r.mapping(top.get("defaults", {}), "defaults", {"timeout", "retries"})
        base_timeouts = self.timeouts(defaults.get("timeout"), "defaults.timeout", Timeouts())
        base_retries = r.integer(defaults, "retries", "defaults", 2, 0, 10)
        backends = [
            self.backend(item, path, base_timeouts, base_retries)
            for path, item in r.items(top.get("backends"), "backends")
        ]
        names = {b.name for b in backends}
        frontends = [
            self.frontend(item, path, base_timeouts, names)
            for path, item in r.items(top.get("frontends"), "frontends")
        ]
        if "frontends" in top and not frontends:
            r.error("frontends", "needs at least one frontend")
        if "backends" in top and not backends:
            r.error("backends", "needs at least one backend")
        self.check_names("backends", [b.name for b in backends])
        self.check_names("frontends", [f.name for f in frontends])
        self.check_references(frontends, {b.name: b for b in backends})
        self.check_binds(frontends)
        certificates = self.certificates(top.get("certificates"))
        client_cas = self.files(top.get("client_cas"), "client_cas")
        crls = self.files(top.get("crls"), "crls")
        self.check_tls_references(frontends, certificates, client_cas, crls)
        for index, backend in enumerate(backends):
            tls = backend.tls
            if tls is not None and tls.ca is not None and tls.ca not in client_cas:
                r.error(f"backends[{index}].tls.ca", f"{tls.ca!r} is not defined in client_cas")
            if tls is not None and tls.client_certificate not in (None, *certificates):
                message = f"{tls.client_certificate!r} is not defined in certificates"
                r.error(f"backends[{index}].tls.client_certificate", message)
        election = self.election(top.get("election", {}))
        vip = self.vip(top["vip"], election) if "vip" in top else None
        check_challenge_frontends(r, certificates, frontends, vip)
        return ClusterConfig(
            certificates=certificates,
            client_cas=client_cas,
            crls=crls,
            cluster=cluster,
            frontends=tuple(frontends),
            backends=tuple(backends),
            election=election,
            vip=vip,
            shutdown_grace=r.duration(top, "shutdown_grace", "", 10.0, low=0.0),
            self_check=self.self_check(top.get("self_check", {})),
            source=r.source,
        )

    def timeouts(
        self,
        value: Any,
        path: str,
        base: Timeouts,
        side: frozenset[str] = _FRONTEND_TIMEOUTS | _BACKEND_TIMEOUTS,
    ) -> Timeouts:
        if value is None:
            return base
        elsewhere = (_FRONTEND_TIMEOUTS | _BACKEND_TIMEOUTS) - side
        if isinstance(value, dict):
            for key in sorted(elsewhere & set(value)):
                other = "backends" if key in _BACKEND_TIMEOUTS else "frontends"
                self.r.error(f"{path}.{key}", f"only {other} read this timeout: set it "
                             f"under {other}[].timeout or defaults.timeout")  # fmt: skip
            value = {k: v for k, v in value.items() if k not in elsewhere}
        m = self.r.mapping(value, path, side)
        return Timeouts(
            connect=self.r.duration(m, "connect", path, base.connect),
            client=self.r.duration(m, "client", path, base.client),
            server=self.r.duration(m, "server", path, base.server),
            queue=self.r.duration(m, "queue", path, base.queue),
            http_request=self._optional_duration(m, "http_request", path, base.http_request),
            http_keep_alive=self._optional_duration(
                m, "http_keep_alive", path, base.http_keep_alive
            ),
            tunnel=self._optional_duration(m, "tunnel", path, base.tunnel),
        )

    def _optional_duration(
        self, m: Any, key: str, path: str, default: float | None
    ) -> float | None:
        self.r.fact(path, key, "duration", "unset")
        if key not in m:
            return default
        return self.r.duration(m, key, path, default or 1.0)

    def frontend(
        self, value: Any, path: str, base: Timeouts, backend_names: set[str]
    ) -> FrontendConfig:
        r = self.r
        mode = self.mode(value, path)
        common = {"name", "bind", "mode", "maxconn", "timeout", "default_backend", "accept_proxy",
                  "hello_timeout"}  # fmt: skip
        if mode == "tcp":
            allowed = common | {"routes"}
            required = {"name", "bind"}
        else:
            allowed = common | {"forwardfor", "max_header_size", "max_uri_length", "tls", "rules",
                                "http2"}  # fmt: skip
            required = {"name", "bind", "default_backend"}
        m = r.mapping(value, path, allowed, required)
        if mode == "tcp" and "default_backend" not in m and not m.get("routes"):
            r.error(path, "a tcp frontend needs routes or a default_backend")
        bind = r.host_port(m, "bind", path)
        r.fact(path, "forwardfor", "true or false, or a mapping", False)
        return FrontendConfig(
            mode=mode,
            routes=self.routes(m.get("routes"), f"{path}.routes"),
            hello_timeout=r.duration(m, "hello_timeout", path, 5.0, low=0.05),
            accept_proxy=self.accept_proxy(m.get("accept_proxy"), f"{path}.accept_proxy"),
            name=r.name(m, "name", path),
            bind=bind if bind is not None else _NO_ADDRESS,
            default_backend=r.string(m, "default_backend", path),
            maxconn=r.integer(m, "maxconn", path, 10000, 1, 1_000_000),
            forwardfor=self.forwardfor(m.get("forwardfor", False), f"{path}.forwardfor"),
            timeouts=self.timeouts(m.get("timeout"), f"{path}.timeout", base, _FRONTEND_TIMEOUTS),
            max_header_size=r.integer(m, "max_header_size", path, 16384, 1024, 1 << 20),
            max_uri_length=r.integer(m, "max_uri_length", path, 8190, 256, 1 << 16),
            tls=self.frontend_tls(m["tls"], f"{path}.tls") if "tls" in m else None,
            http2=self.http2(m.get("http2"), f"{path}.http2", tls="tls" in m),
            rules=parse_rules(r, m.get("rules"), f"{path}.rules", backend_names),
        )

    def frontend_tls(self, value: Any, path: str) -> FrontendTls:
        r = self.r
        allowed = {"certificates", "policy", "client_auth", "handshake_timeout", "ticket_rotation",
                   "alpn"}  # fmt: skip
        m = r.mapping(value, path, allowed, {"certificates"})
        r.fact(path, "certificates", "list of names")
        names = [str(item) for _, item in r.items(m.get("certificates"), f"{path}.certificates")]
        if "certificates" in m and not names:
            r.error(f"{path}.certificates", "needs at least one certificate")
        policy = r.choice(m, "policy", path, "intermediate", ("intermediate", "modern"))
        client_auth = None
        if "client_auth" in m:
            a_path = f"{path}.client_auth"
            auth_keys = {"ca", "crl", "verify", "forward_pem"}
            a = r.mapping(m["client_auth"], a_path, auth_keys, {"ca"})
            verify = r.choice(a, "verify", a_path, "required", ("none", "optional", "required"))
            client_auth = ClientAuthConfig(
                ca=r.string(a, "ca", a_path),
                verify=cast(Literal["none", "optional", "required"], verify),
                crl=r.string(a, "crl", a_path) if "crl" in a else None,
                forward_pem=r.boolean(a, "forward_pem", a_path, False),
            )
        return FrontendTls(
            certificates=tuple(names),
            policy="modern" if policy == "modern" else "intermediate",
            client_auth=client_auth,
            handshake_timeout=r.duration(m, "handshake_timeout", path, 5.0, low=0.05),
            ticket_rotation=r.duration(m, "ticket_rotation", path, 3600.0, low=0.1),
            alpn=self.alpn(m.get("alpn"), f"{path}.alpn"),
        )

    def alpn(self, value: Any, path: str) -> tuple[str, ...]:
        """The application protocols offered in the handshake, in order of preference."""
        self.r.fact(path.rsplit(".", 1)[0], "alpn", "list of h2, http/1.1", "[http/1.1]")
        if value is None:
            return ("http/1.1",)
        names: list[str] = []
        for item_path, item in self.r.items(value, path):
            if item not in _ALPN:
                self.r.error(item_path, f"{item!r} is not one of {', '.join(_ALPN)}")
            elif item in names:
                self.r.error(item_path, f"{item!r} is listed twice")
            else:
                names.append(item)
        if isinstance(value, list) and not value:
            self.r.error(path, "needs at least one protocol (h2, http/1.1)")
        return tuple(names) or ("http/1.1",)

    def http2(self, value: Any, path: str, tls: bool) -> Http2Settings:
        r = self.r
        keys = {"max_concurrent_streams", "initial_window_size", "header_table_size",
                "max_header_list_size", "max_total_streams", "cleartext"}  # fmt: skip
        m = r.mapping(value if value is not None else {}, path, keys, set())
        cleartext = r.boolean(m, "cleartext", path, False)
        if cleartext and tls:
            r.error(f"{path}.cleartext", "is for plain frontends; on TLS, list h2 in tls.alpn")
        return Http2Settings(
            max_concurrent_streams=r.integer(m, "max_concurrent_streams", path, 100, 1, 1000),
            initial_window_size=r.integer(m, "initial_window_size", path, 65535, 65535, _WINDOW),
            header_table_size=r.integer(m, "header_table_size", path, 4096, 0, 65536),
            max_header_list_size=r.integer(m, "max_header_list_size", path, 65536, 1024, _MB),
            max_total_streams=r.integer(m, "max_total_streams", path, 10000, 1, 1 << 30),
            cleartext=cleartext,
        )

    def certificates(self, value: Any) -> dict[str, CertificateSource]:
        if value is None:
            return {}
        m = self.r.named(value, "certificates")
        result: dict[str, CertificateSource] = {}
        for name, item in m.items():
            path = f"certificates.{name}"
            self.r.fact("certificates", name, "file name, or {cert, key}, or {acme}")
            if isinstance(item, str):
                result[name] = CertificateSource(cert=item)
                continue
            if isinstance(item, dict) and "acme" in item:
                self.r.mapping(item, path, {"acme"}, {"acme"})
                result[name] = parse_acme(self.r, name, item["acme"])
                continue
            c = self.r.mapping(item, path, {"cert", "key", "acme"}, {"cert", "key"})
            result[name] = CertificateSource(
                cert=self.r.string(c, "cert", path), key=self.r.string(c, "key", path)
            )
        return result

    def files(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        m = self.r.named(value, path)
        result = {}
        for name, item in m.items():
            self.r.fact(path, name, "file name")
            if not isinstance(item, str):
                self.r.error(f"{path}.{name}", "must be a file name")
            else:
                result[name] = item
        return result

    def check_tls_references(
        self,
        frontends: list[FrontendConfig],
        certificates: dict[str, CertificateSource],
        client_cas: dict[str, str],
        crls: dict[str, str],
    ) -> None:
        for index, frontend in enumerate(frontends):
            tls = frontend.tls
            if tls is None:
                continue
            path = f"frontends[{index}].tls"
            for position, name in enumerate(tls.certificates):
                if name not in certificates:
                    message = f"certificate {name!r} is not defined in certificates"
                    self.r.error(f"{path}.certificates[{position}]", message)
            auth = tls.client_auth
            if auth is not None and auth.ca and auth.ca not in client_cas:
                message = f"{auth.ca!r} is not defined in client_cas"
                self.r.error(f"{path}.client_auth.ca", message)
            if auth is not None and auth.crl is not None and auth.crl not in crls:
                self.r.error(f"{path}.client_auth.crl", f"{auth.crl!r} is not defined in crls")

    def mode(self, value: Any, path: str) -> Mode:
        mode = self.r.choice(value if isinstance(value, dict) else {}, "mode", path, "http",
                             ("http", "tcp"))  # fmt: skip
        return "tcp" if mode == "tcp" else "http"

    def accept_proxy(self, value: Any, path: str) -> tuple[Network, ...]:
        if value is None:
            return ()
        m = self.r.mapping(value, path, {"trusted"}, {"trusted"})
        trusted = self.r.networks(m.get("trusted"), f"{path}.trusted")
        if "trusted" in m and not trusted:
            self.r.error(f"{path}.trusted", "needs at least one network")
        return trusted

    def routes(self, value: Any, path: str) -> tuple[SniRoute, ...]:
        routes = []
        for item_path, item in self.r.items(value, path):
            m = self.r.mapping(item, item_path, {"sni", "backend"}, {"sni", "backend"})
            sni = self.r.string(m, "sni", item_path).lower().rstrip(".")
            label = sni[2:] if sni.startswith("*.") else sni
            if "sni" in m and not re.fullmatch(
                r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", label
            ):
                self.r.error(f"{item_path}.sni", f"{m['sni']!r} is not a host name or *.wildcard")
            routes.append(SniRoute(sni, self.r.string(m, "backend", item_path)))
        return tuple(routes)

    def forwardfor(self, value: Any, path: str) -> ForwardFor:
        if isinstance(value, bool):
            return ForwardFor(enabled=value)
        m = self.r.mapping(value, path, {"enabled", "trusted"})
        return ForwardFor(
            enabled=self.r.boolean(m, "enabled", path, True),
            trusted=self.r.networks(m.get("trusted"), f"{path}.trusted"),
        )

    def backend(self, value: Any, path: str, base: Timeouts, retries: int) -> BackendConfig:
        r = self.r
        allowed = {
            "name", "mode", "balance", "check", "servers", "retries",
            "maxqueue", "timeout", "passive_fall", "tls", "send_proxy",
        }  # fmt: skip
        m = r.mapping(value, path, allowed, {"name", "servers"})
        backend_mode = self.mode(value, path)
        balance = r.choice(m, "balance", path, "roundrobin", _BALANCE)
        servers = [self.server(item, p) for p, item in r.items(m.get("servers"), f"{path}.servers")]
        if "servers" in m and not servers:
            r.error(f"{path}.servers", "needs at least one server")
        self.check_names(f"{path}.servers", [s.name for s in servers])
        if m.get("passive_fall") and "check" not in m:
            r.error(f"{path}.passive_fall", "needs a check to bring servers back up")
        return BackendConfig(
            name=r.name(m, "name", path),
            servers=tuple(servers),
            balance=cast(BalanceAlgorithm, balance),
            check=self.check(m["check"], f"{path}.check") if "check" in m else None,
            passive_fall=r.integer(m, "passive_fall", path, 0, 0, 1000),
            retries=r.integer(m, "retries", path, retries, 0, 10),
            maxqueue=r.integer(m, "maxqueue", path, 1024, 0, 1_000_000),
            timeouts=self.timeouts(m.get("timeout"), f"{path}.timeout", base, _BACKEND_TIMEOUTS),
            tls=self.backend_tls(m["tls"], f"{path}.tls") if "tls" in m else None,
            mode=backend_mode,
            send_proxy=self.send_proxy(m, path),
        )

    def send_proxy(self, m: Mapping[str, Any], path: str) -> Literal["v1", "v2"] | None:
        value = self.r.choice(m, "send_proxy", path, "", ("v1", "v2")) if "send_proxy" in m else ""
        self.r.fact(path, "send_proxy", "v1 | v2")
        return "v1" if value == "v1" else "v2" if value == "v2" else None

    def backend_tls(self, value: Any, path: str) -> BackendTls:
        r = self.r
        m = r.mapping(value, path, {"verify", "ca", "sni", "client_certificate"})
        verify = r.choice(m, "verify", path, "required", ("none", "required"))
        return BackendTls(
            verify="none" if verify == "none" else "required",
            ca=r.string(m, "ca", path) if "ca" in m else None,
            sni=r.string(m, "sni", path) if "sni" in m else None,
            client_certificate=(
                r.string(m, "client_certificate", path) if "client_certificate" in m else None
            ),
        )

    def server(self, value: Any, path: str) -> ServerConfig:
        r = self.r
        allowed = {"name", "address", "weight", "backup", "maxconn", "check"}
        m = r.mapping(value, path, allowed, {"name", "address"})
        address = r.host_port(m, "address", path)
        if address is not None and address.host in ("0.0.0.0", "::"):
            r.error(f"{path}.address", f"{m['address']!r} needs a host")
        return ServerConfig(
            name=r.name(m, "name", path),
            address=address if address is not None else _NO_ADDRESS,
            weight=r.integer(m, "weight", path, 1, 1, 256),
            backup=r.boolean(m, "backup", path, False),
            maxconn=r.integer(m, "maxconn", path, 0, 0, 1_000_000),
            check=r.boolean(m, "check", path, True),
        )

    def check(self, value: Any, path: str) -> HealthCheck:
        r = self.r
        allowed = {
            "type",
            "interval",
            "timeout",
            "rise",
            "fall",
            "method",
            "path",
            "host",
            "expect",
        }
        m = r.mapping(value, path, allowed)
        kind = r.choice(m, "type", path, "tcp", ("tcp", "http", "ssl-hello"))
        method = r.string(m, "method", path, "GET")
        if not method or not set(method) <= _METHOD_CHARS:
            r.error(f"{path}.method", f"{method!r} is not an HTTP method")
        check_path = r.string(m, "path", path, "/")
        if not check_path.startswith("/") or any(c in check_path for c in " \r\n"):
            r.error(f"{path}.path", f"{check_path!r} must start with / and contain no spaces")
        r.fact(path, "expect", "status or range", "200-399")
        low, high = self.status_range(m.get("expect", "200-399"), f"{path}.expect")
        r.fact(path, "host", "host name")
        host = m.get("host")
        if host is not None and (not isinstance(host, str) or any(c in host for c in " \r\n")):
            r.error(f"{path}.host", f"{host!r} is not a host name")
            host = None
        interval = r.duration(m, "interval", path, 2.0, low=0.01)
        return HealthCheck(
            type=cast(CheckType, kind),
            interval=interval,
            timeout=r.duration(m, "timeout", path, min(1.0, interval), low=0.01),
            rise=r.integer(m, "rise", path, 2, 1, 100),
            fall=r.integer(m, "fall", path, 3, 1, 100),
            method=method,
            path=check_path,
            host=host,
            expect_min=low,
            expect_max=high,
        )

    def status_range(self, value: Any, path: str) -> tuple[int, int]:
        text = str(value)
        low_text, _, high_text = text.partition("-")
        high_text = high_text or low_text
        if low_text.isdigit() and high_text.isdigit():
            low, high = int(low_text), int(high_text)
            if 100 <= low <= high <= 599:
                return low, high
        self.r.error(path, f"{text!r} is not a status or range like 200-399")
        return 200, 399

    def self_check(self, value: Any) -> SelfCheckConfig:
        r = self.r
        m = r.mapping(value, "self_check", {"interval", "timeout", "fall", "rise"})
        return SelfCheckConfig(
            interval=r.duration(m, "interval", "self_check", 0.2, low=0.05),
            timeout=r.duration(m, "timeout", "self_check", 0.3, low=0.05),
            fall=r.integer(m, "fall", "self_check", 2, 1, 100),
            rise=r.integer(m, "rise", "self_check", 2, 1, 100),
        )

    def election(self, value: Any) -> ElectionConfig:
        r = self.r
        m = r.mapping(value, "election",
                      {"lease_ttl", "nopreempt", "min_healthy_backends", "etcd_loss",
                       "down_visible_for"})  # fmt: skip
        etcd_loss = r.choice(m, "etcd_loss", "election", "release", ("release", "failsafe"))
        # etcd leases are whole seconds. 1 s needs the eBPF fence (checked with vip): the
        # kernel address lifetime also counts whole seconds and would be 0 s.
        lease_ttl = r.duration(m, "lease_ttl", "election", 2.0, low=1.0)
        if lease_ttl != int(lease_ttl):
            r.error(
                "election.lease_ttl",
                f"{m['lease_ttl']!r} is not a whole number of seconds (etcd rounds "
                "lease TTLs to whole seconds): use 1s, 2s, 3s, ...",
            )
            lease_ttl = float(round(lease_ttl))
        down_visible_for = r.duration(m, "down_visible_for", "election", 600.0, low=0.0)
        return ElectionConfig(
            lease_ttl=lease_ttl,
            nopreempt=r.boolean(m, "nopreempt", "election", True),
            min_healthy_backends=r.integer(m, "min_healthy_backends", "election", 1, 0, 1000),
            etcd_loss=etcd_loss,
            down_visible_for=float(round(down_visible_for)),
        )

    def vip(self, value: Any, election: ElectionConfig) -> VipConfig | None:
        r = self.r
        m = r.mapping(value, "vip", {"address", "garp", "arp_probe", "fence"}, {"address"})
        try:
            address = ipaddress.IPv4Interface(r.string(m, "address", "vip"))
        except ValueError:
            r.error("vip.address", f"{m.get('address')!r} is not an IPv4 address/prefix")
            return None
        g = r.mapping(m.get("garp", {}), "vip.garp", {"count", "interval"})
        garp = GarpConfig(
            count=r.integer(g, "count", "vip.garp", 3, 0, 100),
            interval=r.duration(g, "interval", "vip.garp", 0.2, low=0.01),
        )
        probe = r.duration(m, "arp_probe", "vip", 0.05, low=0.0)
        if probe > 1.0:
            r.error("vip.arp_probe", "at most 1s (it delays every takeover)")
        fence = r.choice(m, "fence", "vip", "bpf", ("bpf", "lifetime"))
        if fence == "lifetime" and election.lease_ttl < 2:
            r.error(
                "election.lease_ttl",
                f"{election.lease_ttl:g}s needs vip.fence: bpf; with vip.fence: lifetime the "
                "kernel address lifetime counts whole seconds and must end before the "
                "leadership deadline (TTL - margin), which leaves 0 s: use 2s or more",
            )
        return VipConfig(address=address, garp=garp, arp_probe=probe, fence=fence)

    def check_names(self, path: str, names: list[str]) -> None:
        seen: set[str] = set()
        for index, name in enumerate(names):
            if name and name in seen:
                self.r.error(f"{path}[{index}].name", f"duplicate name {name!r}")
            seen.add(name)

    def check_references(
        self, frontends: list[FrontendConfig], backends: dict[str, BackendConfig]
    ) -> None:
        for index, frontend in enumerate(frontends):
            targets = [(f"frontends[{index}].default_backend", frontend.default_backend)]
            for i, route in enumerate(frontend.routes):
                targets.append((f"frontends[{index}].routes[{i}].backend", route.backend))
            for rule in frontend.rules:  # undefined ones are reported by parse_rules
                if rule.use_backend in backends:
                    where = f"frontends[{index}].rules[{rule.index - 1}].use_backend"
                    targets.append((where, rule.use_backend))
            for where, name in targets:
                if not name:
                    continue
                if name not in backends:
                    self.r.error(where, f"backend {name!r} is not defined")
                elif backends[name].mode != frontend.mode:
                    mismatch = f"mode {backends[name].mode}, frontend {frontend.name!r} is mode"
                    self.r.error(where, f"backend {name!r} is {mismatch} {frontend.mode}")

    def check_binds(self, frontends: list[FrontendConfig]) -> None:
        seen: dict[tuple[str, int], str] = {}
        for index, frontend in enumerate(frontends):
            key = (frontend.bind.host, frontend.bind.port)
            if frontend.bind.port and key in seen:
                self.r.error(
                    f"frontends[{index}].bind",
                    f"{frontend.bind} is already bound by frontend {seen[key]!r}",
                )
            seen.setdefault(key, frontend.name)
