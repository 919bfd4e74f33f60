"""A node's cluster role: the election and the VIP manager around a data plane.

Joined here (and only from node/app/daemon.py): campaign only while the data plane is
healthy; hold the VIP only until the leadership deadline; hand over in the handover order
(docs/architecture.md): hold new connections, remove the VIP, resign, then drain.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from election.decide import Me
from election.elector import EtcdElection, LeaseKind, boot_id
from election.errors import ElectionError
from election.view import Member
from node.admin.auth import read_token
from node.admin.client import advertised_address
from node.cluster.errors import ClusterConfigError, SwitchoverError
from node.cluster.failsafe import ask_for_promises
from node.cluster.guard import (
    GuardProcess,
    RecordKeeper,
    RunningRecord,
    namespaces,
    record_path,
)
from node.cluster.serving import ServingPlane
from node.config.etcd import EtcdAccessError, etcd_access
from node.config.model import ClusterConfig, NodeConfig
from node.observe.metrics import Meters

if TYPE_CHECKING:
    from node.bundle.apply import BundleApplier
from vip.errors import VipError
from vip.fence import BpfFence
from vip.manager import VipManager
from vip.netlink import NetlinkBackend

log = logging.getLogger("floatgate.cluster")


def fence_slack(fence: str, ttl: float) -> float:
    """How long after a silent leader's deadline a standby waits before taking its seat
    (election.view.Silence); the leader states its own in its key and the larger one
    counts. With ``lease_ttl: 1s`` (bpf fence) the fence ends the reign at the deadline
    itself and the address is a 1 s backstop that outlives it whatever one waits:
    nothing to add. Otherwise the address expires by the deadline (whole seconds,
    rounded down) and the kernel removes it late: up to 0.33 s measured on Debian 12
    (its lifetime check may round up by 0.25 s, then waits for a workqueue). With the
    bpf fence the address is only a backstop, so 0.4 s keeps the two addresses from
    overlapping; with ``vip.fence: lifetime`` the address is the fence: 0.6 s."""
    if fence == "bpf":
        return 0.0 if ttl < 2 else 0.4
    return 0.6


class ClusterRole:
    @staticmethod
    def validate(node: NodeConfig, config: ClusterConfig) -> None:
        if node.etcd is None:
            raise ClusterConfigError("node.yaml has no etcd section")
        if config.vip is None or not node.interface:
            raise ClusterConfigError(
                "cluster mode needs vip (cluster.yaml) and interface (node.yaml)"
            )
        try:
            etcd_access(node.etcd)
        except EtcdAccessError as exc:
            raise ClusterConfigError(str(exc)) from exc
        if config.election.etcd_loss == "failsafe" and (
            node.admin is None or node.admin.tls is None
        ):
            raise ClusterConfigError(
                "election.etcd_loss: failsafe asks the other nodes for a promise over their "
                "admin APIs with the admin token, which never crosses the network in clear: "
                "configure admin.tls in node.yaml (or use etcd_loss: release)"
            )

    def __init__(
        self,
        node: NodeConfig,
        config: ClusterConfig,
        plane: ServingPlane,
        bundles: BundleApplier | None = None,
        meters: Meters | None = None,
    ) -> None:
        self.validate(node, config)
        assert node.etcd is not None and config.vip is not None and node.interface
        self.node = node
        self.config = config
        self.plane = plane
        self.bundles = bundles
        self._admin_token = read_token(node.admin.token_file if node.admin else None)
        self.election = EtcdElection(
            etcd_access(node.etcd),
            config.cluster,
            Me(node.name, node.priority, config.election.nopreempt),
            ttl=max(1, round(config.election.lease_ttl)),
            payload=self._payload,
            failsafe=self._ask_peers if config.election.etcd_loss == "failsafe" else None,
            uptodate=bundles.uptodate if bundles is not None else None,
            on_request=meters.etcd_request if meters is not None else None,
            down_visible_for=int(config.election.down_visible_for),
            # kept by every node: a failsafe active asks release-mode peers too (mixed
            # settings during a change), and a promise a restart forgets is none
            promise_file=Path(node.data_dir) / f"failsafe-promise-{config.cluster}.json",
            fence_slack=fence_slack(config.vip.fence, config.election.lease_ttl),
        )
        vip = config.vip.address
        self.fence = BpfFence(node.interface, vip.ip) if config.vip.fence == "bpf" else None
        self.vip = VipManager(
            NetlinkBackend(node.interface, self.fence, sub_second=config.election.lease_ttl < 2),
            config.vip.address,
            self._vip_deadline,
            garp_count=config.vip.garp.count,
            garp_interval=config.vip.garp.interval,
            tick=0.1,
            arp_probe=config.vip.arp_probe,
            token=lambda: self.election.fencing_token or self.election.last_token,
        )
        # The crash guard and the running record it acts on (node.cluster.guard).
        record = RunningRecord(os.getpid(), boot_id(), config.cluster, node.interface,
                               str(config.vip.address), namespaces())  # fmt: skip
        self.record = RecordKeeper(record_path(node.data_dir, config.cluster), record)
        self.election.on_lease(self._record_lease)
        self.election.on_change(lambda leading, reason: self.vip.wake())  # claim at once
        # node.yaml read from a file (not from memory, as in some tests): the guard reads it
        self.guard = GuardProcess(Path(node.source), self.record.path, Path(node.source).is_file())
        self.meters = meters
        self.takeovers: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.vip.on_claim(self._claimed)
        self.election.on_yield(self._yield_to)
        self._tasks: list[asyncio.Task[None]] = []
        self._hold_off_until = 0.0  # after a switchover: do not campaign before this
        self._stepping_down = False  # VIP released (or being released) before a resign
        self._step_lock = asyncio.Lock()
        self.last_handover_reason: str | None = None

    def _record_lease(self, which: LeaseKind, lease: int | None) -> None:
        old = self.record.record
        self.record.write(replace(old, lease=lease) if which == "leader"
                          else replace(old, member_lease=lease))  # fmt: skip

    async def _ask_peers(self, peers: tuple[Member, ...], seconds: float) -> bool:
        """``peers``: the failsafe list's other nodes (every node that could campaign)."""
        return await ask_for_promises(self.node, self._admin_token, peers, seconds)

    def _claimed(self, announced: float) -> None:
        """The VIP was added and announced here: time the takeover from the old leader's
        last sign of life (see election.view.Vacancy), if this follows one."""
        vacancy = self.election.succession.vacancy
        if vacancy is None or announced - vacancy.at > 10 * self.election.ttl:
            return  # no reign ended just before: a cold start, not a takeover
        seconds = max(0.0, announced - vacancy.last_sign_of_life(self.election.ttl))
        record = {
            "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "from": vacancy.previous, "to": self.node.name,
            "kind": vacancy.kind,
            "takeover_seconds": round(seconds, 3),
            "old_fencing_token": vacancy.fencing_token,
            "fencing_token": self.election.fencing_token,
        }  # fmt: skip
        self.takeovers.append(record)
        if self.meters is not None:
            self.meters.takeover.observe(seconds)
            self.meters.last_takeover.set(seconds)
        log.info("takeover from %s (%s) took %.3fs: old leader's last sign of life to the VIP "
                 "announced here [fencing token %s]", vacancy.previous, record["kind"], seconds,
                 record["fencing_token"], extra={"event": "takeover", **record})  # fmt: skip

    def status_role(self) -> str:
        return "active" if self.election.is_leader() else "standby"

    def lease_remaining(self) -> float:
        now = time.monotonic()
        if not self.election.is_leader(now):
            return 0.0
        return max(0.0, self.election.state.lease.remaining(now))

    def _payload(self) -> dict[str, Any]:
        """``admin``: ``https://host:port`` with admin.tls, else ``host:port`` (plain
        HTTP, what older nodes advertise and read)."""
        admin = self.node.admin
        payload: dict[str, Any] = {"admin": advertised_address(admin) if admin else None,
                                   "pid": os.getpid()}  # fmt: skip
        if self.bundles is not None:
            payload["bundle_revision"] = (self.bundles.applied or {}).get("revision")
        return payload

    def _vip_deadline(self) -> float | None:
        return self.election.deadline() if self.election.is_leader() else None

    def unhealthy_reason(self) -> str | None:
        """None when this node can serve; else the reason. Serving means: listeners
        bound and every frontend answering its own end-to-end probe (see
        node.proxy.selfcheck), configuration loaded, enough healthy backends, and not in
        the hold-off that follows a switchover away from this node."""
        if time.monotonic() < self._hold_off_until:
            leader = self.election.leader
            if leader is None or leader.name == self.node.name:
                return "holding off after a switchover"
            # A successor took the seat: the hold-off did its job. Should that node die
            # now, this one must be able to take over at once, not after the hold-off.
            self._hold_off_until = 0.0
        if not self.plane.listeners:
            return "no listener is open"
        problems = self.plane.frontend_problems()
        if problems:
            return "; ".join(f"frontend {name} cannot serve: {why}"
                             for name, why in sorted(problems.items()))  # fmt: skip
        up = sum(pool.usable_count() for pool in self.plane.pools.values())
        wanted = self.config.election.min_healthy_backends
        if up < wanted:
            return f"{up} healthy servers, {wanted} needed (election.min_healthy_backends)"
        return None

    def healthy(self) -> bool:
        return self.unhealthy_reason() is None

    def _election_health(self) -> bool:
        """What the election sees. While this node leads, the role itself hands over
        an unhealthy seat in order (VIP first, then the lease: see _watch_health), so
        the election loop must not revoke the lease under a VIP that is still up."""
        return self.election.is_leader() or self.healthy()

    async def start(self) -> None:
        """Attach the fence (shut), then campaign. Raises ClusterConfigError when the
        fence cannot be attached: a node that could not end its reign on time must not
        begin one."""
        try:
            await self.vip.install()
        except VipError as exc:
            raise ClusterConfigError(str(exc)) from exc
        self.record.write(replace(self.record.record, released=False))
        self._tasks = [
            asyncio.create_task(self.election.run(self._election_health)),
            asyncio.create_task(self.vip.run()),
            asyncio.create_task(self._watch_health()),
            asyncio.create_task(self.guard.keep()),
        ]

    async def _watch_health(self) -> None:
        """An active that cannot serve hands over as in a planned switchover: hold new
        connections, finish in-flight ones, remove the VIP, then resign."""
        while True:
            await asyncio.sleep(0.05)
            try:
                reason = self.unhealthy_reason()
                if reason is None or not self.election.is_leader() or self._stepping_down:
                    continue
                if reason == "holding off after a switchover" or self._step_lock.locked():
                    continue  # a switchover in progress resigns by itself
                self.last_handover_reason = reason
                log.error("%s cannot serve (%s): handing over to a standby", self.node.name,
                          reason, extra={"event": "unhealthy_handover"})  # fmt: skip
                # Stay out for a while: a standby cannot probe a VIP it does not hold, so
                # it would look healthy at once and could take the seat straight back.
                self._hold_off_until = time.monotonic() + max(5.0, 2 * self.election.ttl)
                await self._step_down(quiet_limit=0.2)  # a broken frontend never gets quiet
            except Exception:  # the watcher must outlive its own surprises
                log.exception("health watcher failed; continuing")

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        leader = self.election.leader
        leading = self.election.is_leader(now)
        last = self.vip.actions[-1] if self.vip.actions else None
        return {
            "node": self.node.name,
            "role": "active" if leading else "standby",
            "priority": self.node.priority,
            "leader": leader.name if leader else None,
            "fencing_token": self.election.fencing_token if leading else None,
            "leader_fencing_token": leader.fencing_token if leader else None,
            "lease_remaining": round(self.lease_remaining(), 3),
            "healthy": self.healthy(),
            "unhealthy_reason": self.unhealthy_reason(),
            "last_handover_reason": self.last_handover_reason,
            "decision": self.election.last_decision.reason,
            "etcd_reachable": self.election.view is not None,
            "members": [
                {"name": m.name, "priority": m.priority, "healthy": m.healthy,
                 "admin": m.payload.get("admin")}
                for m in self.election.members()
            ],
            "down_members": list(self.election.view.down(self.election.keys))
            if self.election.view is not None else [],
            "vip": str(self.config.vip.address) if self.config.vip else None,
            "vip_present": self.vip.present,
            "vip_last_action": last.reason if last else None,
            "vip_conflict": self.vip.conflict,
            "vip_fence": self.config.vip.fence if self.config.vip else None,
            "fence_remaining": self._fence_remaining(),
            "etcd_loss": self.config.election.etcd_loss,
            "failsafe_active": self.election.failsafe_active,
            "promised_to": self.election.promised_to,
            "failsafe_members": sorted(self.election.failsafe_members)
            if self.election.failsafe_members is not None and self.election.is_leader() else None,
            "leader_changes": self.election.succession.changes,
            "lease_ttl": self.election.ttl,
            "lease_ttl_granted": self.election.granted_ttl,
            "lease_ttl_note": self.election.ttl_note,
            "etcd_rtt": round(self.election.rtt, 4) if self.election.rtt is not None else None,
            "keepalive_timeout": round(self.election.keepalive_timeout(), 3),
            "takeovers": list(self.takeovers),
            "crash_guard": self.guard.status(),
        }  # fmt: skip

    def _fence_remaining(self) -> float | None:
        """Seconds the kernel fence still passes the VIP's traffic, read from the kernel
        (None without the bpf fence)."""
        if self.fence is None:
            return None
        try:
            deadline = self.fence.deadline()
        except OSError:
            return None
        return round(max(0.0, deadline / 1e9 - time.monotonic()), 3)

    async def _yield_to(self, target: str) -> None:
        try:
            log.info("preemption: %s", await self.switchover(target))
        except SwitchoverError as exc:
            log.warning("preemption to %s not possible: %s", target, exc)

    async def switchover(self, to: str | None = None, hold_off: float | None = None) -> str:
        """Planned handover: name the successor (if ``to``), remove the VIP, resign,
        and stay standby (listeners still bound) for ``hold_off`` seconds so another
        node takes over. Raises SwitchoverError (nothing changed) when it cannot."""
        if not self.election.is_leader():
            raise SwitchoverError("this node is not active: nothing to hand over")
        if self._step_lock.locked():
            raise SwitchoverError("a handover is already in progress on this node")
        others = [m for m in self.election.members() if m.name != self.node.name]
        stale = {m.name for m in others if m.payload.get("uptodate") is False}
        candidates = [m for m in others if m.healthy and m.name not in stale]
        if to is not None and to in stale:
            raise SwitchoverError(f"{to} does not serve the cluster's current bundle (STALE): "
                                  "fix it first (floatgate status shows its error)")  # fmt: skip
        if to is None and not candidates:
            why = f" ({', '.join(sorted(stale))}: STALE bundle)" if stale else ""
            raise SwitchoverError(f"no healthy, up-to-date standby is registered{why}: "
                                  "nobody could take over cleanly")  # fmt: skip
        if to is not None:
            try:
                await self.election.name_successor(to)
            except ElectionError as exc:
                raise SwitchoverError(str(exc)) from exc
        self._hold_off_until = time.monotonic() + (hold_off or 2 * self.election.ttl)
        await self._step_down()
        log.info("switchover: VIP removed and lease resigned; standby for a while")
        return f"VIP removed and lease resigned: {to or 'the best standby'} takes over"

    async def _step_down(self, quiet_limit: float = 0.5) -> None:
        """Invariant 8, going down: hold new connections, finish in-flight ones, remove
        the VIP, then resign; the VIP task starts again only once the lease is gone,
        so it cannot re-add the VIP in between."""
        async with self._step_lock:  # one handover at a time (switchover, watcher, yield)
            self._stepping_down = True
            try:
                try:
                    await self._release_quietly(quiet_limit)
                finally:
                    self.plane.hold_new(False)  # standby again: ready for a later takeover
                await self.election.resign()
            finally:
                if self._tasks[1].done():  # never two VIP tasks
                    self._tasks[1] = asyncio.create_task(self.vip.run())
                self._stepping_down = False

    async def _release_quietly(self, limit: float = 0.5) -> None:
        """Remove the VIP at a moment no client exchange is cut short: new connections
        are held (their SYNs dropped, so clients retransmit them to the next holder
        instead of seeing a refusal), in-flight requests finish (up to ``limit``), idle
        keep-alive connections are closed, then the VIP goes."""
        self.plane.hold_new(True)
        deadline = time.monotonic() + limit
        while not self.plane.quiet() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        self.plane.close_idle()
        await self.plane.idle_closed(0.2)  # workers: their answers come back first
        vip_task = self._tasks[1]
        vip_task.cancel()
        await asyncio.gather(vip_task, return_exceptions=True)
        await self.vip.release()

    async def hand_over(self) -> None:
        """SIGTERM: hold new connections, remove the VIP once in-flight exchanges are
        done, resign (the caller then drains and exits)."""
        watcher = self._tasks[2]
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        self._stepping_down = True
        if self.election.is_leader():
            try:
                await self._release_quietly()
            except Exception as exc:  # the kernel lifetime still fences it
                log.error("could not remove the VIP on shutdown: %s", exc)
        self.plane.stop_accepting()
        vip_task = self._tasks[1]
        vip_task.cancel()
        await asyncio.gather(vip_task, return_exceptions=True)
        removed = True
        try:
            await self.vip.release()
        except Exception as exc:
            removed = False  # the crash guard tries again once this process has exited
            log.error("could not remove the VIP on shutdown: %s", exc)
        election_task = self._tasks[0]
        election_task.cancel()
        await asyncio.gather(election_task, return_exceptions=True)  # resigns if leading
        await self.election.close()
        if removed:  # the guard, seeing this process exit, then does nothing
            self.record.write(replace(self.record.record, released=True))
        self._tasks[3].cancel()
        log.info("handed over: VIP removed, lease resigned")
