"""Certificate files: HAProxy-style PEM files (leaf + chain + key in one file, or
separate certificate and key files), loaded and checked with ``cryptography``.

Checks: the key matches the leaf; the chain is ordered, each certificate signed by the
next; nothing expired or not yet valid (under 14 days left is a warning); the leaf has
a subjectAltName. Errors name the file and the problem.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from node.tls.errors import CertificateError

EXPIRY_WARNING = datetime.timedelta(days=14)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class CertFile:
    source: str
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # intermediates, in order, after the leaf
    key_pem: bytes
    names: tuple[str, ...]  # DNS names from the SAN (lower-case, may start with "*.")
    warnings: tuple[str, ...] = field(default=())

    @property
    def subject(self) -> str:
        return describe(self.leaf)

    @property
    def sha256(self) -> str:
        return fingerprint(self.leaf)

    @property
    def not_after(self) -> datetime.datetime:
        return self.leaf.not_valid_after_utc

    def pem(self) -> bytes:
        """Leaf, chain and key, as one PEM (what ssl.load_cert_chain reads)."""
        certs = b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.leaf, *self.chain)
        )
        return certs + self.key_pem


def describe(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return f"CN={names[0].value!s}"
    return cert.subject.rfc4514_string() or "(empty subject)"


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_cert_file(
    path: str | Path,
    key_path: str | Path | None = None,
    now: datetime.datetime | None = None,
    require_san: bool = True,
) -> CertFile:
    """Load and check a certificate file; ``key_path`` when the key is in a file of its own.
    ``require_san``: a certificate floatgate serves needs DNS names; a client
    certificate it presents to backends does not."""
    source = str(path)
    data = _read(path)
    key_data = _read(key_path) if key_path is not None else data
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(f"{source}: no readable PEM certificate ({exc})") from exc
    key = _load_key(key_data, str(key_path or path))
    moment = now or datetime.datetime.now(datetime.UTC)
    return check_cert_file(source, certs, key, moment, require_san)


def check_cert_file(
    source: str,
    certs: list[x509.Certificate],
    key: PrivateKey,
    now: datetime.datetime,
    require_san: bool = True,
) -> CertFile:
    leaf, chain = certs[0], certs[1:]
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise CertificateError(f"{source}: key does not match certificate {describe(leaf)}")
    for index, (child, issuer) in enumerate(itertools.pairwise(certs)):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateError(
                f"{source}: chain out of order: certificate {index + 2} ({describe(issuer)}) "
                f"did not sign certificate {index + 1} ({describe(child)})"
            ) from exc
    warnings = []
    for cert in certs:
        if cert.not_valid_after_utc <= now:
            raise CertificateError(
                f"{source}: certificate {describe(cert)} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )
        if cert.not_valid_before_utc > now:
            raise CertificateError(
                f"{source}: certificate {describe(cert)} is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        if cert.not_valid_after_utc - now < EXPIRY_WARNING:
            days = (cert.not_valid_after_utc - now).days
            warnings.append(f"{source}: certificate {describe(cert)} expires in {days} day(s)")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if require_san and not names:
        raise CertificateError(f"{source}: certificate {describe(leaf)} has no subjectAltName")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return CertFile(source, leaf, tuple(chain), key_pem, names, tuple(warnings))


def load_ca(path: str | Path) -> list[x509.Certificate]:
    """A CA file: one or more certificates, each checked for validity."""
    try:
        certs = x509.load_pem_x509_certificates(_read(path))
    except ValueError as exc:
        raise CertificateError(f"{path}: no readable PEM certificate ({exc})") from exc
    return certs


def load_crl(
    path: str | Path, now: datetime.datetime | None = None
) -> x509.CertificateRevocationList:
    try:
        crl = x509.load_pem_x509_crl(_read(path))
    except ValueError as exc:
        raise CertificateError(f"{path}: not a PEM CRL ({exc})") from exc
    moment = now or datetime.datetime.now(datetime.UTC)
    if crl.next_update_utc is not None and crl.next_update_utc < moment:
        raise CertificateError(
            f"{path}: CRL is stale (next update was due {crl.next_update_utc:%Y-%m-%d %H:%M} UTC)"
        )
    return crl


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _load_key(data: bytes, source: str) -> PrivateKey:
    for block in _pem_blocks(data):
        if b"PRIVATE KEY-----" in block.split(b"\n", 1)[0]:
            try:
                key = serialization.load_pem_private_key(block, password=None)
            except (ValueError, TypeError) as exc:
                raise CertificateError(f"{source}: unreadable private key ({exc})") from exc
            if not isinstance(
                key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
            ):
                raise CertificateError(f"{source}: unsupported key type {type(key).__name__}")
            return key
    raise CertificateError(f"{source}: no private key found (PEM 'PRIVATE KEY' block)")


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN "):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith(b"-----END "):
                blocks.append(b"".join(current))
                current = []
    return blocks


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
