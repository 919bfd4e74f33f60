"""How to reach etcd: endpoints, client TLS and user/password, and one aetcd client per
endpoint.

aetcd 1.0 opens plain gRPC channels only; :class:`TlsClient` is the same client with a
TLS channel (CA, optional client certificate for etcd's ``--client-cert-auth``).
User/password authentication is aetcd's own (a token fetched at connect time); a failed
call replaces the client, which also fetches a fresh token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

from election.errors import ElectionError, EtcdUnavailable

# What a failed etcd call raises (aetcd's errors, timeouts, sockets): one tuple for every
# caller that must survive etcd being away.
ETCD_ERRORS = (TimeoutError, aetcd.ClientError, OSError)

# gRPC shares subchannels between channels and backs off reconnecting (up to minutes):
# a fresh client made after a failure would inherit that backoff and fail at once for
# a while after etcd is back. Each channel gets its own subchannel and short backoff
# between attempts (initial/max). gRPC also takes min_reconnect_backoff as the deadline
# of one connection attempt (TCP + HTTP/2 SETTINGS): 100 ms there meant no connection
# ever completed over a 200 ms round trip. 2 s lets a slow link connect; the election's
# own request timeouts still end a call much sooner.
CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 2000),
)


@dataclass(frozen=True, slots=True)
class EtcdTlsFiles:
    ca: bytes  # PEM
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def load(cls, ca: str, cert: str | None = None, key: str | None = None) -> EtcdTlsFiles:
        try:
            return cls(
                Path(ca).read_bytes(),
                Path(cert).read_bytes() if cert else None,
                Path(key).read_bytes() if key else None,
            )
        except OSError as exc:
            raise ElectionError(f"etcd TLS file: {exc.strerror}: {exc.filename}") from exc


@dataclass(frozen=True, slots=True)
class EtcdAccess:
    endpoints: tuple[tuple[str, int], ...]
    tls: EtcdTlsFiles | None = None
    user: str | None = None
    password: str | None = None

    def client(self, index: int, timeout: float) -> aetcd.Client:
        host, port = self.endpoints[index % len(self.endpoints)]
        if self.tls is None:
            return aetcd.Client(host=host, port=port, username=self.user,
                                password=self.password, timeout=timeout,
                                options=dict(CHANNEL_OPTIONS))  # fmt: skip
        return TlsClient(host, port, self.tls, self.user, self.password, timeout)

    async def first_answer(
        self, what: str, work: Callable[[aetcd.Client], Awaitable[Any]], timeout: float
    ) -> Any:
        """``work(client)`` on each endpoint in turn (a fresh client each) until one
        answers; EtcdUnavailable naming every endpoint's failure otherwise."""
        failures = []
        for index, (host, port) in enumerate(self.endpoints):
            client = self.client(index, timeout)
            try:
                async with asyncio.timeout(timeout):
                    return await work(client)
            except ETCD_ERRORS as exc:
                failures.append(f"{host}:{port}: {type(exc).__name__} {exc}".strip())
            finally:
                await close_client(client)
        raise EtcdUnavailable(f"{what}: no etcd endpoint answered ({'; '.join(failures)})")


async def close_client(client: aetcd.Client, timeout: float = 2.0) -> None:
    """Close an aetcd client without ever hanging the caller: aetcd's close waits for
    its watch stream to shut down, which a dead or frozen etcd can hold up."""
    try:
        async with asyncio.timeout(timeout):
            await client.close()
    except ETCD_ERRORS:
        pass


class TlsClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client over a TLS channel (``connect`` mirrors aetcd's own, secure)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: EtcdTlsFiles,
        user: str | None,
        password: str | None,
        timeout: float,
    ) -> None:
        super().__init__(host=host, port=port, username=user, password=password,
                         timeout=timeout, options=dict(CHANNEL_OPTIONS))  # fmt: skip
        self._credentials = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        try:
            self.channel = rpc.secure_channel(
                f"{self._host}:{self._port}", self._credentials, options=self._options.items()
            )
            if self._username is not None and self._password is not None:
                self.auth_stub = rpc.AuthStub(self.channel)
                reply = await self.auth_stub.Authenticate(
                    rpc.AuthenticateRequest(name=self._username, password=self._password),
                    timeout=self._timeout,
                )
                self.metadata = (("token", reply.token),)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(
                rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        except grpc.aio.AioRpcError as exc:
            raise aetcd.ClientError(f"{exc.code().name}: {exc.details()}") from exc
