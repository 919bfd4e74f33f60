"""systemd integration: the unit passes `systemd-analyze verify`, and a real `floatgate
run` speaks the notify protocol to $NOTIFY_SOCKET: READY=1 only once its listener
accepts, WATCHDOG=1 while its event loop runs (none while it is frozen), STOPPING=1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import FloatgateProcess, cluster_yaml, free_port
from tests.tools import require_tool

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "floatgate.service"
INSTALLED = "/opt/floatgate/venv/bin/floatgate"


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = require_tool("systemd-analyze", "systemd")
    return subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed: ExecStart must name an existing executable, so the copy
    points at this checkout's floatgate entry point; nothing else is changed."""
    text = UNIT.read_text()
    assert INSTALLED in text
    entry = str(Path(sys.executable).parent / "floatgate")
    assert Path(entry).exists(), entry
    unit = tmp_path / "floatgate.service"
    unit.write_text(text.replace(INSTALLED, entry))
    result = _verify(unit)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    for needed in ("Type=notify", "WatchdogSec=", "ExecStopPost=", "release-crashed",
                   "Restart=on-failure", "NoNewPrivileges=yes",
                   "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
                   "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE",
                   "User=floatgate"):  # fmt: skip
        assert needed in text, needed
    # the scheduled drill: a oneshot service and its timer
    drill = (UNIT.parent / "floatgate-drill.service").read_text()
    assert INSTALLED in drill and "Type=oneshot" in drill
    (tmp_path / "floatgate-drill.service").write_text(drill.replace(INSTALLED, entry))
    timer = tmp_path / "floatgate-drill.timer"
    timer.write_text((UNIT.parent / "floatgate-drill.timer").read_text())
    for checked in (tmp_path / "floatgate-drill.service", timer):
        result = _verify(checked)
        assert result.returncode == 0 and result.stderr.strip() == "", (checked, result.stderr)
    # the check can fail: a broken directive is reported
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    assert _verify(broken).stderr.strip() != ""


def _messages(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        got.append((time.monotonic(), data.decode()))
    return got


def _notified_node(
    tmp_path: Path,
    floatgate_process: Callable[..., FloatgateProcess],
    watchdog_usec: int,
    node_yaml: str | None = None,
) -> tuple[socket.socket, int, FloatgateProcess]:
    """A notify socket standing in for systemd, and a standalone node told to use it
    (with ``node_yaml``'s text as its node.yaml)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    port = free_port()
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": str(watchdog_usec)}
    run_args: tuple[str, ...] = ()
    if node_yaml is not None:
        (tmp_path / "node.yaml").write_text(node_yaml)
        run_args = ("--node", str(tmp_path / "node.yaml"))
    process = floatgate_process(cluster_yaml(port, ["127.0.0.1:1"]), env=env, run_args=run_args)
    return sock, port, process


async def _sigterm_says_stopping(
    sock: socket.socket, process: FloatgateProcess, wait: float
) -> None:
    """SIGTERM: STOPPING=1 within 3 s, then exit status 0 within ``wait`` seconds."""
    process.signal(signal.SIGTERM)
    last = await asyncio.to_thread(_messages, sock, 3.0)
    assert any(m.startswith("STOPPING=1") for _, m in last), last
    assert process.proc.wait(wait) == 0


async def test_notify_ready_watchdog_and_stopping(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess]
) -> None:
    sock, port, process = _notified_node(tmp_path, floatgate_process, 400000)
    try:
        first: list[tuple[float, str]] = []
        ready_at = None
        for _ in range(150):
            got = await asyncio.to_thread(_messages, sock, 0.1)
            first += got
            if any("READY=1" in m for _, m in got):
                ready_at = time.monotonic()
                break
        assert ready_at is not None, process.log.read_text()
        # READY=1 means the listener accepts now
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        ready = next(m for _, m in first if "READY=1" in m)
        assert "STATUS=standalone: 1 frontends" in ready and f"MAINPID={process.proc.pid}" in ready
        beats = [t for t, m in await asyncio.to_thread(_messages, sock, 1.2) if m == "WATCHDOG=1"]
        assert len(beats) >= 4, beats  # every 0.2 s (half of WATCHDOG_USEC)
        os.kill(process.proc.pid, signal.SIGSTOP)  # a hung node sends no keepalive
        try:
            await asyncio.to_thread(_messages, sock, 0.1)  # what it sent before the stop
            frozen = await asyncio.to_thread(_messages, sock, 1.0)
        finally:
            os.kill(process.proc.pid, signal.SIGCONT)
        assert not any(m == "WATCHDOG=1" for _, m in frozen), frozen
        await _sigterm_says_stopping(sock, process, 10)
    finally:
        sock.close()


def test_no_notify_socket_means_no_messages(tmp_path: Path) -> None:
    from node.observe.sdnotify import Notifier

    quiet = Notifier({})
    assert not quiet.enabled and quiet.watchdog_interval is None
    quiet.ready("x")  # does nothing, raises nothing
    other = Notifier({"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "1000000",
                      "WATCHDOG_PID": "1"})  # fmt: skip
    assert other.address == "\0abstract" and other.watchdog_interval is None  # not our pid


def test_a_notify_socket_nobody_reads_never_blocks_the_node(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess]
) -> None:
    """A unix datagram socket queues net.unix.max_dgram_qlen (10) messages; a reader that
    stops (a wedged systemd, a test that stopped reading) must cost us watchdog messages,
    never the event loop: the node still answers and still stops on SIGTERM."""
    # a keepalive every 10 ms fills the queue in a tenth of a second; nothing here reads
    sock, port, process = _notified_node(tmp_path, floatgate_process, 20000)
    try:
        process.wait_listening(port)
        time.sleep(0.5)  # well past a full queue
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=3) as client:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = client.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503"), answer  # the loop answers
        process.signal(signal.SIGTERM)
        assert process.proc.wait(10) == 0, process.log.read_text()
    finally:
        sock.close()


async def test_with_workers_ready_comes_once_they_serve_and_only_the_node_speaks(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess]
) -> None:
    sock, port, process = _notified_node(tmp_path, floatgate_process, 400000,
                                         "name: w1\nworkers: 2\n")  # fmt: skip
    try:
        got: list[tuple[float, str]] = []
        for _ in range(150):
            got += await asyncio.to_thread(_messages, sock, 0.1)
            if any("READY=1" in m for _, m in got):
                break
        ready = next((m for _, m in got if "READY=1" in m), None)
        assert ready is not None, process.log.read_text()
        assert "STATUS=standalone: 1 frontends, 2 workers" in ready
        assert f"MAINPID={process.proc.pid}" in ready
        # READY=1 means a worker answers now (the server is down: a 503, from a worker)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.1 503")
        beats = await asyncio.to_thread(_messages, sock, 1.0)
        assert [m for _, m in beats if m == "WATCHDOG=1"], beats
        assert all(m == "WATCHDOG=1" for _, m in beats), beats  # workers say nothing
        await _sigterm_says_stopping(sock, process, 15)
    finally:
        sock.close()
