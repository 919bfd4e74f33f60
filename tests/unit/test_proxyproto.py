"""PROXY protocol v1/v2 codec."""

from __future__ import annotations

import pytest

from node.proxy.wire.proxyproto import (
    ProxyHeaderError,
    decode,
    encode_v1,
    encode_v2,
    local_header,
    needed,
)


@pytest.mark.parametrize(
    ("src", "dst"),
    [(("203.0.113.7", 5555), ("10.0.0.1", 443)), (("2001:db8::1", 40000), ("2001:db8::2", 8443))],
)
@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
def test_round_trip(encode: object, src: tuple[str, int], dst: tuple[str, int]) -> None:
    header = encode(src, dst)  # type: ignore[operator]
    assert needed(header) == len(header)
    assert needed(header + b"GET / HTTP/1.1\r\n") == len(header)
    parsed = decode(header)
    assert (parsed.src, parsed.dst) == (src, dst)


def test_v1_bytes_and_incremental_needed() -> None:
    header = encode_v1(("1.2.3.4", 1), ("5.6.7.8", 2))
    assert header == b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    for cut in range(1, len(header)):
        assert needed(header[:cut]) in (0, len(header))
    v2 = encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2))
    assert all(needed(v2[:cut]) == 0 for cut in range(1, 16))


def test_local_and_unknown_name_no_client() -> None:
    assert decode(local_header("v1")).src is None
    assert decode(local_header("v2")).src is None


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"PROXY TCP4 1.2.3.4\r\n", b"PROXY TCP4 ::1 ::1 1 2\r\n",
     b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", b"PROXY " + b"x" * 200],
)  # fmt: skip
def test_bad_headers(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        want = needed(data)
        decode(data[:want] if want else data)
