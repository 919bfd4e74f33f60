"""The access log of a real `floatgate run` process: written off the event loop to
stderr or a file, HAProxy-style text or JSON, reopened on SIGHUP (logrotate), and a
full disk or a reader that stops reading costs counted lines, never a stalled proxy."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, FloatgateProcess, cluster_yaml, free_port
from tests.functional.test_observability import _scrape

_TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO floatgate\.access: 127\.0\.0\.1 web app/s0 "
    r"\d+/\d+/\d+/\d+/\d+ 200 \d+ retries=0 - \"GET (/\S*) HTTP/1\.1\"$"
)


def _get(port: int, path: str, count: int = 1) -> None:
    """``count`` keep-alive GETs on one connection; each must be answered 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(count):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            while len(rest) < length:
                rest += s.recv(65536)


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def _lines(path: Path, wanted: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= wanted or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.fixture
async def logged(
    tmp_path: Path, backends: Any, floatgate_process: Callable[..., FloatgateProcess]
) -> Callable[..., Any]:
    """Start floatgate with node.yaml's ``access_log`` set to ``settings``; returns
    (frontend port, admin port, process)."""
    backend = await backends("a")

    async def start(settings: str) -> tuple[int, int, FloatgateProcess]:
        port, admin = free_port(), free_port()
        node = tmp_path / "node.yaml"
        node.write_text(f'name: n1\nadmin: {{listen: "127.0.0.1:{admin}"}}\n{settings}\n')
        process = floatgate_process(
            cluster_yaml(port, [backend.address]), run_args=("--node", str(node))
        )
        await asyncio.to_thread(process.wait_listening, port)
        await asyncio.to_thread(process.wait_listening, admin)
        return port, admin, process

    return start


async def test_lines_go_to_the_file_and_follow_it_after_logrotate(
    logged: Callable[..., Any], tmp_path: Path
) -> None:
    target = tmp_path / "access.log"
    port, admin, process = await logged(f"access_log: {{target: {target}}}")
    await asyncio.to_thread(_get, port, "/first", 3)
    lines = await asyncio.to_thread(_lines, target, 3)
    assert len(lines) == 3, lines
    for line in lines:
        match = _TEXT_LINE.match(line)
        assert match is not None, line
        assert match.group(1) == "/first"
    assert "floatgate.access" not in process.log.read_text()  # the file, not stderr
    # logrotate: move the file, then SIGHUP; new lines go to a new file at the path
    rotated = tmp_path / "access.log.1"
    target.rename(rotated)
    process.signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(_get, port, "/second", 2)
    fresh = await asyncio.to_thread(_lines, target, 2)
    assert [_TEXT_LINE.match(x).group(1) for x in fresh] == ["/second"] * 2  # type: ignore[union-attr]
    assert len(rotated.read_text().splitlines()) == 3
    metrics = await asyncio.to_thread(_scrape, admin)
    assert _metric(metrics, "floatgate_access_log_lines_total") == 5
    assert _metric(metrics, 'floatgate_access_log_dropped_total{reason="full"}') == 0
    assert _metric(metrics, 'floatgate_access_log_dropped_total{reason="failed"}') == 0


async def test_json_lines_carry_the_request_fields(
    logged: Callable[..., Any], tmp_path: Path
) -> None:
    target = tmp_path / "access.json"
    port, _, _ = await logged(f"access_log: {{target: {target}, format: json}}")
    await asyncio.to_thread(_get, port, "/j")
    [line] = await asyncio.to_thread(_lines, target, 1)
    entry = json.loads(line)
    assert entry["event"] == "access" and entry["logger"] == "floatgate.access"
    assert entry["request"] == "GET /j HTTP/1.1" and entry["status"] == 200
    assert entry["frontend"] == "web" and entry["backend"] == "app" and entry["server"] == "s0"
    assert {"ts", "tq_ms", "tw_ms", "tc_ms", "tr_ms", "tt_ms", "bytes_out"} <= set(entry)


async def test_a_full_disk_drops_counted_lines_and_the_proxy_serves_on(
    logged: Callable[..., Any],
) -> None:
    """/dev/full refuses every write with ENOSPC, as a full disk does."""
    port, admin, process = await logged("access_log: {target: /dev/full, flush_interval: 10ms}")
    await asyncio.to_thread(_get, port, "/", 200)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = await asyncio.to_thread(_scrape, admin)
        if _metric(metrics, 'floatgate_access_log_dropped_total{reason="failed"}') >= 200:
            break
        await asyncio.sleep(0.1)
    assert _metric(metrics, 'floatgate_access_log_dropped_total{reason="failed"}') == 200
    assert _metric(metrics, "floatgate_access_log_lines_total") == 0
    text = process.log.read_text()
    assert text.count("access log: cannot write /dev/full: No space left on device") == 1
    assert "Traceback" not in text


async def test_a_reader_that_stops_reading_never_stalls_the_proxy(
    logged: Callable[..., Any], tmp_path: Path
) -> None:
    """A FIFO whose reader never reads: the writer thread blocks once the pipe is full;
    the proxy keeps answering, and what does not fit in max_pending is dropped."""
    fifo = tmp_path / "access.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, never read
    try:
        port, admin, _ = await logged(f"access_log: {{target: {fifo}, max_pending_kib: 64}}")
        # ~100-byte lines: 64 KiB of pipe + 64 KiB pending hold ~1,300; send 3,000
        for _ in range(10):
            await asyncio.to_thread(_get, port, "/" + "x" * 40, 300)
        metrics = await asyncio.to_thread(_scrape, admin)
        assert _metric(metrics, 'floatgate_access_log_dropped_total{reason="full"}') > 1000
        await asyncio.to_thread(_get, port, "/still", 1)  # and it still answers at once
    finally:
        os.close(reader)


def test_an_unusable_target_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "cluster.yaml").write_text(cluster_yaml(port, ["127.0.0.1:9"]))
    (tmp_path / "node.yaml").write_text(
        "name: n1\naccess_log: {target: /nonexistent-dir/access.log}\n"
    )
    command = [sys.executable, "-m", "node.cli", "run", "--cluster", str(tmp_path / "cluster.yaml"),
               "--node", str(tmp_path / "node.yaml")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1
    assert "access log: cannot open /nonexistent-dir/access.log: No such file or directory" in (
        done.stderr
    )
    check = subprocess.run(
        [sys.executable, "-m", "node.cli", "check", str(tmp_path / "cluster.yaml"), "--node",
         str(tmp_path / "node.yaml")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert check.returncode == 2
    assert "access_log.target: directory /nonexistent-dir does not exist" in check.stderr


async def test_a_stderr_nobody_reads_never_stalls_the_proxy(backends: Any, tmp_path: Path) -> None:
    """The default target with stderr a pipe that is never read (a stalled journal):
    the writer blocks once the pipe is full, the proxy answers on, lines are dropped."""
    backend = await backends("a")
    port, admin = free_port(), free_port()
    (tmp_path / "cluster.yaml").write_text(cluster_yaml(port, [backend.address]))
    (tmp_path / "node.yaml").write_text(
        f'name: n1\nadmin: {{listen: "127.0.0.1:{admin}"}}\naccess_log: {{max_pending_kib: 64}}\n'
    )
    command = [sys.executable, "-m", "node.cli", "run", "--cluster", str(tmp_path / "cluster.yaml"),
               "--node", str(tmp_path / "node.yaml")]  # fmt: skip
    process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the backend runs on this loop)
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for wanted in (port, admin):
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", wanted), timeout=0.2).close()
                    break
                except OSError:
                    assert process.poll() is None and time.monotonic() < deadline
                    await asyncio.sleep(0.05)
        for _ in range(10):
            await asyncio.to_thread(_get, port, "/" + "x" * 40, 300)
        metrics = await asyncio.to_thread(_scrape, admin)
        assert _metric(metrics, 'floatgate_access_log_dropped_total{reason="full"}') > 1000
    finally:
        process.terminate()
        assert process.stderr is not None
        process.stderr.read()  # let it write its last lines and exit
        process.wait(15)


def test_check_refuses_a_directory_or_a_socket_as_the_target(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "cluster.yaml").write_text(cluster_yaml(port, ["127.0.0.1:9"]))
    node = tmp_path / "node.yaml"
    node.write_text(f"name: n1\naccess_log: {{target: {tmp_path}}}\n")
    check = subprocess.run(
        [sys.executable, "-m", "node.cli", "check", str(tmp_path / "cluster.yaml"), "--node",
         str(node)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert check.returncode == 2
    assert f"access_log.target: {tmp_path} is a directory" in check.stderr
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "log.sock"))  # like /dev/log: a socket, not a file
    try:
        node.write_text(f"name: n1\naccess_log: {{target: {tmp_path / 'log.sock'}}}\n")
        command = [sys.executable, "-m", "node.cli", "run", "--cluster",
                   str(tmp_path / "cluster.yaml"), "--node", str(node)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 1
        assert "access log: cannot open" in done.stderr
    finally:
        listening.close()
