"""What a TLS client proved about itself, as headers for the backend."""

from __future__ import annotations

import hashlib
import ssl
import urllib.parse
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """What a TLS client proved (a verified certificate), or nothing."""

    verified: bool = False
    subject: str = ""
    sans: tuple[str, ...] = ()
    sha256: str = ""


def client_identity(ssl_object: ssl.SSLObject | None) -> ClientIdentity:
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return ClientIdentity()
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(str(v) for v in san.get_values_for_type(x509.DNSName))
        sans += tuple(str(v) for v in san.get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        sans = ()
    return ClientIdentity(
        True, cert.subject.rfc4514_string(), sans, hashlib.sha256(der).hexdigest()
    )


def client_cert_headers(
    ssl_object: ssl.SSLObject | None, forward_pem: bool
) -> list[tuple[bytes, bytes]]:
    """X-SSL-Client-Verify (SUCCESS/NONE), -Subject, -Issuer, -SHA256 and optionally
    -Cert (URL-encoded PEM). A certificate is only ever present here after the
    handshake verified it (an invalid one fails the handshake)."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return [(b"X-SSL-Client-Verify", b"NONE")]
    cert = x509.load_der_x509_certificate(der)
    headers = [
        (b"X-SSL-Client-Verify", b"SUCCESS"),
        (b"X-SSL-Client-Subject", _header_text(cert.subject.rfc4514_string())),
        (b"X-SSL-Client-Issuer", _header_text(cert.issuer.rfc4514_string())),
        (b"X-SSL-Client-SHA256", hashlib.sha256(der).hexdigest().encode()),
    ]
    if forward_pem:
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        headers.append((b"X-SSL-Client-Cert", urllib.parse.quote(pem, safe="").encode()))
    return headers


def _header_text(text: str) -> bytes:
    """Subjects may hold any Unicode; headers carry printable ASCII (others escaped)."""
    return text.encode("ascii", "backslashreplace").replace(b"\r", b"").replace(b"\n", b"")
