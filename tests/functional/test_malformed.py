"""Malformed and smuggling requests, as exact bytes, against a recording raw backend.

Includes every case of the shared http-desync-guardian corpus (../shared/corpus): Severe ->
400, client connection closed, nothing forwarded; Ambiguous -> 400 with nothing
forwarded, or one request forwarded and both connections closed; Compliant and
Acceptable -> forwarded (or, for Acceptable, refused by strict parsing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, cluster_yaml, free_port
from tests.functional.rawhttp import RawReply, RecordingBackend, raw_exchange

CORPUS = REPO.parent / "shared" / "corpus" / "http-desync-guardian"


def _corpus_cases() -> list[Any]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()) or []:
            cases.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return cases


def _request_bytes(case: dict[str, Any]) -> bytes:
    line = f"{case['method']} {case['uri']} {case['version']}".rstrip(" ")
    lines = [line.encode("utf-8")]
    names = {str(h["name"]).strip().lower() for h in case.get("headers") or []}
    if "host" not in names:
        lines.append(b"Host: corpus.test")
    for header in case.get("headers") or []:
        lines.append(f"{header['name']}:{_value(header['value'])}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + _body(case)


def _body(case: dict[str, Any]) -> bytes:
    """The corpus has headers only; complete the body its framing declares, so a
    forwarded request is whole (chunked wins, as a parser that accepts both would)."""
    headers = [(str(h["name"]).lower(), str(h["value"]).strip()) for h in case.get("headers") or []]
    if any(n == "transfer-encoding" and "chunked" in v.lower() for n, v in headers):
        return b"4\r\nbody\r\n0\r\n\r\n"
    for name, value in headers:
        if name == "content-length" and value.isdigit() and int(value) <= 8 << 20:
            return b"b" * int(value)
    return b""


def _strict_refusal(case: dict[str, Any]) -> bool:
    """Compliant cases the C parser (llhttp, strict) refuses, deliberately accepted:
    transfer codings besides a lone chunked (501/400, RFC 9112 section 6.1), and request
    targets that are empty or not ASCII (HAProxy refuses those too)."""
    uri = str(case["uri"])
    te = [str(h["value"]).strip().lower() for h in case.get("headers") or []
          if str(h["name"]).lower() == "transfer-encoding"]  # fmt: skip
    return bool(te and te != ["chunked"]) or not uri or not uri.isascii()


def _value(value: Any) -> str:
    text = str(value)
    return text if text.startswith((" ", "\t")) else f" {text}"


@pytest.fixture
async def edge(proxy: Any) -> AsyncIterator[tuple[int, RecordingBackend]]:
    backend = RecordingBackend()
    await backend.start()
    port = free_port()
    await proxy(cluster_yaml(port, [f"127.0.0.1:{backend.port}"],
                             frontend_extra="    timeout: {client: 1s}"))  # fmt: skip
    yield port, backend
    await backend.stop()


async def _exchange(port: int, data: bytes, head: bool = False) -> RawReply | None:
    """The reply, or None if the proxy closed without answering."""
    try:
        return await raw_exchange(port, data, timeout=3.0, head_request=head)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
@pytest.mark.parametrize("case", _corpus_cases())
async def test_desync_corpus(case: dict[str, Any], edge: tuple[int, RecordingBackend]) -> None:
    port, backend = edge
    tier = case["expected"]["tier"]
    reply = await _exchange(port, _request_bytes(case), head=case["method"] == "HEAD")
    await asyncio.sleep(0.05)
    if tier == "Severe":
        assert reply is not None and reply.status == 400, reply
        assert reply.closed
        assert backend.received == b""
    elif tier == "Ambiguous":
        if reply is not None and reply.status == 400:
            assert backend.received == b""
        else:
            # Forwarded: at most one request reached the server, and neither side's
            # connection survives it.
            assert backend.request_count() <= 1
            assert reply is None or reply.closed
            await asyncio.sleep(0.3)
            assert all(backend.closed)
    elif tier == "Compliant":
        assert reply is not None, "no answer"
        if reply.status in (400, 501) and _strict_refusal(case):
            assert backend.received == b""
        else:
            assert reply.status == 200, reply
            assert backend.request_count() == 1
    else:  # Acceptable: forward, or a strict refusal with nothing forwarded
        assert reply is not None
        if reply.status == 400:
            assert backend.received == b""
        else:
            assert reply.status == 200 and backend.request_count() == 1


MALFORMED = {
    "both CL and TE": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "duplicate CL": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "invalid CL": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +4\r\n\r\nabcd",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: h\n\n",
    "bad chunk size": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk size overflow": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    "TE not chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    "space before colon": b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 0\r\n\r\n",
    "bad request line": b"GET /\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "NUL in header": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_malformed_is_400_and_nothing_forwarded(
    name: str, edge: tuple[int, RecordingBackend]
) -> None:
    port, backend = edge
    reply = await _exchange(port, MALFORMED[name])
    assert reply is not None and reply.status == 400
    assert reply.closed
    assert b"Traceback" not in reply.raw
    await asyncio.sleep(0.05)
    assert backend.received == b""


async def test_uri_too_long_is_414(edge: tuple[int, RecordingBackend]) -> None:
    port, backend = edge
    reply = await _exchange(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert reply is not None and reply.status == 414
    assert backend.received == b""


@pytest.mark.parametrize("kind", ["one huge header", "too many headers"])
async def test_header_section_too_large_is_431(
    kind: str, edge: tuple[int, RecordingBackend]
) -> None:
    port, backend = edge
    if kind == "one huge header":
        extra = b"X-Big: " + b"a" * 20000 + b"\r\n"
    else:
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
    reply = await _exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n" + extra + b"\r\n")
    assert reply is not None and reply.status == 431
    assert backend.received == b""


def test_corpus_is_complete() -> None:
    """Guard against the corpus silently disappearing from the suite."""
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    assert len(_corpus_cases()) >= 150
    assert Path(CORPUS / "severe.yaml").is_file()
