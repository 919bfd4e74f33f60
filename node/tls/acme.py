"""What the data plane and the loader need of ACME (pure crypto, no network):

- the account key (``acme/account.key``, sealed in bundles like every private key) and
  its JWK thumbprint, with which any node answers an http-01 challenge statelessly
  (RFC 8555 8.1/8.3: the answer is ``token + "." + thumbprint``), so the node that holds
  the VIP when the CA asks need not be the one that ordered;
- new certificate keys of the configured type;
- a self-signed placeholder served until the first certificate is issued.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from josepy import b64
from josepy.jwk import JWK

from node.tls.errors import CertificateError

ACCOUNT_KEY_FILE = "acme/account.key"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
PLACEHOLDER_ORG = "floatgate placeholder (no ACME certificate issued yet)"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # base64url, RFC 8555 8.1
_PEM_OPTIONS = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())  # fmt: skip

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key_pem(key_type: str) -> bytes:
    """A fresh private key (PEM, PKCS#8): ``rsa-2048`` or ``ecdsa-p256``."""
    key: PrivateKey
    if key_type == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(*_PEM_OPTIONS)


def new_account_key() -> bytes:
    """An account key: ECDSA P-256 (ES256), as certbot and Caddy use by default."""
    return new_key_pem("ecdsa-p256")


def ensure_account_key(root: Path) -> Path | None:
    """A standalone node's account key under ``root`` (mode 0600), created when missing;
    the path when it was created now (CertificateError when it cannot be written)."""
    path = root / ACCOUNT_KEY_FILE
    if path.exists():
        return None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as exc:
        why = f"cannot create the ACME account key: {exc.strerror}"
        raise CertificateError(f"{path}: {why}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(new_account_key())
    return path


def load_private_key(data: bytes, source: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"{source}: not a readable private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{source}: an ACME key is RSA or ECDSA")
    return key


def thumbprint(account_key_pem: bytes) -> str:
    """The JWK thumbprint (RFC 7638, SHA-256, base64url) of the account's public key."""
    key = load_private_key(account_key_pem, ACCOUNT_KEY_FILE)
    digest = JWK.load(key.private_bytes(*_PEM_OPTIONS)).public_key().thumbprint()
    return b64.b64encode(digest).decode()


def key_authorization(token: str, account_thumbprint: str) -> bytes | None:
    """The http-01 answer for ``token``, or None when it is not a token at all (such a
    path is answered 404: nothing a client sends is echoed back unless it is base64url)."""
    if not _TOKEN.match(token):
        return None
    return f"{token}.{account_thumbprint}".encode()


def placeholder(domains: tuple[str, ...], key_type: str) -> bytes:
    """A self-signed certificate + key (PEM) for ``domains``, valid seven days: what a
    TLS frontend serves until the CA has issued the real one (clients see an untrusted
    certificate, never a frontend that does not start)."""
    key = load_private_key(new_key_pem(key_type), "placeholder")
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, PLACEHOLDER_ORG),
                         x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(*_PEM_OPTIONS)


def is_placeholder(cert: x509.Certificate) -> bool:
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return cert.issuer == cert.subject and any(o.value == PLACEHOLDER_ORG for o in orgs)


def key_type_of(cert: x509.Certificate) -> str:
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return "ecdsa-p256" if public.curve.key_size == 256 else f"ecdsa-{public.curve.name}"
    return type(public).__name__
