"""``floatgate certs dev-ca``: a private CA for development and tests.

Writes into DIR:
  ca.pem, ca.key              root CA (also the client CA: trust it in ``client_cas``)
  server.pem                  leaf + intermediate + key for the given names (HAProxy style)
  client.pem                  client certificate + key, signed by the root
  crl.pem                     an empty CRL from the root (valid 30 days)
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["ecdsa", "rsa"]
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: Key


def new_key(kind: KeyKind = "ecdsa") -> Key:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "floatgate dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue(
    common_name: str,
    issuer: Issued | None,
    *,
    ca: bool = False,
    names: tuple[str, ...] = (),
    client: bool = False,
    peer: bool = False,
    kind: KeyKind = "ecdsa",
    days: int = 365,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """Issue one certificate (self-signed when ``issuer`` is None)."""
    key = new_key(kind)
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )  # fmt: skip
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        if peer:  # an etcd member: server to clients, both sides to its peers
            usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(n) for n in names]), critical=False
        )
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def _san(name: str) -> x509.GeneralName:
    """An IP address SAN for an address (etcd endpoints are often IPs), else DNS."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def crl(issuer: Issued, revoked: tuple[x509.Certificate, ...] = (), days: float = 30) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=days))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1))
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_dev_ca(out: Path, names: tuple[str, ...], kind: KeyKind = "ecdsa") -> dict[str, Path]:
    """Create the files listed in the module docstring; returns name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    root = issue("floatgate dev root CA", None, ca=True, kind=kind, days=3650)
    intermediate = issue("floatgate dev intermediate CA", root, ca=True, kind=kind, days=1825)
    server = issue(names[0], intermediate, names=names, kind=kind)
    client = issue("floatgate dev client", root, client=True, kind=kind)
    files = {
        "ca.pem": cert_pem(root.cert),
        "ca.key": key_pem(root.key),
        "server.pem": cert_pem(server.cert, intermediate.cert) + key_pem(server.key),
        "client.pem": cert_pem(client.cert) + key_pem(client.key),
        "crl.pem": crl(root),
    }
    paths = {}
    for filename, data in files.items():
        path = out / filename
        path.write_bytes(data)
        if filename.endswith((".key", "server.pem", "client.pem")):
            path.chmod(0o600)
        paths[filename] = path
    return paths


def write_etcd_pki(
    out: Path,
    members: dict[str, str],
    clients: tuple[str, ...],
    admins: dict[str, str] | None = None,
) -> list[Path]:
    """An etcd CA, one certificate per member (its address as SAN; server and client
    use, for clients and peers), one client certificate per name, and for each node in
    ``admins`` an admin API certificate (its address and name as SANs; server use for
    its admin listener, client use towards the other nodes' listeners): ca.pem,
    <member>.pem/.key, <client>-client.pem/.key, <node>-admin.pem/.key. Keys are 0600."""
    out.mkdir(parents=True, exist_ok=True)
    ca = issue("floatgate etcd CA", None, ca=True, days=3650)
    files = {"ca.pem": cert_pem(ca.cert), "ca.key": key_pem(ca.key)}
    for name, address in members.items():
        member = issue(f"etcd {name}", ca, names=(address, name), peer=True, days=1825)
        files[f"{name}.pem"], files[f"{name}.key"] = cert_pem(member.cert), key_pem(member.key)
    for name in clients:
        client = issue(name, ca, client=True, days=1825)
        files[f"{name}-client.pem"] = cert_pem(client.cert)
        files[f"{name}-client.key"] = key_pem(client.key)
    for name, address in (admins or {}).items():
        admin = issue(f"floatgate admin {name}", ca, names=(address, name), peer=True, days=1825)
        files[f"{name}-admin.pem"], files[f"{name}-admin.key"] = (cert_pem(admin.cert),
                                                                  key_pem(admin.key))  # fmt: skip
    paths = []
    for filename, data in files.items():
        path = out / filename
        path.write_bytes(data)
        if filename.endswith(".key"):
            path.chmod(0o600)
        paths.append(path)
    return paths
