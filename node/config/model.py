"""Typed, immutable configuration model.

Everything here is produced by :mod:`node.config.cluster` and :mod:`node.config.nodefile`
after validation; the rest of the program never sees raw YAML.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Literal

BalanceAlgorithm = Literal["roundrobin", "leastconn", "source", "uri"]
CheckType = Literal["http", "tcp", "ssl-hello"]
Mode = Literal["http", "tcp"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


DEFAULT_DATA_DIR = "/var/lib/floatgate"


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds, with HAProxy's names. ``client``: the client's inactivity while floatgate
    waits for its bytes (request body) or for it to read (response); ``http_request``:
    the whole request header section (unset: ``client``); ``http_keep_alive``: idleness
    between requests (unset: ``http_request``); ``tunnel``: idleness of a WebSocket or
    ``mode tcp`` stream (unset: ``client``); ``server``, ``connect``, ``queue``: towards
    the servers."""

    connect: float = 5.0
    client: float = 30.0
    server: float = 30.0
    queue: float = 5.0
    http_request: float | None = None
    http_keep_alive: float | None = None
    tunnel: float | None = None

    @property
    def request_headers(self) -> float:
        return self.http_request if self.http_request is not None else self.client

    @property
    def keep_alive(self) -> float:
        return self.http_keep_alive if self.http_keep_alive is not None else self.request_headers

    @property
    def tunnel_idle(self) -> float:
        return self.tunnel if self.tunnel is not None else self.client


@dataclass(frozen=True, slots=True)
class HealthCheck:
    type: CheckType = "tcp"
    interval: float = 2.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 3
    method: str = "GET"
    path: str = "/"
    host: str | None = None
    expect_min: int = 200
    expect_max: int = 399


@dataclass(frozen=True, slots=True)
class ServerConfig:
    name: str
    address: HostPort
    weight: int = 1
    backup: bool = False
    maxconn: int = 0  # 0: unlimited
    check: bool = True


@dataclass(frozen=True, slots=True)
class BackendTls:
    """TLS towards the servers (re-encryption)."""

    verify: Literal["none", "required"] = "required"
    ca: str | None = None  # a name in client_cas; None: the system trust store
    sni: str | None = None  # None: the server's address host
    client_certificate: str | None = None  # a name in certificates


@dataclass(frozen=True, slots=True)
class BackendConfig:
    name: str
    servers: tuple[ServerConfig, ...]
    mode: Mode = "http"
    balance: BalanceAlgorithm = "roundrobin"
    check: HealthCheck | None = None
    passive_fall: int = 0  # 0: passive marking down disabled
    retries: int = 2
    maxqueue: int = 1024
    timeouts: Timeouts = field(default_factory=Timeouts)
    tls: BackendTls | None = None
    send_proxy: Literal["v1", "v2"] | None = None


@dataclass(frozen=True, slots=True)
class ForwardFor:
    enabled: bool = False
    trusted: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class AcmeEab:
    """External account binding (RFC 8555 7.3.4): the key id and base64url HMAC key a
    CA gives for linking a new ACME account to an account of its own."""

    kid: str
    hmac_key: str


@dataclass(frozen=True, slots=True)
class AcmeSpec:
    """A certificate ordered from an ACME CA (node.acme) instead of read from files."""

    directory: str  # the CA's directory URL (https)
    domains: tuple[str, ...]
    email: str | None = None
    challenge: Literal["http-01"] = "http-01"
    key_type: Literal["ecdsa-p256", "rsa-2048"] = "ecdsa-p256"
    renew_before: float = 30 * 86400.0
    directory_ca: str | None = None  # a file (bundled) that the directory's TLS chains to
    eab: AcmeEab | None = None


@dataclass(frozen=True, slots=True)
class CertificateSource:
    """One PEM file (leaf + chain + key), or a certificate file and a key file; with
    ``acme``, the file is what the CA issued (``acme/<name>.pem``, written by floatgate)."""

    cert: str
    key: str | None = None
    acme: AcmeSpec | None = None


@dataclass(frozen=True, slots=True)
class ClientAuthConfig:
    ca: str
    verify: Literal["none", "optional", "required"] = "required"
    crl: str | None = None
    forward_pem: bool = False


@dataclass(frozen=True, slots=True)
class FrontendTls:
    certificates: tuple[str, ...]
    policy: Literal["intermediate", "modern"] = "intermediate"
    client_auth: ClientAuthConfig | None = None
    handshake_timeout: float = 5.0
    ticket_rotation: float = 3600.0  # new session-ticket keys this often
    alpn: tuple[str, ...] = ("http/1.1",)  # offered in this order ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class SniRoute:
    """``mode: tcp``: connections whose ClientHello names ``sni`` go to ``backend``.
    ``*.example.com`` matches one label; exact names win over wildcards."""

    sni: str
    backend: str


# -- request rules (parsed by node.config.rules, evaluated by node.proxy.http.rules) --


@dataclass(frozen=True, slots=True)
class Match:
    """One matcher: ``kind`` is a key of _MATCHERS; ``values`` its accepted values."""

    kind: str
    values: tuple[Any, ...]

    def describe(self) -> str:
        shown = [v.pattern if isinstance(v, re.Pattern) else str(v) for v in self.values]
        return f"{self.kind} {'|'.join(shown)}"


@dataclass(frozen=True, slots=True)
class Condition:
    """``all`` of matches and sub-conditions; ``any_of`` alternatives; ``negate`` for not."""

    matches: tuple[Match, ...] = ()
    all_of: tuple[Condition, ...] = ()
    any_of: tuple[Condition, ...] = ()
    negate: Condition | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    code: int
    location: str | None = None
    prefix: str | None = None
    keep_query: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    index: int
    condition: Condition | None
    redirect: Redirect | None = None
    deny_status: int | None = None
    use_backend: str | None = None
    set_header: tuple[str, str] | None = None
    del_header: str | None = None


@dataclass(frozen=True, slots=True)
class Http2Settings:
    """HTTP/2 to clients (``tls.alpn`` with ``h2``, or ``cleartext`` prior knowledge).
    The defaults are HAProxy's (tune.h2.*), with RFC 9113's initial window."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    header_table_size: int = 4096
    max_header_list_size: int = 65536
    max_total_streams: int = 10000  # then GOAWAY: the client opens a new connection
    cleartext: bool = False  # h2c with prior knowledge on a plain frontend


@dataclass(frozen=True, slots=True)
class FrontendConfig:
    name: str
    bind: HostPort
    default_backend: str
    mode: Mode = "http"
    maxconn: int = 10000
    forwardfor: ForwardFor = field(default_factory=ForwardFor)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_header_size: int = 16384
    max_uri_length: int = 8190
    tls: FrontendTls | None = None
    http2: Http2Settings = field(default_factory=Http2Settings)
    rules: tuple[Rule, ...] = ()
    routes: tuple[SniRoute, ...] = ()  # mode tcp
    hello_timeout: float = 5.0  # for a PROXY header and (mode tcp) the ClientHello
    accept_proxy: tuple[Network, ...] = ()  # PROXY protocol required from these sources


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    lease_ttl: float = 2.0
    nopreempt: bool = True
    min_healthy_backends: int = 1
    etcd_loss: str = "release"  # or "failsafe": keep the VIP while every peer agrees
    down_visible_for: float = 600.0  # a vanished member stays listed as DOWN this long


@dataclass(frozen=True, slots=True)
class GarpConfig:
    count: int = 3
    interval: float = 0.2


@dataclass(frozen=True, slots=True)
class VipConfig:
    address: ipaddress.IPv4Interface
    garp: GarpConfig = field(default_factory=GarpConfig)
    arp_probe: float = 0.05  # wait for a conflicting holder before claiming; 0: no probe
    # bpf: an eBPF program passes the VIP's traffic and ARP only before the leadership
    # deadline (absolute, ns; vip/fence.py), the address lifetime is a backstop.
    # lifetime: the kernel address lifetime alone (whole seconds; lease_ttl >= 2s).
    fence: str = "bpf"


@dataclass(frozen=True, slots=True)
class SelfCheckConfig:
    """The node's own end-to-end probe of each frontend (health means serving): every
    ``interval``, a probe that must answer within ``timeout``; ``fall`` failures in a
    row make the frontend (and so the node) unhealthy, ``rise`` successes healthy."""

    interval: float = 0.2
    timeout: float = 0.3
    fall: int = 2
    rise: int = 2


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    cluster: str
    frontends: tuple[FrontendConfig, ...]
    backends: tuple[BackendConfig, ...]
    election: ElectionConfig = field(default_factory=ElectionConfig)
    vip: VipConfig | None = None
    shutdown_grace: float = 10.0
    self_check: SelfCheckConfig = field(default_factory=SelfCheckConfig)
    source: str = "<memory>"
    certificates: dict[str, CertificateSource] = field(default_factory=dict)
    client_cas: dict[str, str] = field(default_factory=dict)
    crls: dict[str, str] = field(default_factory=dict)

    def backend(self, name: str) -> BackendConfig:
        for backend in self.backends:
            if backend.name == name:
                return backend
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class EtcdTls:
    ca: str
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    endpoints: tuple[str, ...]
    tls: EtcdTls | None = None
    user: str | None = None
    password_file: str | None = None


AdminVerify = Literal["none", "optional", "required"]


@dataclass(frozen=True, slots=True)
class AdminTls:
    """``admin.tls``: the listener serves HTTPS with ``cert``/``key``; ``ca`` verifies
    client certificates (``verify``) and, when this node talks to other nodes' admin
    APIs, their server certificates (without ``ca``: the system's trust store)."""

    cert: str
    key: str
    ca: str | None = None
    verify: AdminVerify = "none"


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: HostPort
    token_file: str | None = None
    tls: AdminTls | None = None


@dataclass(frozen=True, slots=True)
class AccessLogConfig:
    """``access_log`` in node.yaml: where the one line per request goes. Lines are
    buffered and written by a thread of their own, never by the event loop; what a
    slow or failing target cannot take is dropped and counted."""

    enabled: bool = True
    target: str = "stderr"  # or an absolute file path (appended to, reopened on SIGHUP)
    format: str = "text"  # text | json
    flush_interval: float = 0.1  # seconds a line may wait in the buffer
    max_pending_kib: int = 4096  # buffered and unwritten; past it lines are dropped


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    etcd: EtcdConfig | None = None
    interface: str | None = None
    admin: AdminConfig | None = None
    secret_file: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    priority: int = 100
    log_format: str = "text"  # text | json
    access_log: AccessLogConfig = AccessLogConfig()
    # Data-plane worker processes: 0 = the node process serves itself; N >= 1 = N
    # workers on the node process's sockets (node.app.supervisor)
    workers: int = 0
    source: str = "<memory>"
