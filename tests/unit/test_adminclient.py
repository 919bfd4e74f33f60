"""The admin client's pure decisions: admin addresses (old ``host:port`` payloads are
plain HTTP), loopback, when the token may travel, and the server's matching refusal."""

from __future__ import annotations

import pytest

from node.admin.api import plain_token_refused
from node.admin.client import (
    AdminClientError,
    AdminTarget,
    advertised_address,
    is_loopback,
    parse_target,
    refusal,
    token_may_travel,
)
from node.config.model import AdminConfig, AdminTls, HostPort


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("10.0.0.11:9100", AdminTarget("http", "10.0.0.11", 9100)),  # what older nodes advertise
        ("http://10.0.0.11:9100", AdminTarget("http", "10.0.0.11", 9100)),
        ("https://10.0.0.11:9100/", AdminTarget("https", "10.0.0.11", 9100)),
        ("https://[2001:db8::1]:9100", AdminTarget("https", "2001:db8::1", 9100)),
        ("node1.example:9100", AdminTarget("http", "node1.example", 9100)),
    ],
)
def test_parse_target(address: str, target: AdminTarget) -> None:
    assert parse_target(address) == target


@pytest.mark.parametrize("address", ["10.0.0.11", "https://10.0.0.11", ":9100", "h:0", "h:x",
                                     "2001:db8::1:9100", "h:70000"])  # fmt: skip
def test_parse_target_refuses_what_is_not_an_address(address: str) -> None:
    with pytest.raises(AdminClientError, match="is not an admin address"):
        parse_target(address)


def test_urls_and_what_a_node_advertises() -> None:
    target = AdminTarget("https", "2001:db8::1", 9100)
    assert target.url("/status") == "https://[2001:db8::1]:9100/status"
    plain = AdminConfig(HostPort("10.0.0.11", 9100))
    assert advertised_address(plain) == "10.0.0.11:9100"  # unchanged for older peers
    secure = AdminConfig(HostPort("10.0.0.11", 9100), tls=AdminTls("c.pem", "k.pem"))
    assert advertised_address(secure) == "https://10.0.0.11:9100"
    assert parse_target(advertised_address(secure)).scheme == "https"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
     ("::ffff:127.0.0.1", True), ("localhost", True), ("LOCALHOST.", True),
     ("10.0.0.11", False), ("0.0.0.0", False), ("::", False), ("::ffff:10.0.0.1", False),
     ("node1.example", False), ("", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_token_travels_only_over_https_or_to_loopback() -> None:
    assert token_may_travel(AdminTarget("https", "10.0.0.11", 9100))
    assert token_may_travel(AdminTarget("http", "127.0.0.1", 9100))
    assert not token_may_travel(AdminTarget("http", "10.0.0.11", 9100))
    assert not token_may_travel(AdminTarget("http", "node1.example", 9100))
    message = refusal(AdminTarget("http", "10.0.0.11", 9100))
    assert "10.0.0.11:9100" in message and "configure admin.tls" in message


def test_the_server_refuses_a_credential_in_clear_from_another_host() -> None:
    bearer = "Bearer x"
    assert plain_token_refused(False, "10.0.0.12", bearer)
    assert plain_token_refused(False, None, bearer)  # unknown peer: not loopback
    assert plain_token_refused(False, "::ffff:10.0.0.12", bearer)
    assert not plain_token_refused(True, "10.0.0.12", bearer)  # over TLS
    assert not plain_token_refused(False, "127.0.0.1", bearer)
    assert not plain_token_refused(False, "::1", bearer)
    assert not plain_token_refused(False, "10.0.0.12", None)  # reading needs no token
