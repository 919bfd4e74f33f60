"""TLS for the admin API (``admin.tls`` in node.yaml): the listener's server context, the
context a node or the CLI uses to talk to other nodes' admin APIs, and the checks that
let ``floatgate check`` name a file that cannot be used.

This module imports nothing from ``node.config`` at run time, so the node.yaml reader
can use it."""

from __future__ import annotations

import ssl
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from node.tls.errors import CertificateError

if TYPE_CHECKING:
    from node.config.model import AdminTls

_PEM_MARKERS = MappingProxyType({"cert": "-----BEGIN CERTIFICATE-----",
                                 "key": "PRIVATE KEY-----",
                                 "ca": "-----BEGIN CERTIFICATE-----"})  # fmt: skip


def _no_password() -> bytes:
    """For load_cert_chain: an encrypted key fails instead of prompting on a terminal."""
    return b""


def admin_tls_problems(tls: AdminTls) -> list[tuple[str, str]]:
    """``(key path, message)`` for each admin.tls file that cannot be used: unreadable,
    not PEM, a key that does not match the certificate, a CA file with no usable CA."""
    problems: list[tuple[str, str]] = []
    for key, path in (("cert", tls.cert), ("key", tls.key), ("ca", tls.ca)):
        if path is None:
            continue
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            problems.append((f"admin.tls.{key}", f"cannot read {path}: {exc.strerror or exc}"))
            continue
        if _PEM_MARKERS[key] not in text:
            what = "PEM private key" if key == "key" else "PEM certificate"
            problems.append((f"admin.tls.{key}", f"{path} holds no {what}"))
    if problems:
        return problems
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key, password=_no_password)
    except (ssl.SSLError, OSError) as exc:
        problems.append(("admin.tls.key", f"{tls.key} cannot be used with the certificate in "
                                          f"{tls.cert} ({_reason(exc)})"))  # fmt: skip
    if tls.ca is not None:
        try:
            context.load_verify_locations(cafile=tls.ca)
        except (ssl.SSLError, OSError) as exc:
            problems.append(("admin.tls.ca", f"{tls.ca} is not a usable CA file ({_reason(exc)})"))
    return problems


def admin_server_context(tls: AdminTls) -> ssl.SSLContext:
    """HTTPS for the admin listener; client certificates per ``verify`` (none,
    optional: checked when one is presented, required: the handshake fails without)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(tls.cert, tls.key, password=_no_password)
        if tls.verify != "none":
            if tls.ca is None:
                raise CertificateError(f"admin.tls.verify: {tls.verify} needs admin.tls.ca")
            context.load_verify_locations(cafile=tls.ca)
            context.verify_mode = (
                ssl.CERT_REQUIRED if tls.verify == "required" else ssl.CERT_OPTIONAL
            )
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(f"admin.tls: cannot load {tls.cert} / {tls.key} / {tls.ca}: "
                               f"{_reason(exc)}") from exc  # fmt: skip
    return context


def admin_client_context(tls: AdminTls | None) -> ssl.SSLContext:
    """For talking to admin APIs over HTTPS: server certificates verified against
    ``admin.tls.ca`` (the system's trust store without one) and host names checked;
    this node's certificate presented as its client certificate."""
    try:
        context = ssl.create_default_context(cafile=tls.ca if tls is not None else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if tls is not None:
            context.load_cert_chain(tls.cert, tls.key, password=_no_password)
    except (ssl.SSLError, OSError) as exc:
        assert tls is not None  # the system's trust store does not fail to load
        raise CertificateError(f"admin.tls: cannot load {tls.cert} / {tls.key} / {tls.ca}: "
                               f"{_reason(exc)}") from exc  # fmt: skip
    return context


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
