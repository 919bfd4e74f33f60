"""ClientHello parsing with real ClientHellos from OpenSSL (ssl.MemoryBIO)."""

from __future__ import annotations

import ssl
import struct

import pytest

from node.proxy.wire.clienthello import (
    MalformedHello,
    NotTls,
    build_client_hello,
    is_server_hello,
    parse_client_hello,
)


def openssl_hello(server_name: str | None, alpn: list[str] | None = None) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_sni_and_alpn_from_a_real_hello() -> None:
    data = openssl_hello("App.Example.COM", ["h2", "http/1.1"])
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.sni == "app.example.com"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.size == len(data)


def test_no_sni() -> None:
    hello = parse_client_hello(openssl_hello(None))
    assert hello is not None and hello.sni is None


def test_split_over_segments_is_incomplete_until_whole() -> None:
    data = openssl_hello("a.test")
    for cut in (1, 3, 5, 6, 40, len(data) - 1):
        assert parse_client_hello(data[:cut]) is None
    assert parse_client_hello(data) is not None


def test_split_over_several_records() -> None:
    data = openssl_hello("records.test")
    handshake = data[5:]
    first, second = handshake[:50], handshake[50:]
    recorded = b"".join(b"\x16\x03\x01" + struct.pack("!H", len(p)) + p for p in (first, second))
    hello = parse_client_hello(recorded)
    assert hello is not None and hello.sni == "records.test"
    assert parse_client_hello(recorded[: 5 + 50 + 3]) is None


@pytest.mark.parametrize(
    "data", [b"GET / HTTP/1.1\r\n", b"\x00\x01\x02", b"SSH-2.0-x", b"\x16\x02\x00"]
)
def test_not_tls(data: bytes) -> None:
    with pytest.raises(NotTls):
        parse_client_hello(data)


def test_malformed_and_oversized() -> None:
    with pytest.raises(MalformedHello):  # a ServerHello where a ClientHello must be
        parse_client_hello(b"\x16\x03\x03\x00\x06\x02\x00\x00\x02\x03\x03")
    with pytest.raises(MalformedHello):  # declared 16 MiB hello
        parse_client_hello(b"\x16\x03\x01\x00\x08\x01\xff\xff\xff" + b"\x00" * 4)
    truncated = bytearray(openssl_hello("t.test"))
    truncated[3:5] = struct.pack("!H", 60)  # record shorter than the hello inside it
    truncated[6:9] = (56).to_bytes(3, "big")
    with pytest.raises(MalformedHello):
        parse_client_hello(bytes(truncated[:65]))


def test_built_hello_round_trips_and_server_hello_detection() -> None:
    hello = parse_client_hello(build_client_hello("check.test"))
    assert hello is not None and hello.sni == "check.test"
    assert is_server_hello(b"\x16\x03\x03\x00\x5a\x02")
    assert not is_server_hello(b"\x15\x03\x03\x00\x02\x02\x28")  # an alert
