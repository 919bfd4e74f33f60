"""Server-side ``ssl.SSLContext`` objects: one per certificate, same policy, chosen by
SNI (exact names first, then wildcards, else the frontend's first certificate)."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from node.tls.certfile import CertFile
from node.tls.names import NameTable

Policy = Literal["intermediate", "modern"]
Verify = Literal["none", "optional", "required"]

# Mozilla "intermediate" (TLS 1.2 part; TLS 1.3 suites are OpenSSL's defaults, all AEAD).
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)  # fmt: skip


@dataclass(frozen=True)
class ClientAuth:
    verify: Verify
    ca_pem: bytes
    crl_pem: bytes | None = None


def server_context(
    cert: CertFile,
    policy: Policy,
    client_auth: ClientAuth | None,
    alpn: Sequence[str] = ("http/1.1",),
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if policy == "modern" else ssl.TLSVersion.TLSv1_2
    )
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(alpn))  # the server's order of preference wins
    _load_chain(context, cert.pem())
    if client_auth is not None and client_auth.verify != "none":
        context.verify_mode = (
            ssl.CERT_REQUIRED if client_auth.verify == "required" else ssl.CERT_OPTIONAL
        )
        context.load_verify_locations(cadata=client_auth.ca_pem.decode("ascii"))
        if client_auth.crl_pem is not None:
            _load_crl(context, client_auth.crl_pem)
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def _load_chain(context: ssl.SSLContext, pem: bytes) -> None:
    """ssl reads keys only from files: write to a private temporary file, load, delete."""
    fd, path = tempfile.mkstemp(prefix="floatgate-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.close(fd)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def _load_crl(context: ssl.SSLContext, pem: bytes) -> None:
    fd, path = tempfile.mkstemp(prefix="floatgate-crl-", suffix=".pem")
    try:
        os.write(fd, pem)
        os.close(fd)
        context.load_verify_locations(cafile=path)
    finally:
        os.unlink(path)


def client_context(
    verify: bool, ca_pem: bytes | None, certificate: CertFile | None
) -> ssl.SSLContext:
    """For connections to backends: verify against ``ca_pem`` (or the system store)."""
    context = ssl.create_default_context(cadata=ca_pem.decode("ascii") if ca_pem else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certificate is not None:
        _load_chain(context, certificate.pem())
    return context


class SniSelector:
    """Picks the context whose certificate covers the requested server name."""

    def __init__(self, entries: Sequence[tuple[CertFile, ssl.SSLContext]]) -> None:
        self.default = entries[0][1]
        self._names = NameTable((name, context) for cert, context in entries for name in cert.names)
        if len(entries) > 1:
            for _, context in entries:
                context.sni_callback = self._select

    def choose(self, server_name: str | None) -> ssl.SSLContext:
        return self._names.lookup(server_name) or self.default

    def _select(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        chosen = self.choose(server_name)
        if chosen is not context:
            ssl_object.context = chosen
