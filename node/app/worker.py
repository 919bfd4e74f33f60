"""A data-plane worker process: ``python -m node.app.worker --control FD``.

Started by the node process (node.app.supervisor) with the listening sockets and one
end of a Unix socket pair inherited. It loads the configuration it is told to, says
``ready``, starts accepting on ``serve``, beats every BEAT seconds from its event loop,
and on ``drain``, SIGTERM or the node process going away stops accepting, finishes what
is in flight within the grace and exits. It holds no etcd client and no netlink socket:
the node process keeps the election, the VIP, bundles and the admin API. SIGINT and
SIGHUP are the node process's to act on (a terminal's Ctrl-C reaches the whole group).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from dataclasses import fields
from pathlib import Path

from node.app.eventloop import install_event_loop_policy
from node.app.workerlink import BEAT, COUNTS_EVERY, MAX_LINE, LinkError, StartOrder, encode, receive
from node.config import ConfigError
from node.config.model import AccessLogConfig
from node.config.share import split_limits
from node.observe.logformat import configure_logging
from node.observe.logsink import LogTargetError
from node.observe.metrics import Meters
from node.proxy.errors import ListenError
from node.proxy.plane import DataPlane
from node.snapshot import load as load_snapshot

log = logging.getLogger("floatgate.worker")


class Worker:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.plane: DataPlane | None = None
        self.stop = asyncio.Event()
        self.grace: float | None = None  # from a drain order; else the configuration's
        self.close_idle = True  # a retired generation's drain lets idle clients finish
        self.health: dict[str, dict[str, bool]] = {}  # servers' UP/DOWN, as last pushed

    def passive(self, backend: str, server: str, connected: bool, reason: str) -> None:
        """A connection to a server failed (or worked again): the node process decides."""
        self.tell("passive", backend=backend, server=server, connected=connected, reason=reason)

    def apply_health(self) -> None:
        if self.plane is not None:
            for name, states in self.health.items():
                pool = self.plane.pools.get(name)
                if pool is not None:
                    pool.set_health(states)

    def tell(self, op: str, **fields_: object) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode({"op": op, **fields_}))

    def beat(self, meters: Meters | None = None, seq: int | None = None) -> None:
        """What this worker serves now: its frontends' problems and open connections;
        with ``meters``, its counters and per-server sessions too (once a second); with
        ``seq``, the answer to the node process's order of that number (a "report", or
        a "close_idle" done), with whether it is between exchanges."""
        plane = self.plane
        answer: dict[str, object] = {} if seq is None else {"seq": seq}
        if plane is None:
            self.tell("beat", **({"quiet": True, **answer} if answer else {}))
            return
        if seq is not None:
            answer["quiet"] = plane.quiet()
        if meters is not None:
            answer["counters"] = meters.counters()
            answer["servers"] = {pool.name: {s.name: [s.active, s.total] for s in pool.servers}
                                 for pool in plane.pools.values()}  # fmt: skip
        frontends = {lst.name: len(lst.connections) for lst in plane.listeners.values()}
        self.tell("beat", problems=plane.frontend_problems(), frontends=frontends, **answer)

    async def beats(self, meters: Meters) -> None:
        """A beat every BEAT seconds; every COUNTS_EVERY-th carries the counters."""
        sent = 0
        while True:
            self.beat(meters if sent % COUNTS_EVERY == 0 else None)
            sent += 1
            await asyncio.sleep(BEAT)

    async def orders(self, reader: asyncio.StreamReader, plane: DataPlane, label: str) -> None:
        while True:
            try:
                message = await receive(reader)
            except LinkError as exc:
                log.error("%s: %s; stopping", label, exc)
                message = None
            if message is None:
                if not self.stop.is_set():
                    log.warning("%s: the node process is gone; draining", label)
                self.stop.set()
                return
            if message["op"] == "serve" and self.plane is None:
                try:
                    await plane.start()
                except (ListenError, LogTargetError, OSError) as exc:
                    self.tell("failed", error=str(exc))
                    self.stop.set()
                    return
                self.plane = plane
                self.apply_health()
                self.tell("serving", pid=os.getpid())
            elif message["op"] == "health" and isinstance(message.get("states"), dict):
                self.health = message["states"]
                self.apply_health()
            elif message["op"] == "report":  # the node process waits for quiet
                self.beat(seq=int(message.get("seq", 0)))
            elif message["op"] == "close_idle":
                if self.plane is not None:
                    self.plane.close_idle()
                self.beat(seq=int(message.get("seq", 0)))
            elif message["op"] == "stop_accepting" and self.plane is not None:
                self.plane.stop_accepting()
            elif message["op"] == "drain":
                self.grace = float(message.get("grace", 0.0))
                self.close_idle = message.get("idle") != "keep"
                self.stop.set()


async def run(control: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_unix_connection(sock=control, limit=MAX_LINE)
    try:
        first = await receive(reader)
        if first is None:
            return 1
        order = StartOrder.parse(first)
    except LinkError as exc:
        print(f"floatgate worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(order.log_level, order.log_format)
    label = f"worker pid {os.getpid()} (generation {order.generation})"
    worker = Worker(writer)
    try:
        acme = Path(order.acme) if order.acme else None
        config, tls = load_snapshot(Path(order.cluster), Path(order.certs), acme)
        config = split_limits(config, order.workers)
        names = {f.name for f in fields(AccessLogConfig)}
        access = AccessLogConfig(**{k: v for k, v in order.access_log.items() if k in names})
    except (ConfigError, TypeError) as exc:
        worker.tell("failed", error=f"cannot load the configuration: {exc}")
        await writer.drain()
        return 2
    sockets = {(host, port): socket.socket(fileno=fd) for host, port, fd in order.listeners}
    meters = Meters()
    plane = DataPlane(config, access, tls, meters, sockets=sockets, report=worker.passive)
    for sig in (signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, lambda: None)
    loop.add_signal_handler(signal.SIGTERM, worker.stop.set)
    worker.tell("ready", pid=os.getpid())
    tasks = [asyncio.create_task(worker.beats(meters)),
             asyncio.create_task(worker.orders(reader, plane, label))]  # fmt: skip
    await worker.stop.wait()
    grace = config.shutdown_grace if worker.grace is None else worker.grace
    if worker.plane is not None:
        log.info("%s: stopped accepting; finishing in-flight requests (grace %.1fs)", label,
                 grace)  # fmt: skip
        sink = meters.log_sink  # the stop flushes and lets go of it: counted to the end
        await worker.plane.stop(grace, worker.close_idle)
        meters.log_sink = sink
        worker.tell("beat", counters=meters.counters())  # the last word: nothing is lost
        await writer.drain()
    else:
        for sock in sockets.values():
            sock.close()
    for task in tasks:
        task.cancel()
    writer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floatgate-worker", description=__doc__)
    parser.add_argument("--control", type=int, required=True, help="inherited socket descriptor")
    args = parser.parse_args(argv)
    install_event_loop_policy()
    control = socket.socket(fileno=args.control)
    try:
        return asyncio.run(run(control))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
