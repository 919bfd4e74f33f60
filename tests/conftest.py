"""Shared fixtures: free ports, real backends on loopback, and floatgate itself, either
in-process (a DataPlane on the test's event loop) or as a real `floatgate run` process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.config import parse_cluster
from node.proxy.plane import DataPlane
from node.tls.material import load_tls
from tests.functional.pki import Pki, make_pki

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Backend:
    """An aiohttp backend that records what it received and answers with its name."""

    name: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, list[str]]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


async def _start_backend(name: str, handler: Callable[..., Any] | None = None) -> Backend:
    backend = Backend(name, free_port())

    async def default(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        backend.requests.append((request.method, request.raw_path))
        backend.bodies.append(body)
        backend.headers.append({k: request.headers.getall(k) for k in request.headers})
        if backend.delay:
            await asyncio.sleep(backend.delay)
        return web.Response(status=backend.status, text=backend.name,
                            headers={"X-Backend": backend.name})  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler or default)
    backend.runner = web.AppRunner(app, access_log=None)
    await backend.runner.setup()
    await web.TCPSite(backend.runner, "127.0.0.1", backend.port).start()
    return backend


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., Any]]:
    started: list[Backend] = []

    async def make(name: str, handler: Callable[..., Any] | None = None) -> Backend:
        backend = await _start_backend(name, handler)
        started.append(backend)
        return backend

    yield make
    for backend in started:
        assert backend.runner is not None
        await backend.runner.cleanup()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """One test PKI for the whole run (root, intermediate, servers, clients, CRL)."""
    yield make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def https_server() -> AsyncIterator[Callable[..., Any]]:
    """Start an aiohttp HTTPS server on loopback: (handler, PEM bundle path, optional
    client CA path that makes client certificates required) -> port."""
    runners: list[web.AppRunner] = []

    async def start(handler: Callable[..., Any], pem: str, client_ca: str | None = None) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        runners.append(runner)
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def proxy() -> AsyncIterator[Callable[..., Any]]:
    """Start an in-process data plane from YAML text; returns (plane, frontend port)."""
    planes: list[DataPlane] = []

    async def make(yaml_text: str, certs_dir: Path | None = None) -> DataPlane:
        config = parse_cluster(yaml_text)
        tls = load_tls(config, certs_dir or Path("/nonexistent"))
        plane = DataPlane(config, tls=tls)
        await plane.start()
        planes.append(plane)
        return plane

    yield make
    for plane in planes:
        await plane.stop(0.5)


def cluster_yaml(
    port: int,
    servers: list[str],
    *,
    frontend_extra: str = "",
    backend_extra: str = "",
    server_extra: str = "",
) -> str:
    lines = "\n".join(
        f'      - {{name: s{i}, address: "{address}"{server_extra}}}'
        for i, address in enumerate(servers)
    )
    return f"""
cluster: test
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: app
{frontend_extra}
backends:
  - name: app
{backend_extra}
    servers:
{lines}
"""


class FloatgateProcess:
    """A real `floatgate run` process, its stderr captured to a file."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        run_args: tuple[str, ...] = (),
    ) -> None:
        self.log = log
        command = [sys.executable, "-m", "node.cli", *args, "run", "--cluster", str(config)]
        self.proc = subprocess.Popen(
            [*command, *run_args],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )

    def wait_listening(self, port: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"floatgate exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"floatgate did not listen on {port}: {self.log.read_text()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def floatgate_process(tmp_path: Path) -> Iterator[Callable[..., FloatgateProcess]]:
    started: list[FloatgateProcess] = []

    def make(
        yaml_text: str,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        run_args: tuple[str, ...] = (),
    ) -> FloatgateProcess:
        """``args``: global options (before ``run``); ``run_args``: run's own."""
        config = tmp_path / f"cluster{len(started)}.yaml"
        config.write_text(yaml_text)
        log = tmp_path / f"floatgate{len(started)}.log"
        process = FloatgateProcess(config, log, env, args, run_args)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """With FLOATGATE_REQUIRE_LAB=1 (CI, as root), a skipped lab test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and item.get_closest_marker("lab")
        and os.environ.get("FLOATGATE_REQUIRE_LAB") == "1"
    ):
        report.outcome = "failed"
        report.longrepr = f"lab test skipped but FLOATGATE_REQUIRE_LAB=1: {report.longrepr}"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Test backends' keep-alive handler tasks are collected at interpreter exit, after
    the summary; asyncio would log each as an error below pytest's closing line."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
