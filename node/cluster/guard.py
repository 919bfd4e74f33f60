"""The crash guard: when the node process dies without handing over, end its reign now.

A node that is killed (kill -9, a segfault, the OOM killer) cannot remove its VIP or
resign. Without help its standby waits for the silence window or the lease's expiry
(a TTL or so). The guard is a small process the node starts beside itself; it waits on
a pidfd of the node process and, the moment that process has exited:

1. removes the VIP from this machine's interface -- and checks that it is gone;
2. only then ends the dead process's lease in etcd (the leader key is marked
   ``crashed``, then the lease is revoked: see election.crash), so a standby campaigns
   at once and reports the takeover as kind ``crash``.

Step 2 never runs unless step 1 is verified: a standby may claim the VIP the moment the
lease is gone, so the address must already be off this machine (the dead process can
add nothing any more: its pidfd says every thread of it has exited). When etcd cannot be
reached the lease simply runs out as before. The same steps run from ``floatgate
release-crashed`` (the systemd unit's ExecStopPost=), for when the guard died with the
node (a SIGKILL of the whole unit, an OOM kill of the group, the watchdog's SIGABRT;
systemd's SIGTERM after a crash the guard ignores).

What the guard acts on is the node's *running record*, a small JSON file in data_dir the
node keeps up to date: its PID and boot, the VIP and interface, and the lease of its
latest campaign (told before the campaign is sent). A node that hands over cleanly marks
the record released; the guard then has nothing to do.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from election.crash import end_reign
from election.elector import boot_id
from election.errors import EtcdUnavailable
from election.etcdclient import EtcdAccess
from node.cluster.errors import ClusterConfigError
from node.config import ConfigError
from node.config.etcd import EtcdAccessError, etcd_access
from node.config.model import NodeConfig
from node.config.nodefile import load_node
from vip.errors import VipError
from vip.netlink import NetlinkBackend

log = logging.getLogger("floatgate.guard")

READY = b"guard ready\n"


@dataclass(frozen=True, slots=True)
class RunningRecord:
    """What a crash guard needs to end this node's reign (``<data_dir>/running-<cluster>.json``)."""

    pid: int
    boot_id: str
    cluster: str
    interface: str
    vip: str  # address/prefix
    namespaces: str  # the node's network and PID namespaces (see namespaces())
    lease: int | None = None  # the lease of the latest campaign
    member_lease: int | None = None  # the member entry's lease
    released: bool = False  # the node handed over cleanly: nothing to do

    def dump(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> RunningRecord:
        try:
            raw = json.loads(data)
            lease, member = raw.get("lease"), raw.get("member_lease")
            return cls(int(raw["pid"]), str(raw["boot_id"]), str(raw["cluster"]),
                       str(raw["interface"]), str(ipaddress.IPv4Interface(raw["vip"])),
                       str(raw["namespaces"]), int(lease) if lease is not None else None,
                       int(member) if member is not None else None,
                       bool(raw.get("released", False)))  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ClusterConfigError(f"running record unreadable: {exc}") from exc


def record_path(data_dir: str | Path, cluster: str) -> Path:
    return Path(data_dir) / f"running-{cluster}.json"


def what_to_do(record: RunningRecord | None, dead_pid: int | None, boot_id: str,
               where: str, alive: bool) -> str | None:  # fmt: skip
    """None: release (remove the VIP, end the lease); else why there is nothing to do.
    ``dead_pid``: the process the guard watched (None: any, as after a crash of the
    whole unit); ``where``: this process's namespaces; ``alive``: whether the record's
    process may still run (unsure counts as alive)."""
    if record is None:
        return "no running record: the node never started in cluster mode here"
    if record.released:
        return "the node handed over cleanly (or its reign was ended already)"
    if record.boot_id != boot_id or boot_id == "unknown":
        return "the record is not from this boot (or the boot is unknown): left alone"
    if record.namespaces != where:
        return ("the record was written in other network/PID namespaces than this command "
                "runs in: run it where floatgate ran (e.g. under ip netns exec)")  # fmt: skip
    if dead_pid is not None and record.pid != dead_pid:
        return f"the record belongs to another floatgate process (pid {record.pid})"
    if alive:
        return f"floatgate (pid {record.pid}) is still running"
    return None


class RecordKeeper:
    """The node's side: writes the running record (atomically: a new file renamed over
    the old one) whenever what a guard needs changes."""

    def __init__(self, path: Path, record: RunningRecord) -> None:
        self.path = path
        self.record = record

    def write(self, record: RunningRecord) -> None:
        self.record = record
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(self.record.dump())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("cannot write the running record %s (a crash would then wait for the "
                      "lease to run out): %s", self.path, exc)  # fmt: skip


def read_record(path: Path) -> RunningRecord | None:
    try:
        return RunningRecord.parse(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClusterConfigError(f"cannot read {path}: {exc.strerror}") from exc


def namespaces() -> str:
    """This process's network and PID namespaces: a record is only acted on from where
    it was written (elsewhere the VIP would not be found, nor the process)."""
    try:
        return " ".join(f"{kind}:{os.stat(f'/proc/self/ns/{kind}').st_ino}"
                        for kind in ("net", "pid"))  # fmt: skip
    except OSError:
        return "unknown"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` may still run: False only when it has certainly exited (its
    pidfd is readable once every thread of it is gone, a zombie included)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # unsure: alive
    try:
        readable, _, _ = select.select([fd], [], [], 0)
        return not readable
    finally:
        os.close(fd)


class AddressRemover(Protocol):
    """What release needs of the VIP backend (vip.netlink.NetlinkBackend)."""

    async def remove(self, vip: ipaddress.IPv4Interface) -> None: ...
    async def links_with(self, ip: ipaddress.IPv4Address) -> list[str]: ...


async def release(
    record: RunningRecord, access: EtcdAccess | None, backend: AddressRemover | None = None
) -> list[str]:
    """Remove the VIP (verified), then end the lease. Each step said in words; raises
    VipError when the VIP could not be removed (then the lease is left alone)."""
    vip = ipaddress.IPv4Interface(record.vip)
    backend = backend or NetlinkBackend(record.interface)
    await backend.remove(vip)
    still = await backend.links_with(vip.ip)
    if still:
        raise VipError(f"{vip.ip} is still on {', '.join(still)} after removing it")
    done = [f"VIP {vip} removed from {record.interface}"]
    if record.lease is None and record.member_lease is None:
        return [*done, "no lease to end"]
    if access is None:
        return [*done, "no etcd access: the lease runs out by itself"]
    try:
        done.append(await end_reign(access, record.cluster, record.lease, record.member_lease))
    except EtcdUnavailable as exc:
        done.append(f"could not end the lease (it runs out by itself): {exc}")
    return done


def _access(node_file: Path) -> EtcdAccess | None:
    node = load_node(node_file)
    return etcd_access(node.etcd) if node.etcd is not None else None


def release_crashed(node: NodeConfig) -> list[tuple[Path, Outcome]]:
    """``floatgate release-crashed``: act on every running record in data_dir (raises
    EtcdAccessError when node.yaml's etcd settings cannot be used)."""
    access = etcd_access(node.etcd) if node.etcd is not None else None
    records = sorted(Path(node.data_dir).glob("running-*.json"))
    return [(path, act(path, access, None)) for path in records]


def guard(node_file: Path, record_file: Path, pid: int) -> int:
    """The guard process: get ready (etcd access, modules loaded), say so, wait for
    ``pid`` to exit, then act on the record."""
    # systemd sends the unit's stop signal to every process in it; the guard still has
    # work once the node is gone, and exits by itself right after.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        access = _access(node_file)
    except (ConfigError, EtcdAccessError) as exc:
        log.error("crash guard cannot start: %s", exc)
        return 2
    try:
        watched = os.pidfd_open(pid)  # before READY, and of our own parent only: never
    except OSError as exc:  # a reused PID
        log.error("crash guard cannot watch pid %d: %s", pid, exc)
        return 2
    if os.getppid() != pid:
        log.error("crash guard: pid %d is not the node that started this guard", pid)
        return 2
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    select.select([watched], [], [])
    os.close(watched)
    died = time.monotonic()
    outcome = act(record_file, access, pid)
    level = logging.WARNING if outcome.released else logging.INFO
    if outcome.status:
        level = logging.ERROR
    log.log(level, "crash guard: %s (%.3fs after the exit)", outcome.said,
            time.monotonic() - died)  # fmt: skip
    return outcome.status


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int  # 0: released, or nothing to do; 1: the VIP could not be removed
    released: bool
    said: str


def act(record_file: Path, access: EtcdAccess | None, dead_pid: int | None) -> Outcome:
    """Read the record and release what it says, when that is due."""
    try:
        record = read_record(record_file)
    except ClusterConfigError as exc:
        return Outcome(1, False, f"{exc}; nothing done")
    alive = record is not None and pid_alive(record.pid)
    skip = what_to_do(record, dead_pid, boot_id(), namespaces(), alive)
    if skip is not None:
        return Outcome(0, False, f"nothing to do: {skip}")
    assert record is not None
    try:
        steps = asyncio.run(release(record, access))
    except VipError as exc:
        return Outcome(1, False, (
            f"could not remove the VIP, so the lease is left to run out (the fence and "
            f"the address's lifetime end the reign): {exc}"))  # fmt: skip
    try:  # unless a new floatgate process has written its own record meanwhile
        now = read_record(record_file)
    except ClusterConfigError:
        now = None
    if now is not None and (now.pid, now.boot_id) == (record.pid, record.boot_id):
        RecordKeeper(record_file, now).write(replace(now, released=True))
    return Outcome(0, True, f"floatgate pid {record.pid} died without handing over; "
                   + "; ".join(steps))  # fmt: skip


class GuardProcess:
    """The node's side: starts the guard beside this process, and again should it die
    (said in the log and in ``/status``)."""

    def __init__(self, node_file: Path, record_file: Path, possible: bool = True) -> None:
        self.node_file = node_file
        self.record_file = record_file
        self.possible = possible  # False: node.yaml is not a file the guard could read
        # subprocess.Popen, not asyncio's: asyncio kills a child still running when
        # its loop closes, and the guard must outlive this process to do its work.
        self.process: subprocess.Popen[bytes] | None = None
        self.problem: str | None = "not started"
        self.starts = 0

    async def start(self, timeout: float = 20.0) -> None:
        """Start the guard and wait until it is armed; a guard that cannot start is a
        warning (a crash then waits for the lease), never a reason not to serve."""
        self.starts += 1
        try:
            process = subprocess.Popen(  # noqa: ASYNC220 (fork+exec: no wait on the child)
                [sys.executable, "-m", "node.cluster.guard", "--node", str(self.node_file),
                 "--record", str(self.record_file), "--pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            self.problem = f"cannot start: {exc}"
            log.warning("crash guard %s: a crash waits for the lease to run out", self.problem)
            return
        self.process = process
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        said = b""
        end = time.monotonic() + timeout
        while READY not in said and process.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.05)
            said += process.stdout.read() or b""
        process.stdout.close()  # the guard says nothing more on it
        if READY not in said:
            if process.poll() is None:
                process.kill()
                process.wait()
            self.problem = f"did not get ready (exit status {process.returncode})"
            log.warning("crash guard %s: a crash waits for the lease to run out", self.problem)
            return
        self.problem = None
        log.info("crash guard armed (pid %d): a crash of this process removes the VIP and "
                 "ends its lease at once", process.pid)  # fmt: skip

    async def keep(self) -> None:
        """Start the guard, and again whenever it exits (not expected while the node
        runs). The node does not wait for it: nothing it does depends on the guard."""
        if not self.possible:
            self.problem = "not started: node.yaml was not read from a file"
            log.warning("crash guard %s: a crash waits for the lease to run out", self.problem)
            return
        await self.start()
        delay = 0.5
        while True:
            process = self.process
            if process is not None and self.problem is None:
                armed = time.monotonic()
                while process.poll() is None:  # polled: a thread blocked in wait() would
                    await asyncio.sleep(0.5)  # hold up this process's own exit
                self.problem = f"exited (status {process.returncode})"
                log.warning("crash guard %s; starting it again", self.problem)
                if time.monotonic() - armed > 60:
                    delay = 0.5  # it had lived: a fresh start; else keep backing off
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)  # a guard that cannot start: no storm of retries
            await self.start()

    def status(self) -> dict[str, object]:
        process = self.process
        running = process is not None and process.poll() is None and self.problem is None
        return {"armed": running, "pid": process.pid if process is not None else None,
                "problem": self.problem, "starts": self.starts}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.cluster.guard")
    parser.add_argument("--node", type=Path, required=True, help="node.yaml")
    parser.add_argument("--record", type=Path, required=True, help="the running record")
    parser.add_argument("--pid", type=int, required=True, help="the node process to watch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return guard(args.node, args.record, args.pid)


if __name__ == "__main__":
    sys.exit(main())
