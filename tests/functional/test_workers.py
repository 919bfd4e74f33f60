"""``workers: N``: the node process binds and supervises, N worker processes serve on
its sockets. Real processes, real sockets: a killed or stuck worker is replaced by the
spare without a refused connection, SIGHUP is a new generation without a failed request,
SIGTERM drains, and workers never outlive the node process."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, FloatgateProcess, cluster_yaml, free_port
from tests.functional.pki import Pki


@pytest.fixture
def backend() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "deploy/lab/echo_backend.py", "127.0.0.1", str(port)],
                            cwd=REPO)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.kill()
    proc.wait(5)


class Node:
    """One ``floatgate run`` with ``workers`` in node.yaml and an admin API."""

    def __init__(self, process: FloatgateProcess, port: int, admin: int, access: Path) -> None:
        self.process, self.port, self.admin, self.access = process, port, admin, access

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/status", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def serving_pids(self) -> list[int]:
        return [w["pid"] for w in self.status()["workers"] if w["role"] == "worker"
                and w["state"] == "serving"]  # fmt: skip

    def settled(self, count: int, timeout: float = 20.0, **expect: Any) -> dict[str, Any]:
        """Wait until ``count`` workers serve, a spare is ready and the status has the
        ``expect``ed values; returns that status."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                status = self.status()
            except OSError:  # the admin API starts once the first workers serve
                time.sleep(0.05)
                continue
            rows = status["workers"]
            serving = [w for w in rows if w["role"] == "worker" and w["state"] == "serving"]
            spare = [w for w in rows if w["role"] == "spare" and w["state"] == "ready"]
            if (len(serving) == count and len(spare) == 1 and
                    all(status.get(k) == v for k, v in expect.items())):  # fmt: skip
                return status
            time.sleep(0.05)
        raise AssertionError(f"workers did not settle: {json.dumps(status, indent=1)}")

    def children(self) -> set[int]:
        out = subprocess.run(["ps", "--ppid", str(self.process.proc.pid), "-o", "pid="],
                             capture_output=True, text=True)  # fmt: skip
        return {int(line) for line in out.stdout.split()}


@pytest.fixture
def workers_node(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess], backend: int
) -> Callable[..., Node]:
    def make(count: int, frontend_extra: str = "", grace: str = "10s", top: str = "") -> Node:
        """``top``: more top-level cluster.yaml keys (certificates for a TLS frontend)."""
        port, admin = free_port(), free_port()
        access = tmp_path / "access.log"
        node_yaml = tmp_path / "node.yaml"
        node_yaml.write_text(f"name: w1\nworkers: {count}\nadmin: {{listen: {admin}}}\n"
                             f"access_log: {{target: {access}}}\n")  # fmt: skip
        text = cluster_yaml(port, [f"127.0.0.1:{backend}"], frontend_extra=frontend_extra)
        text += f"shutdown_grace: {grace}\n{top}"
        process = floatgate_process(text, run_args=("--node", str(node_yaml)))
        process.wait_listening(port)
        node = Node(process, port, admin, access)
        node.settled(count)
        return node

    return make


def _log_problems(node: Node) -> list[str]:
    return [line for line in node.process.log.read_text().splitlines()
            if " WARNING " in line or " ERROR " in line]  # fmt: skip


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Load:
    """Clients in threads, each request on a new connection (so every request is a new
    accept, the moment a dead worker would show), counted by outcome."""

    def __init__(self, port: int, clients: int = 4, keep_alive: bool = False) -> None:
        self.port, self.keep_alive = port, keep_alive
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    conn.connect()
                except OSError as exc:
                    self._count(f"connect {type(exc).__name__}")
                    conn = None
                    time.sleep(0.01)
                    continue
            try:
                conn.request("GET", "/", headers={} if self.keep_alive else {"Connection": "close"})
                response = conn.getresponse()
                response.read()
                self._count(str(response.status))
            except (OSError, http.client.HTTPException) as exc:
                self._count(f"request {type(exc).__name__}")
                conn.close()
                conn = None
                continue
            if not self.keep_alive or response.will_close:
                conn.close()
                conn = None

    def wait(self, requests: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        start = sum(self.outcomes.values())
        while sum(self.outcomes.values()) < start + requests and time.monotonic() < deadline:
            time.sleep(0.02)


def test_a_killed_worker_is_replaced_at_once_and_no_connection_is_refused(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2)
    before = node.status()
    assert before["worker_generation"] == 1
    victim = node.serving_pids()[0]
    with Load(node.port, clients=4) as load:
        load.wait(200)
        os.kill(victim, signal.SIGKILL)
        load.wait(300)
    after = node.settled(2, worker_replacements=1)
    pids = node.serving_pids()
    replacement = after["last_worker_replacement"]
    print(f"replacement: {replacement}; outcomes {dict(load.outcomes)}")
    assert victim not in pids and replacement["old_pid"] == victim
    assert replacement["new_pid"] in pids and replacement["exit"] == "was killed by SIGKILL"
    # no new connection failed: the socket is the node process's, the other worker and
    # the promoted spare accept; the only failures can be requests in flight on the victim
    assert not [k for k in load.outcomes if k.startswith("connect")], load.outcomes
    failed = sum(n for k, n in load.outcomes.items() if k != "200")
    assert failed <= 4, load.outcomes
    assert load.outcomes["200"] >= 500


def test_with_one_worker_connections_wait_in_the_backlog_for_the_replacement(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(1)
    (worker,) = node.serving_pids()
    os.kill(worker, signal.SIGSTOP)  # accepts nothing from here on
    clients = []
    for _ in range(5):
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=20)
        conn.connect()  # the kernel completes the handshake: the socket is still listening
        conn.request("GET", "/waiting")
        clients.append(conn)
    os.kill(worker, signal.SIGKILL)
    for conn in clients:
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["path"] == "/waiting"
        conn.close()
    status = node.settled(1, worker_replacements=1)
    assert worker not in node.serving_pids()
    assert status["last_worker_replacement"]["old_pid"] == worker


def test_a_worker_whose_event_loop_is_stuck_is_killed_and_replaced(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2)
    stuck = node.serving_pids()[1]
    os.kill(stuck, signal.SIGSTOP)  # alive to the kernel, silent to the node process
    status = node.settled(2, timeout=15, worker_replacements=1)
    assert stuck not in node.serving_pids()
    assert status["last_worker_replacement"]["old_pid"] == stuck
    assert "has not answered for" in node.process.log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(stuck, 0)  # killed and reaped, not left stopped


def test_sighup_is_a_new_generation_without_a_failed_request(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2)
    first = set(node.serving_pids())
    with Load(node.port, clients=2) as fresh, Load(node.port, clients=2, keep_alive=True) as kept:
        for generation in range(2, 12):
            node.process.signal(signal.SIGHUP)
            node.settled(2, worker_generation=generation)
            fresh.wait(20)
    outcomes = fresh.outcomes + kept.outcomes
    print(f"10 reloads: new connections {dict(fresh.outcomes)}, kept {dict(kept.outcomes)}")
    assert set(outcomes) == {"200"}, (fresh.outcomes, kept.outcomes, _log_problems(node))
    assert not first & set(node.serving_pids())
    deadline = time.monotonic() + 15
    while len(node.children()) > 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # the old generations drain and exit
    assert len(node.children()) == 3, node.status()["workers"]


def test_a_reload_the_new_workers_cannot_bind_keeps_the_running_generation(
    tmp_path: Path, workers_node: Callable[..., Node], backend: int
) -> None:
    node = workers_node(2)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    config = node.process.proc.args[node.process.proc.args.index("--cluster") + 1]  # type: ignore[union-attr]
    text = Path(config).read_text()
    Path(config).write_text(
        text.replace(
            "backends:",
            f"""  - name: second
    bind: "127.0.0.1:{busy}"
    default_backend: app
backends:""",
            1,
        )
    )
    before = set(node.serving_pids())
    node.process.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in node.process.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = node.process.log.read_text()
    taken.close()
    assert f"cannot listen on 127.0.0.1:{busy}" in log, log
    assert node.status()["worker_generation"] == 1
    assert set(node.serving_pids()) == before
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/", timeout=5) as response:
        assert response.status == 200


def test_sigterm_drains_every_worker_and_the_access_log_has_every_request(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2)
    pids = node.children()
    with Load(node.port, clients=2) as load:
        load.wait(100)
    assert node.process.stop() == 0
    assert set(load.outcomes) == {"200"}, load.outcomes
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    lines = node.access.read_text().splitlines()
    assert len(lines) == load.outcomes["200"], (len(lines), load.outcomes)


def test_workers_leave_when_the_node_process_is_killed(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2)
    pids = node.children()
    assert len(pids) == 3
    node.process.proc.kill()
    node.process.proc.wait(5)
    deadline = time.monotonic() + 15
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.05)
    assert not alive, "workers outlived the node process"
    with socket.socket() as again:  # the port is free for the next node process
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", node.port))


def _metrics(node: Node) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = [line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#"]
    return {name: float(value) for name, value in samples}


def test_metrics_sum_every_worker_and_keep_what_retired_workers_counted(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2)
    with Load(node.port, clients=2) as load:
        load.wait(300)
        node.process.signal(signal.SIGHUP)
        node.settled(2, worker_generation=2)
        load.wait(300)
    served = load.outcomes["200"]
    assert set(load.outcomes) == {"200"}, load.outcomes
    key = 'floatgate_frontend_http_requests_total{code="2xx",frontend="web"}'
    deadline = time.monotonic() + 10
    metrics = _metrics(node)
    while metrics.get(key) != served and time.monotonic() < deadline:
        time.sleep(0.2)  # each worker reports once a second
        metrics = _metrics(node)
    assert metrics.get(key) == served, (metrics.get(key), served)
    # and the fixture's one connection that waited for the port to listen
    assert metrics['floatgate_frontend_connections_total{frontend="web"}'] == served + 1
    assert metrics["floatgate_access_log_lines_total"] == served
    assert metrics["floatgate_worker_generation"] == 2
    assert metrics['floatgate_worker_processes{role="worker"}'] == 2
    assert metrics['floatgate_worker_processes{role="spare"}'] == 1
    assert metrics["floatgate_worker_replacements_total"] == 0


class CountingBackend:
    """An HTTP server on a real socket that counts the node's health checks."""

    def __init__(self) -> None:
        checks = self.checks = [0]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("User-Agent") == "floatgate-check":
                    checks[0] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counting() -> Iterator[CountingBackend]:
    server = CountingBackend()
    yield server
    server.close()


def _server_rows(node: Node) -> dict[str, dict[str, Any]]:
    return {row["server"]: row for row in node.status()["backends"]}


def _two_workers(
    tmp_path: Path,
    floatgate_process: Callable[..., FloatgateProcess],
    servers: list[str],
    backend_extra: str = "",
    edit: Callable[[str], str] = str,
) -> Node:
    """A standalone node with 2 workers and an admin API (no access log), serving."""
    port, admin = free_port(), free_port()
    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text(f"name: w1\nworkers: 2\nadmin: {{listen: {admin}}}\n")
    text = edit(cluster_yaml(port, servers, backend_extra=backend_extra))
    process = floatgate_process(text, run_args=("--node", str(node_yaml)))
    process.wait_listening(port)
    node = Node(process, port, admin, tmp_path / "none.log")
    node.settled(2)
    return node


def test_health_is_checked_once_per_node_and_pushed_to_every_worker(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess], counting: CountingBackend
) -> None:
    dead = free_port()
    check = "    check: {type: http, path: /, interval: 100ms, rise: 1, fall: 1}"
    servers = [f"127.0.0.1:{counting.port}", f"127.0.0.1:{dead}"]
    node = _two_workers(tmp_path, floatgate_process, servers, check)
    port = node.port
    deadline = time.monotonic() + 10
    while _server_rows(node)["s1"]["up"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _server_rows(node)["s1"]["up"], node.status()["backends"]
    # three processes could check (2 workers, the spare); only the node process does
    before, started = counting.checks[0], time.monotonic()
    time.sleep(2.0)
    checks, seconds = counting.checks[0] - before, time.monotonic() - started
    assert 0 < checks <= seconds / 0.1 + 3, (checks, seconds)
    # every worker knows s1 is down: all requests, over new connections spread over
    # both workers, go to s0 at once (a worker that still tried s1 would retry or 503)
    with Load(port, clients=4) as load:
        load.wait(300)
    assert set(load.outcomes) == {"200"}, load.outcomes
    metrics = _metrics(node)
    assert metrics['floatgate_server_status{backend="app",server="s1"}'] == 0
    assert metrics['floatgate_server_status{backend="app",server="s0"}'] == 1
    assert metrics['floatgate_server_check_up_down_total{backend="app",server="s1"}'] == 1


def test_a_passive_failure_in_one_worker_takes_the_server_down_for_all(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess], backend: int
) -> None:
    dead = free_port()
    never = f'address: "127.0.0.1:{dead}"'
    # s1 is never probed: only the workers' passive reports can take it down
    extra = "    retries: 1\n    passive_fall: 1\n    check: {type: tcp, interval: 1m}"
    servers = [f"127.0.0.1:{backend}", f"127.0.0.1:{dead}"]
    unchecked = never + ", check: false}"
    node = _two_workers(tmp_path, floatgate_process, servers, extra,
                        lambda text: text.replace(never + "}", unchecked))  # fmt: skip
    port, process = node.port, node.process
    with Load(port, clients=2) as load:
        load.wait(100)
    assert set(load.outcomes) == {"200"}, load.outcomes  # the retry went to s0
    row = _server_rows(node)["s1"]
    assert not row["up"] and "1 consecutive connection failures" in row["reason"], row
    assert "server app/s1 is DOWN, reason: 1 consecutive connection failures" in (
        process.log.read_text()
    )


def _named_backend(name: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(name)))
            self.end_headers()
            self.wfile.write(name.encode())

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("balance", ["uri", "source"])
def test_hashing_picks_the_same_server_in_every_worker(
    tmp_path: Path, floatgate_process: Callable[..., FloatgateProcess], balance: str
) -> None:
    """``uri``: one path, one server, whichever worker took the connection (and the
    ring uses both servers). ``source``: every request of this one client address
    reaches the same server through both workers."""
    servers = [_named_backend("a"), _named_backend("b")]
    try:
        addresses = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
        node = _two_workers(tmp_path, floatgate_process, addresses, f"    balance: {balance}")
        port = node.port
        seen: dict[str, set[str]] = {}
        for path in [f"/item/{i}" for i in range(16)] * 8:
            # a new connection each: the kernel spreads them over both workers
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers={"Connection": "close"})
            seen.setdefault(path, set()).add(conn.getresponse().read().decode())
            conn.close()
        assert all(len(names) == 1 for names in seen.values()), seen
        used = set().union(*seen.values())
        if balance == "uri":
            assert used == {"a", "b"}, seen  # the ring uses both
        else:
            assert len(used) == 1, seen  # one client address, one server
        deadline = time.monotonic() + 5
        served: list[int] = []
        while time.monotonic() < deadline:  # each worker reports its counts once a second
            served = [w["requests"] for w in node.status()["workers"] if w["role"] == "worker"]
            if sum(served) == 128:
                break
            time.sleep(0.1)
        assert sum(served) == 128 and min(served) > 0, served  # both workers answered
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_frontend_maxconn_holds_for_the_node_not_for_each_worker(
    workers_node: Callable[..., Node],
) -> None:
    node = workers_node(2, frontend_extra="    maxconn: 4")  # 2 per worker
    held = []
    for _ in range(4):
        conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        conn.request("GET", "/held")
        assert conn.getresponse().read()  # answered, and kept open (keep-alive)
        held.append(conn)
    waiting = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    waiting.sendall(b"GET /fifth HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    waiting.settimeout(1.0)
    with pytest.raises(TimeoutError):
        waiting.recv(1)  # the node is at maxconn: the fifth waits in the backlog
    held[0].close()  # a place frees in one worker, which takes the fifth
    waiting.settimeout(10)
    assert waiting.recv(100).startswith(b"HTTP/1.1 200")
    waiting.close()
    for conn in held[1:]:
        conn.close()


async def test_a_handover_is_quiet_only_once_every_generation_is(tmp_path: Path) -> None:
    """What the cluster role waits for before it removes the VIP (WorkerPlane.quiet):
    an exchange in flight on an older generation that drains keeps the node from
    being quiet, and reports older than the hold do not count."""
    from aiohttp import web

    from node.app.supervisor import WorkerPool
    from node.app.workerplane import WorkerPlane
    from node.config.model import AccessLogConfig
    from node.snapshot import load as load_snapshot

    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    backend = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    port = free_port()
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(cluster_yaml(port, [f"127.0.0.1:{backend}"]))
    config, tls = load_snapshot(cluster, tmp_path)
    pool = WorkerPool(1, AccessLogConfig(enabled=False), "WARNING", "text")
    await pool.start(config, tls, cluster, tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # the request waits at the backend, in generation 1
        await pool.reload(config, tls, cluster, tmp_path)  # generation 1 drains
        assert pool.generation == 2 and pool.retired  # generation 1 drains
        plane = WorkerPlane(pool)
        plane.hold_new(True)
        for _ in range(30):  # 0.3 s: generation 1 still has the exchange in flight
            assert not plane.quiet()
            await asyncio.sleep(0.01)
        release.set()
        assert (await reader.readuntil(b"late")).startswith(b"HTTP/1.1 200")
        for _ in range(200):
            if plane.quiet():
                break
            await asyncio.sleep(0.01)
        assert plane.quiet()
        plane.close_idle()
        await plane.idle_closed(2.0)
        assert all(w.answered >= plane._closing for w in pool.live())
        assert await reader.read() == b""  # its idle connection was closed
        plane.hold_new(False)
        writer.close()
    finally:
        await pool.stop(1.0)
        await runner.cleanup()


def test_sighup_with_http2_clients_goaway_and_no_failed_request(
    workers_node: Callable[..., Node], pki: Pki
) -> None:
    """HTTP/2 clients across reloads: the old generation sends GOAWAY, the streams it
    named are answered, the client (curl, one connection for many URLs, 100 a second)
    goes on over a new connection to the new generation; no request fails."""
    node = workers_node(
        2,
        frontend_extra="    tls: {certificates: [site], alpn: [h2, http/1.1]}",
        top=f"certificates: {{site: {pki.path('app.pem')}}}\n",
    )
    urls = [f"https://app.test:{node.port}/{n}" for n in range(1000)]
    curl = subprocess.Popen(
        ["curl", "-sS", "--http2", "--rate", "100/s", "--cacert", pki.path("ca.pem"), "--resolve",
         f"app.test:{node.port}:127.0.0.1", "-w", "%{http_code} %{http_version} "
         "%{num_connects}\n", *[a for url in urls for a in ("-o", "/dev/null", url)]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    during = 0  # reloads whose new generation served while curl still ran
    for generation in range(2, 5):  # curl takes 10 s for its 1000 requests
        time.sleep(0.3)
        node.process.signal(signal.SIGHUP)
        node.settled(2, worker_generation=generation)
        during += curl.poll() is None
    out, err = curl.communicate(timeout=120)
    rows = out.split("\n")[:-1]
    assert curl.returncode == 0, err
    assert len(rows) == 1000 and {r.split()[:2] == ["200", "2"] for r in rows} == {True}, rows
    connections = sum(int(r.split()[2]) for r in rows)
    print(f"1000 requests, {during} reloads during them: {connections} connections")
    assert during >= 1
    assert 1 + during <= connections <= 4  # each reload's GOAWAY: on to the new generation
