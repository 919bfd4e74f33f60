"""The orderer: for every ``acme:`` certificate, decide (node.acme.plan), order
(node.acme.client, in a thread), hand the result to an :class:`Outlet`. One runs per
cluster: on the active only (the daemon starts it when the node becomes active and
cancels it when it stops being so; what it stores is fenced by the reign's token),
or on a standalone node for itself.

Nothing here changes what is served: the outlet stores a new revision, and the node
applies it the way it applies any revision. A failure leaves the current certificate
serving and backs off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from node.acme.client import order
from node.acme.errors import AcmeError, LeadershipLost
from node.acme.plan import Attempts, Decision, Served, decide, failed
from node.config.model import AcmeSpec, ClusterConfig
from node.tls.acme import ACCOUNT_KEY_FILE, is_placeholder, key_type_of, new_key_pem
from node.tls.certfile import CertFile
from node.tls.material import TlsMaterial

log = logging.getLogger("floatgate.acme")
ORDER_TIMEOUT = 120.0  # for the CA to validate and issue, once the order is placed
LOOK_EVERY = 5.0  # renewal requests are looked for this often
# What serves now: the configuration, its certificates, the directory its files are in
# (directory_ca) and the one holding acme/ (the account key).
Serving = Callable[[], tuple[ClusterConfig, TlsMaterial, Path, Path]]


class Outlet(Protocol):
    """Where an issued certificate goes, and where operators' renewal requests are."""

    async def store(self, name: str, pem: bytes, message: str) -> None:
        """Raise LeadershipLost when this node may no longer store (nothing stored)."""
        ...

    async def requested(self) -> set[str]: ...

    async def done(self, name: str) -> None: ...


@dataclass
class CertState:
    """What the orderer knows of one certificate (status page, metrics)."""

    attempts: Attempts = field(default_factory=Attempts)
    decision: Decision | None = None
    ordering: str | None = None  # the step an order in progress is at
    last_success: float | None = None
    last_failure: str | None = None
    failures: Counter[str] = field(default_factory=Counter)  # by kind, since start
    issued: Served | None = None  # the newest this orderer stored (until it serves)


class Orderer:
    def __init__(
        self,
        outlet: Outlet,
        serving: Serving,
        rng: random.Random | None = None,
        user_agent: str = "floatgate",
    ) -> None:
        """``serving``: what serves now (see Serving)."""
        self.outlet = outlet
        self.serving = serving
        self.rng = rng or random.Random()
        self.user_agent = user_agent
        self.states: dict[str, CertState] = {}
        self.wake = asyncio.Event()

    async def run(self) -> None:
        log.info("ACME orderer running on this node")
        while True:
            self.wake.clear()
            try:
                at = await self.pass_once()
            except LeadershipLost as exc:
                log.warning("ACME orderer stops: %s", exc)
                return
            delay = max(0.0, min(at - time.time(), LOOK_EVERY))
            try:
                async with asyncio.timeout(delay):
                    await self.wake.wait()
            except TimeoutError:
                pass

    async def pass_once(self) -> float:
        """Look at every certificate once, ordering what is due; returns when the next
        one is due (epoch seconds)."""
        config, tls, certs_dir, root = self.serving()
        try:
            requested = await self.outlet.requested()
        except Exception as exc:  # etcd away: decide without requests
            log.debug("ACME renewal requests: %s", exc)
            requested = set()
        wanted = {n: s.acme for n, s in config.certificates.items() if s.acme is not None}
        for gone in set(self.states) - set(wanted):
            del self.states[gone]
        next_at = time.time() + 3600.0
        for name, spec in wanted.items():
            state = self.states.setdefault(name, CertState())
            served = _newest(_served(tls.certs.get(name)), state.issued)
            now = time.time()
            decision = decide(spec, served, state.attempts, now, name in requested)
            state.decision = decision
            if decision.order:
                log.info("ACME: ordering %s: %s", name, decision.reason)
                await self._order(name, spec, certs_dir, root, name in requested)
                decision = state.decision
            next_at = min(next_at, decision.at if decision is not None else now)
        return next_at

    async def _order(
        self, name: str, spec: AcmeSpec, certs_dir: Path, root: Path, requested: bool
    ) -> None:
        state = self.states[name]
        now = time.time()
        try:
            account_key = (root / ACCOUNT_KEY_FILE).read_bytes()
        except OSError as exc:
            self._failed(name, AcmeError("refused", f"no account key ({exc.strerror}): push "
                                          "the configuration again (floatgate push)"))  # fmt: skip
            return
        ca = certs_dir / spec.directory_ca if spec.directory_ca else None
        loop = asyncio.get_running_loop()

        def progress(step: str) -> None:
            loop.call_soon_threadsafe(setattr, state, "ordering", step)

        state.ordering = "starting"
        try:
            key = new_key_pem(spec.key_type)
            chain = await asyncio.to_thread(order, spec, account_key, key, ca, ORDER_TIMEOUT,
                                            progress, self.user_agent)  # fmt: skip
            pem = chain + key
            leaf = x509.load_pem_x509_certificates(chain)[0]
            expires = leaf.not_valid_after_utc
            verb = "issued" if state.issued is None and not requested else "renewed"
            state.ordering = "storing"
            try:
                await self.outlet.store(name, pem, f"acme: {verb} {name} (expires "
                                                   f"{expires:%Y-%m-%d %H:%M} UTC)")  # fmt: skip
            except LeadershipLost:
                raise
            except Exception as exc:
                raise AcmeError("publish", f"issued, but not stored: {exc}") from exc
        except AcmeError as exc:
            self._failed(name, exc)
            return
        except LeadershipLost:
            raise
        except Exception as exc:  # a bug here must not end the orderer: back off, say so
            log.exception("ACME: ordering %s failed unexpectedly", name)
            self._failed(name, AcmeError("refused", f"internal error: {exc!r}"))
            return
        finally:
            state.ordering = None
            if requested:  # answered, well or not: a failed request is not retried at once
                await self._request_done(name)
        state.attempts = Attempts()
        state.last_success = time.time()
        state.issued = Served(expires.timestamp(), frozenset(spec.domains), spec.key_type, False,
                              leaf.not_valid_before_utc.timestamp())  # fmt: skip
        state.decision = decide(spec, state.issued, state.attempts, time.time(), False)
        log.info("ACME: %s %s in %.1fs (expires %s)", name, verb, time.time() - now,
                 expires.isoformat(), extra={"event": "acme", "certificate": name})  # fmt: skip

    async def _request_done(self, name: str) -> None:
        try:
            await self.outlet.done(name)
        except LeadershipLost:
            pass  # the next active sees the request and orders
        except Exception as exc:
            log.warning("ACME: the renewal request for %s stays: %s", name, exc)

    def _failed(self, name: str, exc: AcmeError) -> None:
        state = self.states[name]
        now = time.time()
        state.failures[exc.kind] += 1
        state.last_failure = f"{exc.kind}: {exc}"
        state.attempts = failed(state.attempts, exc.kind, now, self.rng, exc.retry_after)
        state.decision = Decision(False, state.attempts.retry_at,
                                  f"attempt failed ({exc.kind}): {exc}")  # fmt: skip
        log.error("ACME: %s not ordered (%s): %s; the current certificate keeps serving, next "
                  "attempt in %.0fs", name, exc.kind, exc, state.attempts.retry_at - now,
                  extra={"event": "acme", "certificate": name})  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {name: {
            "next": s.decision.reason if s.decision else None,
            "next_at": s.decision.at if s.decision else None,
            "ordering": s.ordering,
            "last_success": s.last_success,
            "last_failure": s.last_failure,
            "consecutive_failures": s.attempts.failures,
            "failures": dict(s.failures),
        } for name, s in sorted(self.states.items())}  # fmt: skip


def _served(cert: CertFile | None) -> Served | None:
    if cert is None:
        return None
    leaf = cert.leaf
    return Served(cert.not_after.timestamp(), frozenset(cert.names), key_type_of(leaf),
                  is_placeholder(leaf), leaf.not_valid_before_utc.timestamp())  # fmt: skip


def _newest(served: Served | None, issued: Served | None) -> Served | None:
    """What serves, or what this orderer stored and the node has not applied yet."""
    if issued is None:
        return served
    if served is None or served.placeholder or served.not_after < issued.not_after:
        return issued
    return served
