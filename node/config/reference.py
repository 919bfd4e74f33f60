"""The configuration reference (docs/configuration.md), built from the readers themselves.

The cluster.yaml and node.yaml readers are run over node/config/examples/ with a
:class:`~node.config.reader.KeysSeen`: the keys each mapping accepts, which keys are
required, and each key's kind of value and default come from the reading code. This
module adds only what code cannot say: a one-line meaning and the page that explains
it. ``unexplained`` lists the keys the readers accept that have no meaning here, and
the meanings of keys no reader accepts; tests/unit/test_reference.py keeps both empty
and the checked-in page equal to :func:`render`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from node.config.cluster import _Parser
from node.config.nodefile import parse_node_with
from node.config.reader import KeyFact, KeysSeen, Reader

NAME = "<name>"  # a key the operator names (certificates, client_cas, crls)


@dataclass(frozen=True)
class Section:
    file: str  # "cluster.yaml" or "node.yaml"
    path: str  # the keys under this path ("" is the top level)
    title: str
    about: str  # one paragraph; may link to the operator page


SECTIONS = (
    Section("cluster.yaml", "", "top level", "The same file on every node (or the "
            "[bundle](bundles.md) every node follows)."),
    Section("cluster.yaml", "election", "election",
            "Leadership through an etcd lease: [cluster.md](cluster.md#running-a-node)."),
    Section("cluster.yaml", "vip", "vip", "The floating address the active holds, its "
            "fence and its ARP announcements: [cluster.md](cluster.md#the-fence-vipfence-bpf)."),
    Section("cluster.yaml", "self_check", "self_check", "The node's own end-to-end probe "
            "of each frontend: [http-proxy.md](http-proxy.md#health-means-serving)."),
    Section("cluster.yaml", "defaults", "defaults", "Defaults for every frontend and "
            "backend that does not set its own."),
    Section("cluster.yaml", "certificates", "certificates, client_cas, crls", "TLS "
            "material by name (files relative to the certificates directory, `--certs`, "
            "default: next to cluster.yaml): [tls.md](tls.md)."),
    Section("cluster.yaml", "frontends[]", "frontends[]", "Listeners. `mode: http` "
            "proxies HTTP/1.1 ([http-proxy.md](http-proxy.md)) and HTTP/2 "
            "([http2.md](http2.md)); `mode: tcp` relays TLS "
            "by SNI without terminating it ([tls.md](tls.md#passthrough-mode-tcp))."),
    Section("cluster.yaml", "frontends[].tls", "frontends[].tls",
            "TLS termination on an http frontend: [tls.md](tls.md)."),
    Section("cluster.yaml", "frontends[].rules[]", "frontends[].rules[]", "Request rules "
            "on http frontends, in order; `redirect`, `deny` and `use_backend` are final, "
            "`set_header` and `del_header` apply and evaluation goes on. Each rule has "
            "exactly one action: [tls.md](tls.md#rules-http-frontends)."),
    Section("cluster.yaml", "backends[]", "backends[]", "Server pools, balancing, "
            "retries and queueing: [http-proxy.md](http-proxy.md)."),
    Section("cluster.yaml", "backends[].check", "backends[].check", "Active health "
            "checks of each server."),
    Section("cluster.yaml", "backends[].servers[]", "backends[].servers[]", "The servers "
            "of a backend."),
    Section("node.yaml", "", "top level", "This machine only; never replicated. Without "
            "`etcd`, `floatgate run` is a standalone proxy."),
    Section("node.yaml", "etcd", "etcd", "The etcd cluster that elects the active: "
            "[cluster.md](cluster.md#running-a-node)."),
    Section("node.yaml", "admin", "admin", "The admin listener: status page, `/status`, "
            "`/metrics`, and the token-protected `/switchover`, `/drill`, `/failsafe` "
            "([observability.md](observability.md), [cluster.md](cluster.md))."),
)  # fmt: skip

_T = "[timeouts](http-proxy.md#timeouts-every-phase-of-a-connection-has-a-deadline)"
_COND = "a condition ([tls.md](tls.md#rules-http-frontends)); a string or a list of them"

MEANINGS: dict[str, dict[str, str]] = {
    "cluster.yaml": {
        "cluster": "the cluster's name: its etcd keys live under `/floatgate/<cluster>/`",
        "election": "cluster mode: how the active is elected (needs `etcd` in node.yaml)",
        "election.lease_ttl": "lifetime of the active's etcd lease, whole seconds; a "
        "dead active is replaced about one TTL later. `1s` needs `vip.fence: bpf`",
        "election.nopreempt": "a healthy active keeps its place when a node of higher "
        "priority joins (false: the higher priority takes over)",
        "election.min_healthy_backends": "servers that must be usable for the node to "
        "campaign or stay active",
        "election.etcd_loss": "when etcd is unreachable: `release` (the active steps "
        "down at its deadline) or `failsafe` (it stays while every other member "
        "confirms it, [cluster.md](cluster.md#when-etcd-goes-away-electionetcd_loss))",
        "election.down_visible_for": "how long a member whose entry vanished stays "
        "listed as down in `floatgate status` (0s: not listed)",
        "vip": "the floating IPv4 address; without it the node elects but moves no address",
        "vip.address": "address/prefix, e.g. `10.0.0.100/24`, added on node.yaml's `interface`",
        "vip.arp_probe": "before adding the VIP, ask who has it for this long (0s: do "
        "not ask); at most 1s",
        "vip.fence": "`bpf`: an eBPF classifier drops the VIP's traffic and ARP at "
        "the leadership deadline; `lifetime`: the address lifetime alone (needs a "
        "lease_ttl of 2s or more)",
        "vip.garp": "gratuitous ARP after taking the VIP",
        "vip.garp.count": "announcements sent (0: none)",
        "vip.garp.interval": "time between announcements",
        "self_check": "the node's own probe of its frontends; failing frontends make "
        "the node unhealthy",
        "self_check.interval": "time between probes",
        "self_check.timeout": "a probe that takes longer fails",
        "self_check.fall": "failed probes in a row before a frontend counts as down",
        "self_check.rise": "passed probes in a row before it counts as up again",
        "shutdown_grace": "on SIGTERM, how long in-flight requests may finish",
        "defaults": "defaults for frontends and backends",
        "defaults.retries": "connection retries (with redispatch), for backends that set none",
        "defaults.timeout": f"default {_T} for every frontend and backend",
        "defaults.timeout.connect": "TCP (and TLS) connect to a server",
        "defaults.timeout.client": "client inactivity while its body is read or while "
        "it reads the answer (then 408 or a cut)",
        "defaults.timeout.server": "server inactivity while it is sent a request or "
        "answers one (then 504 or a cut)",
        "defaults.timeout.queue": "time a request may wait for a free server slot (then 503)",
        "defaults.timeout.http_request": "the whole request header section, from its "
        "first byte (unset: `client`; then 408)",
        "defaults.timeout.http_keep_alive": "idleness between requests on a kept-alive "
        "connection (unset: `http_request`; then close)",
        "defaults.timeout.tunnel": "idleness of a WebSocket tunnel or a `mode: tcp` "
        "relay (unset: `client`; then close)",
        "certificates": "server (and client) certificates by name",
        f"certificates.{NAME}": "a PEM file with the certificate chain and its key, or "
        "`{cert, key}` as two files",
        f"certificates.{NAME}.cert": "PEM certificate chain",
        f"certificates.{NAME}.key": "PEM private key",
        f"certificates.{NAME}.acme": "ordered from an ACME CA and renewed by the active "
        "instead of read from files ([tls.md](tls.md#automatic-certificates-acme))",
        f"certificates.{NAME}.acme.directory": "the CA's ACME directory URL (https), e.g. "
        "`https://acme-v02.api.letsencrypt.org/directory`",
        f"certificates.{NAME}.acme.email": "contact for the ACME account (expiry notices)",
        f"certificates.{NAME}.acme.domains": "DNS names of the certificate (no wildcards: "
        "http-01 cannot validate them); each must resolve to the VIP",
        f"certificates.{NAME}.acme.challenge": "`http-01`: answered on a plain port-80 "
        "frontend on the VIP, before rules",
        f"certificates.{NAME}.acme.key_type": "the certificate's key",
        f"certificates.{NAME}.acme.renew_before": "renew this long before the certificate "
        "expires (e.g. `30d`); at most half of a certificate's lifetime is used, so a CA's "
        "short-lived certificates are not renewed the moment they arrive",
        f"certificates.{NAME}.acme.directory_ca": "a PEM file the directory's TLS chains to "
        "(a private CA); default: the system's trust store",
        f"certificates.{NAME}.acme.eab": "external account binding, when the CA requires "
        "one (ZeroSSL, Google, a private CA)",
        f"certificates.{NAME}.acme.eab.kid": "the key identifier the CA gave",
        f"certificates.{NAME}.acme.eab.hmac_key": "the base64url HMAC key the CA gave",
        "client_cas": "CA bundles by name (client certificates, server verification)",
        f"client_cas.{NAME}": "a PEM file of CA certificates",
        "crls": "certificate revocation lists by name",
        f"crls.{NAME}": "a PEM or DER CRL file",
        "frontends": "the listeners (at least one)",
        "frontends[].name": "the frontend's name (logs, metrics)",
        "frontends[].bind": "`host:port`, `:port` (all IPv4 addresses) or `[v6]:port`; "
        "the VIP's address can be bound before the node holds it",
        "frontends[].mode": "`http` or `tcp` (TLS passthrough)",
        "frontends[].default_backend": "where requests go when no rule chooses "
        "(required on http frontends; on tcp frontends unless `routes` is given)",
        "frontends[].maxconn": "concurrent client connections; more wait in the "
        "kernel's accept backlog",
        "frontends[].max_header_size": "one header line, bytes (over: 431; more than "
        "128 headers is also 431); http only",
        "frontends[].max_uri_length": "the request line, bytes (over: 414); http only",
        "frontends[].accept_proxy": "require a PROXY header (v1 or v2) from these sources",
        "frontends[].accept_proxy.trusted": "the sources (CIDR) that must send one",
        "frontends[].forwardfor": "`true`, or `{enabled, trusted}`: add "
        "X-Forwarded-For/-Proto/-Host; http only",
        "frontends[].forwardfor.enabled": "add the headers",
        "frontends[].forwardfor.trusted": "clients whose X-Forwarded-* values are "
        "appended to (from others they are replaced)",
        "frontends[].timeout": f"this frontend's {_T}",
        "frontends[].timeout.client": "as `defaults.timeout.client`",
        "frontends[].timeout.http_request": "as `defaults.timeout.http_request`",
        "frontends[].timeout.http_keep_alive": "as `defaults.timeout.http_keep_alive`",
        "frontends[].timeout.tunnel": "as `defaults.timeout.tunnel`",
        "frontends[].hello_timeout": "time for a PROXY header (`accept_proxy`) and, on "
        "tcp frontends, the TLS ClientHello to arrive",
        "frontends[].routes": "tcp only: backends by SNI, first match wins",
        "frontends[].routes[].sni": "a host name or `*.domain` (one label)",
        "frontends[].routes[].backend": "the backend for that name",
        "frontends[].tls": "terminate TLS (http only)",
        "frontends[].tls.certificates": "names from `certificates`, chosen by SNI; the "
        "first is the default",
        "frontends[].tls.policy": "`intermediate` (TLS 1.2 and 1.3, Mozilla's "
        "intermediate ciphers) or `modern` (TLS 1.3 only)",
        "frontends[].tls.handshake_timeout": "a handshake that takes longer is dropped",
        "frontends[].tls.ticket_rotation": "without bundles: new session-ticket keys "
        "this often (with bundles the cluster's key is used)",
        "frontends[].tls.alpn": "the protocols offered to clients, in the server's order "
        "of preference: `[h2, http/1.1]` serves HTTP/2 to clients that speak it",
        "frontends[].tls.client_auth": "ask for client certificates",
        "frontends[].tls.client_auth.ca": "a name from `client_cas`",
        "frontends[].tls.client_auth.crl": "a name from `crls`",
        "frontends[].tls.client_auth.verify": "`required` (refused in the handshake "
        "without one), `optional` (checked when given), `none`",
        "frontends[].tls.client_auth.forward_pem": "also send the client's PEM "
        "certificate to servers (X-SSL-Client-Cert)",
        "frontends[].http2": "HTTP/2 to clients (http only): settings advertised to "
        "them and the limits enforced",
        "frontends[].http2.max_concurrent_streams": "streams one client may have open "
        "at once (HAProxy: tune.h2.max-concurrent-streams)",
        "frontends[].http2.initial_window_size": "the per-stream receive window, bytes: "
        "request-body bytes buffered per stream before the client must wait",
        "frontends[].http2.header_table_size": "the HPACK dynamic table the client's "
        "headers may use, bytes",
        "frontends[].http2.max_header_list_size": "a request head, decoded, bytes "
        "(larger: the connection is closed)",
        "frontends[].http2.max_total_streams": "streams per connection; then GOAWAY and "
        "the client goes on with a new connection (HAProxy: tune.h2.fe.max-total-streams)",
        "frontends[].http2.cleartext": "plain frontends: also accept HTTP/2 with prior "
        "knowledge (h2c) next to HTTP/1.1",
        "frontends[].rules": "request rules (http only)",
        "frontends[].rules[].if": "when the rule applies (absent: always); the keys "
        "of one mapping must all hold",
        "frontends[].rules[].if.all": "every listed condition holds",
        "frontends[].rules[].if.any": "at least one listed condition holds",
        "frontends[].rules[].if.not": "the condition does not hold",
        "frontends[].rules[].if.path_beg": f"{_COND}: the path starts with it",
        "frontends[].rules[].if.path_end": f"{_COND}: the path ends with it",
        "frontends[].rules[].if.path_reg": f"{_COND}: a regular expression the path matches",
        "frontends[].rules[].if.host": f"{_COND}: the Host header (case-insensitive)",
        "frontends[].rules[].if.method": f"{_COND}: the request method",
        "frontends[].rules[].if.src": f"{_COND}: the client address is in this CIDR",
        "frontends[].rules[].if.sni": f"{_COND}: the TLS server name",
        "frontends[].rules[].if.client_cert": "true: a verified client certificate was "
        "presented in this session (resumption-safe); false: none",
        "frontends[].rules[].if.client_cert_subject": f"{_COND}: a regular expression "
        "the certificate's subject matches",
        "frontends[].rules[].if.client_cert_san": f"{_COND}: a regular expression one "
        "subject alternative name matches",
        "frontends[].rules[].if.client_cert_sha256": f"{_COND}: the certificate's "
        "SHA-256 fingerprint (64 hex digits, colons allowed)",
        "frontends[].rules[].redirect": "answer with a redirect",
        "frontends[].rules[].redirect.location": "the exact target (one of "
        "`location` and `prefix`)",
        "frontends[].rules[].redirect.prefix": "the target is this prefix plus the request's path",
        "frontends[].rules[].redirect.code": "301, 302, 303, 307 or 308",
        "frontends[].rules[].redirect.keep_query": "keep the query string (default: "
        "true with `prefix`, false with `location`)",
        "frontends[].rules[].deny": "answer with an error status (`true`: 403)",
        "frontends[].rules[].deny.status": "the status, 400-599",
        "frontends[].rules[].use_backend": "send the request to this backend",
        "frontends[].rules[].set_header": "set a request header (replacing any)",
        "frontends[].rules[].set_header.name": "header name",
        "frontends[].rules[].set_header.value": "its value (one line)",
        "frontends[].rules[].del_header": "remove a request header (its name)",
        "backends": "the server pools (at least one)",
        "backends[].name": "the backend's name",
        "backends[].mode": "`http`, or `tcp` for the backends of tcp frontends",
        "backends[].balance": "`roundrobin` (smooth weighted), `leastconn`, `source` "
        "(client IP, consistent hash), `uri` (path and query, consistent hash)",
        "backends[].retries": "retries after a failed connection, each to another "
        "server when one is up (default: `defaults.retries`)",
        "backends[].maxqueue": "requests waiting for a free server slot; beyond it: 503",
        "backends[].passive_fall": "mark a server down after this many connection "
        "failures in a row (0: off; needs `check` to bring it back)",
        "backends[].send_proxy": "send a PROXY header, `v1` or `v2`, on every server connection",
        "backends[].timeout": f"this backend's {_T}",
        "backends[].timeout.connect": "as `defaults.timeout.connect`",
        "backends[].timeout.server": "as `defaults.timeout.server`",
        "backends[].timeout.queue": "as `defaults.timeout.queue`",
        "backends[].tls": "connect to the servers over TLS",
        "backends[].tls.verify": "`required` (the server's certificate is checked) or `none`",
        "backends[].tls.ca": "a name from `client_cas` to verify servers with "
        "(default: the system's trust store)",
        "backends[].tls.sni": "the server name sent and verified (default: the server's host)",
        "backends[].tls.client_certificate": "a name from `certificates` to present",
        "backends[].check": "active health checks (absent: servers count as up)",
        "backends[].check.type": "`tcp` (connect), `http` (a request) or `ssl-hello` "
        "(a TLS ClientHello answered with a ServerHello)",
        "backends[].check.method": "http: the request method",
        "backends[].check.path": "http: the request path",
        "backends[].check.host": "http: the Host header (default: the server's address)",
        "backends[].check.expect": "http: the status, or a range like 200-399, that passes",
        "backends[].check.interval": "time between checks",
        "backends[].check.timeout": "a check that takes longer fails (default: min(1s, interval))",
        "backends[].check.rise": "passes in a row before a server is up",
        "backends[].check.fall": "failures in a row before a server is down",
        "backends[].servers": "the servers (at least one)",
        "backends[].servers[].name": "the server's name",
        "backends[].servers[].address": "`host:port`",
        "backends[].servers[].weight": "its share of requests",
        "backends[].servers[].backup": "used only while every primary server is down",
        "backends[].servers[].maxconn": "requests at once (0: unlimited); beyond it requests queue",
        "backends[].servers[].check": "false: never probed (always up)",
    },
    "node.yaml": {
        "name": "this node's name, unique in the cluster",
        "priority": "who gets a vacant seat: the highest priority among healthy nodes",
        "interface": "the network interface the VIP goes on",
        "data_dir": "state kept across restarts (bundle cache, failsafe promises)",
        "log_format": "`text` or `json` (`--log-format` overrides it)",
        "workers": "data-plane worker processes: `0`, the node process serves itself; "
        "`N` or `auto` (one per usable CPU), N workers serve on sockets the node process "
        "binds and keeps, a spare replaces a dead or stuck one at once, SIGHUP starts a new "
        "generation (see [operations](operations.md#worker-processes))",
        "access_log": "the access log: one line per request (`floatgate run "
        "--no-access-log` turns it off)",
        "access_log.target": "`stderr`, or an absolute file path: appended to, and "
        "reopened on SIGHUP (after logrotate moved it)",
        "access_log.format": "`text` (HAProxy-style timers) or `json`",
        "access_log.flush_interval": "how long a line may wait in the buffer before it is written",
        "access_log.max_pending_kib": "lines buffered but unwritten; past this "
        "(a full disk, a slow pipe) lines are dropped and counted, the proxy never waits",
        "secret_file": "the cluster secret (`floatgate secret generate`): with it the "
        "node follows the [bundles](bundles.md) pushed to etcd",
        "etcd": "cluster mode: the etcd cluster to elect through",
        "etcd.endpoints": "`http://` or `https://` URLs of the etcd members",
        "etcd.tls": "TLS to etcd",
        "etcd.tls.ca": "the CA that signs etcd's certificates",
        "etcd.tls.cert": "client certificate (with `key`)",
        "etcd.tls.key": "its key",
        "etcd.user": "etcd user name (with `password_file`)",
        "etcd.password_file": "file holding that user's password",
        "admin": "the admin listener",
        "admin.listen": '`host:port`; a bare port (`9100`, `":9100"`) listens on '
        "127.0.0.1 only; in a cluster give the node's own address (other nodes and the "
        "CLI use it)",
        "admin.token_file": "the admin token (one line); without it every write is refused",
        "admin.tls": "serve the admin API over HTTPS only",
        "admin.tls.cert": "PEM certificate (with intermediates); also this node's "
        "client certificate towards other nodes",
        "admin.tls.key": "its key",
        "admin.tls.ca": "the CA that signs the nodes' and operators' certificates",
        "admin.tls.verify": "client certificates: `none`, `optional` or `required` "
        "(both need `ca`)",
    },
}

# Defaults that depend on another setting: shown as that setting, not as a number.
DEFAULTS_SHOWN = {
    "cluster.yaml": {
        **{f"frontends[].timeout.{k}": f"`defaults.timeout.{k}`"
           for k in ("client", "http_request", "http_keep_alive", "tunnel")},
        **{f"backends[].timeout.{k}": f"`defaults.timeout.{k}`"
           for k in ("connect", "server", "queue")},
        "backends[].retries": "`defaults.retries`",
        "backends[].check.timeout": "min(1s, interval)",
        "frontends[].rules[].redirect.keep_query": "true with `prefix`",
    },
    "node.yaml": {"access_log.format": "`log_format`"},
}  # fmt: skip


@dataclass(frozen=True)
class Row:
    path: str
    kind: str
    default: str  # "" when none
    required: bool
    meaning: str


def example(name: str) -> str:
    """The shipped example with every key (``cluster.yaml`` or ``node.yaml``)."""
    return resources.files("node.config").joinpath("examples", name).read_text("utf-8")


def keys_seen(file: str) -> KeysSeen:
    """What the reader of ``file`` asks while reading its every-key example."""
    seen = KeysSeen()
    errors: list[str] = []
    document: Any = yaml.safe_load(example(file))
    reader = Reader(f"examples/{file}", errors, seen)
    if file == "cluster.yaml":
        _Parser(reader).document(document)
    else:
        parse_node_with(reader, document)
    if errors:  # the example must stay valid, or keys go unvisited
        raise ValueError("\n".join(errors))
    return seen


def normalize(path: str, named: set[str]) -> str:
    """``frontends[2].rules[0].if.any[1].host`` -> ``frontends[].rules[].if.host``;
    ``certificates.web.cert`` -> ``certificates.<name>.cert``."""
    path = re.sub(r"\[\d+\]", "[]", path)
    while True:  # nested conditions are conditions
        shorter = re.sub(r"\.if\.(?:all\[\]|any\[\]|not)\.", ".if.", path)
        if shorter == path:
            break
        path = shorter
    for base in named:
        if path.startswith(base + "."):
            rest = path[len(base) + 1 :].split(".", 1)
            path = ".".join([base, NAME, *rest[1:]])
    return path


def rows(file: str) -> list[Row]:
    """Every key the reader of ``file`` accepts, with what is known of it."""
    seen = keys_seen(file)
    keys: set[str] = set()
    for mapping, allowed in seen.accepted.items():
        keys.update(
            normalize(f"{mapping}.{key}" if mapping else key, seen.named) for key in allowed
        )
    keys.update(f"{base}.{NAME}" for base in seen.named)
    facts: dict[str, KeyFact] = {}
    for path, seen_fact in seen.facts.items():
        facts.setdefault(normalize(path, seen.named), seen_fact)
    # required where every mapping that accepts the key requires it (a tcp frontend
    # does not require what an http one does)
    instances: dict[str, list[bool]] = {}
    for mapping, allowed in seen.accepted.items():
        for key in allowed:
            raw = f"{mapping}.{key}" if mapping else key
            instances.setdefault(normalize(raw, seen.named), []).append(raw in seen.required)
    required = {path for path, flags in instances.items() if all(flags)}
    mappings = {normalize(path, seen.named) for path in seen.accepted}
    meanings = MEANINGS[file]
    shown = DEFAULTS_SHOWN.get(file, {})
    result = []
    for path in sorted(keys, key=_order(file)):
        fact = facts.get(path)
        if fact is not None:
            kind = fact.kind
        elif path + "[]" in mappings:
            kind = "list of mappings"
        elif path in mappings or path in seen.named:
            kind = "mapping"
        else:
            kind = ""
        default = shown.get(path) or (f"`{fact.default}`" if fact and fact.default else "")
        result.append(Row(path, kind, default, path in required, meanings.get(path, "")))
    return result


def unexplained(file: str) -> tuple[list[str], list[str]]:
    """(keys the reader accepts without a meaning here, meanings of no accepted key)."""
    accepted = {row.path for row in rows(file)}
    meanings = set(MEANINGS[file])
    return sorted(accepted - meanings), sorted(meanings - accepted)


def _section_of(file: str, path: str) -> int:
    best, index = -1, 0
    for position, section in enumerate(SECTIONS):
        if section.file != file:
            continue
        prefixes = ("certificates", "client_cas", "crls") if section.path == "certificates" else (
            section.path,)  # fmt: skip
        for prefix in prefixes:
            inside = prefix == "" or path == prefix or path.startswith(prefix + ".")
            if inside and len(prefix) >= best:
                best, index = len(prefix), position
    return index


def _order(file: str) -> Any:
    return lambda path: (_section_of(file, path), path.count("."), path)


def render() -> str:
    """docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `floatgate config-reference` from the configuration readers;",
        "     edit node/config/reference.py, not this file. -->",
        "",
        "floatgate reads two YAML files: **cluster.yaml**, the same on every node, and",
        "**node.yaml**, this machine's own settings. Unknown keys are errors; every error",
        "names the file and the key path. `floatgate check cluster.yaml [--node node.yaml]",
        "[--json]` validates both exactly as `floatgate run` does, and refuses what cannot",
        "work.",
        "",
        "Durations carry a unit: `500ms`, `2s`, `1m`, `1h` (a bare number is an error).",
        "Addresses are `host:port`, `:port` (all IPv4 addresses) or `[v6]:port`. A path",
        "like `frontends[].tls.policy` means the `policy` key of the `tls` mapping of each",
        "item of the `frontends` list. Every key, each with a working value, is in",
        "[node/config/examples/](../node/config/examples/).",
        "",
    ]
    for file in ("cluster.yaml", "node.yaml"):
        out += [f"## {file}", ""]
        by_section: dict[int, list[Row]] = {}
        for row in rows(file):
            by_section.setdefault(_section_of(file, row.path), []).append(row)
        for position, section in enumerate(SECTIONS):
            if section.file != file or position not in by_section:
                continue
            out += [f"### {section.title}", "", section.about, "",
                    "| key | value | default | meaning |", "|---|---|---|---|"]  # fmt: skip
            for row in by_section[position]:
                default = (
                    "**required**" if row.required else row.default.replace("`unset`", "unset")
                )
                kind = row.kind.replace("|", "\\|")
                out.append(f"| `{row.path}` | {kind} | {default} | {row.meaning} |")
            out.append("")
    return "\n".join(out)
