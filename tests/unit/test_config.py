"""Config validation: every error named with file and key path; valid files parse."""

from __future__ import annotations

import os

import pytest

from node.config import ConfigError, parse_cluster, parse_node
from node.config.cluster import etcd_requirements
from node.config.reader import parse_duration, parse_host_port

VALID = """
cluster: edge
election: {lease_ttl: 2s, nopreempt: true, min_healthy_backends: 1}
vip: {address: 10.0.0.50/24, garp: {count: 3, interval: 200ms}}
defaults: {timeout: {connect: 1s, server: 10s}, retries: 1}
frontends:
  - name: web
    bind: ":80"
    default_backend: ghost
    forwardfor: {trusted: [10.0.0.0/8]}
    timeout: {client: 5s}
backends:
  - name: ghost
    balance: leastconn
    check: {type: http, path: /, interval: 2s, rise: 2, fall: 3, expect: 200-299}
    servers:
      - {name: ghost1, address: "10.0.1.21:2368", weight: 3, maxconn: 10}
      - {name: ghost2, address: "10.0.1.22:2368", backup: true}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_cluster(text, "c.yaml")
    return info.value.errors


def test_valid_config_parses_with_defaults_applied() -> None:
    config = parse_cluster(VALID)
    frontend, backend = config.frontends[0], config.backends[0]
    assert str(frontend.bind) == "0.0.0.0:80"
    assert frontend.timeouts.client == 5.0 and frontend.timeouts.connect == 1.0
    assert backend.timeouts.server == 10.0 and backend.retries == 1
    assert backend.check is not None and backend.check.expect_max == 299
    assert [s.weight for s in backend.servers] == [3, 1]
    assert backend.servers[1].backup
    assert config.vip is not None and str(config.vip.address) == "10.0.0.50/24"
    assert config.election.lease_ttl == 2.0
    assert config.election.etcd_loss == "release" and config.vip.arp_probe == 0.05


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("bind: \":80\"", "bind: \":99999\""), "c.yaml: frontends[0].bind: ':99999' is not"),
        (("default_backend: ghost", "default_backend: gone"),
         "c.yaml: frontends[0].default_backend: backend 'gone' is not defined"),
        (("balance: leastconn", "balance: random"), "c.yaml: backends[0].balance: 'random'"),
        (("interval: 2s", "interval: 2"), "c.yaml: backends[0].check.interval: 2 is not a"),
        (("name: ghost2", "name: ghost1"), "c.yaml: backends[0].servers[1].name: duplicate name"),
        (("weight: 3", "weight: 0"), "c.yaml: backends[0].servers[0].weight: 0 is out of range"),
        (("expect: 200-299", "expect: 299-200"), "c.yaml: backends[0].check.expect: '299-200'"),
        (("10.0.0.0/8", "10.0.0.0/33"), "c.yaml: frontends[0].forwardfor.trusted[0]:"),
        (("lease_ttl: 2s", "lease_ttl: 100ms"), "c.yaml: election.lease_ttl: '100ms' is too short"),
        # the VIP's kernel lifetime is whole seconds below the deadline: TTL 1s left 0 s,
        # so a node won the lease and never added the VIP; the eBPF fence serves 1s
        (("lease_ttl: 2s", "lease_ttl: 1s"), None),
        (("lease_ttl: 2s", "lease_ttl: 500ms"), "c.yaml: election.lease_ttl: '500ms' is too short"),
        (("10.0.0.50/24", "10.0.0.50/24, fence: wall"), "c.yaml: vip.fence: 'wall'"),
        (("lease_ttl: 2s", "lease_ttl: 2500ms"),
         "c.yaml: election.lease_ttl: '2500ms' is not a whole number of seconds"),
        (("10.0.0.50/24", "10.0.0.500/24"), "c.yaml: vip.address:"),
        (("lease_ttl: 2s", "lease_ttl: 2s, etcd_loss: hope"),
         "c.yaml: election.etcd_loss: 'hope' is not one of release, failsafe"),
        (("10.0.0.50/24", "10.0.0.50/24, arp_probe: 2s"), "c.yaml: vip.arp_probe: at most 1s"),
        (("retries: 1", "retries: 1, bogus: 2"), "c.yaml: defaults.bogus: unknown key"),
        # a timeout set where nothing reads it is refused, with where it belongs (such
        # keys used to be accepted and ignored)
        (("timeout: {client: 5s}", "timeout: {client: 5s, server: 2s}"),
         "c.yaml: frontends[0].timeout.server: only backends read this timeout: set it "
         "under backends[].timeout or defaults.timeout"),
        (("balance: leastconn", "balance: leastconn\n    timeout: {tunnel: 1h}"),
         "c.yaml: backends[0].timeout.tunnel: only frontends read this timeout"),
        (("timeout: {client: 5s}", "timeout: {client: 5s, bogus: 1s}"),
         "c.yaml: frontends[0].timeout.bogus: unknown key"),
        (("mode: http", "mode: http"), None),
        (("forwardfor: {", "http2: {max_concurrent_streams: 0}\n    forwardfor: {"),
         "c.yaml: frontends[0].http2.max_concurrent_streams: 0 is out of range"),
        (("forwardfor: {", "http2: {window: 1}\n    forwardfor: {"),
         "c.yaml: frontends[0].http2.window: unknown key"),
        (("forwardfor: {", "tls: {certificates: [a], alpn: [h3]}\n    forwardfor: {"),
         "c.yaml: frontends[0].tls.alpn[0]: 'h3' is not one of h2, http/1.1"),
        (("forwardfor: {", "tls: {certificates: [a], alpn: [h2, h2]}\n    forwardfor: {"),
         "c.yaml: frontends[0].tls.alpn[1]: 'h2' is listed twice"),
        (("forwardfor: {", "tls: {certificates: [a], alpn: []}\n    forwardfor: {"),
         "c.yaml: frontends[0].tls.alpn: needs at least one protocol"),
        (("forwardfor: {", "tls: {certificates: [a]}\n    http2: {cleartext: true}\n"
          "    forwardfor: {"),
         "c.yaml: frontends[0].http2.cleartext: is for plain frontends"),
    ],
)  # fmt: skip
def test_each_error_names_file_and_path(change: tuple[str, str], expected: str | None) -> None:
    text = VALID.replace(*change)
    if expected is None:
        parse_cluster(text)
        return
    errors = _errors(text)
    assert any(e.startswith(expected) for e in errors), errors


def test_ttl_1s_needs_the_bpf_fence() -> None:
    """With the address lifetime as the only fence, TTL 1 s would arm 0 s: refused, with
    what to do; the eBPF fence (the default) serves it."""
    text = VALID.replace("lease_ttl: 2s", "lease_ttl: 1s")
    assert parse_cluster(text).vip.fence == "bpf"  # type: ignore[union-attr]
    errors = _errors(text.replace("10.0.0.50/24,", "10.0.0.50/24, fence: lifetime,"))
    assert any(e.startswith("c.yaml: election.lease_ttl: 1s needs vip.fence: bpf") for e in errors)
    lifetime = text.replace("lease_ttl: 1s", "lease_ttl: 2s").replace(
        "10.0.0.50/24,", "10.0.0.50/24, fence: lifetime,"
    )
    assert parse_cluster(lifetime).vip.fence == "lifetime"  # type: ignore[union-attr]


def test_a_1s_lease_names_the_etcd_setting_it_needs() -> None:
    """floatgate check cannot see etcd's flags: for 1 s leases it says which election
    timeout etcd needs (ceil(1.5 x it) <= 1 s) and the Ansible profile that has it."""
    one = etcd_requirements(parse_cluster(VALID.replace("lease_ttl: 2s", "lease_ttl: 1s")))
    assert len(one) == 1 and "--election-timeout of at most 666 ms" in one[0]
    assert "etcd_profile: lan" in one[0]
    assert etcd_requirements(parse_cluster(VALID)) == []  # etcd's defaults grant 2 s


def test_all_errors_reported_at_once() -> None:
    text = VALID.replace("weight: 3", "weight: -1").replace("balance: leastconn", "balance: x")
    assert len(_errors(text + "extra_top: 1\n")) == 3


def test_duplicate_frontend_bind_and_missing_required() -> None:
    text = """
cluster: c
frontends:
  - {name: a, bind: ":80", default_backend: b}
  - {name: b, bind: ":80", default_backend: b}
  - {bind: ":81"}
backends:
  - {name: b, servers: [{name: s, address: "127.0.0.1:1"}]}
"""
    errors = _errors(text)
    assert "c.yaml: frontends[1].bind: 0.0.0.0:80 is already bound by frontend 'a'" in errors
    assert "c.yaml: frontends[2].name: is required" in errors
    assert "c.yaml: frontends[2].default_backend: is required" in errors


def test_not_yaml_and_not_mapping() -> None:
    assert _errors("a: [b")[0].startswith("c.yaml: not valid YAML")
    assert _errors("- 1\n") == ["c.yaml: must be a mapping, got a list"]


def test_tcp_mode_rules() -> None:
    text = """
cluster: c
frontends:
  - {name: pass, bind: ":8443", mode: tcp, routes: [{sni: "*.app.test", backend: tls}],
     forwardfor: true}
  - {name: mixed, bind: ":8444", mode: tcp, default_backend: web}
  - {name: web, bind: ":80", default_backend: tls}
  - {name: lonely, bind: ":8445", mode: tcp}
  - {name: badname, bind: ":8446", mode: tcp, routes: [{sni: "a b", backend: tls}]}
backends:
  - name: tls
    mode: tcp
    check: {type: ssl-hello}
    servers: [{name: s, address: "127.0.0.1:1"}]
  - {name: web, servers: [{name: s, address: "127.0.0.1:2"}]}
"""
    errors = _errors(text)
    assert any(e.startswith("c.yaml: frontends[0].forwardfor: unknown key") for e in errors)
    mixed = "backend 'web' is mode http, frontend 'mixed' is mode tcp"
    assert f"c.yaml: frontends[1].default_backend: {mixed}" in errors
    web = "backend 'tls' is mode tcp, frontend 'web' is mode http"
    assert f"c.yaml: frontends[2].default_backend: {web}" in errors
    assert "c.yaml: frontends[3]: a tcp frontend needs routes or a default_backend" in errors
    assert any(
        e.startswith("c.yaml: frontends[4].routes[0].sni: 'a b' is not a host name") for e in errors
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("2s", 2.0), ("1.5s", 1.5), ("1m", 60.0), ("1h", 3600.0), ("30d", 2592000.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["2", "2 s", "-1s", "s", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_host_ports() -> None:
    assert str(parse_host_port(":443")) == "0.0.0.0:443"
    assert str(parse_host_port("[::1]:8080")) == "[::1]:8080"
    assert parse_host_port("backend.local:80").host == "backend.local"
    for bad in ("x:y", "1.2.3.4", "1.2.3.4:0", "::1:80", "a b:1"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


def test_node_file() -> None:
    node = parse_node(
        "name: n1\netcd: {endpoints: ['https://10.0.0.5:2379'], tls: {ca: /ca.pem}}\n"
        "admin: {listen: '10.0.0.11:9100', token_file: /t}\npriority: 50\n"
    )
    assert node.name == "n1" and node.priority == 50
    assert node.etcd is not None and node.etcd.tls is not None
    with pytest.raises(ConfigError) as info:
        parse_node("name: n1\netcd: {endpoints: ['10.0.0.5:2379']}\nfoo: 1\n", "n.yaml")
    assert "n.yaml: etcd.endpoints[0]: '10.0.0.5:2379' must be an http:// or https:// URL" in (
        info.value.errors
    )
    assert any(e.startswith("n.yaml: foo: unknown key") for e in info.value.errors)


def test_workers_count_auto_and_what_is_refused() -> None:
    assert parse_node("name: n1\n").workers == 0  # the node process serves itself
    assert parse_node("name: n1\nworkers: 3\n").workers == 3
    assert parse_node("name: n1\nworkers: auto\n").workers == len(os.sched_getaffinity(0))
    for bad, message in (
        ("-1", "n.yaml: workers: -1 is out of range (0-64, or auto)"),
        ("65", "n.yaml: workers: 65 is out of range (0-64, or auto)"),
        ("two", "n.yaml: workers: must be auto or an integer, got 'two'"),
        ("true", "n.yaml: workers: must be auto or an integer, got True"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_node(f"name: n1\nworkers: {bad}\n", "n.yaml")
        assert info.value.errors == [message]
    clustered = "name: n1\nworkers: 2\netcd: {endpoints: ['http://10.0.0.5:2379']}\n"
    assert parse_node(clustered).workers == 2  # a cluster node serves with workers too


def test_passive_fall_needs_a_check() -> None:
    check_line = (
        "    check: {type: http, path: /, interval: 2s, rise: 2, fall: 3, expect: 200-299}\n"
    )
    text = VALID.replace(check_line, "    passive_fall: 3\n")
    expected = "c.yaml: backends[0].passive_fall: needs a check to bring servers back up"
    assert expected in _errors(text)
