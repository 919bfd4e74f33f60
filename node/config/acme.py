"""``certificates.<name>.acme`` in cluster.yaml: a certificate that floatgate orders
from an ACME CA (Let's Encrypt, a private step-ca, Pebble) and renews by itself.

Parsed with the document's :class:`Reader` (every error collected), and checked
against the frontends: http-01 is answered on a plain HTTP frontend on port 80 that
the CA reaches through the VIP (or, on a standalone node, any address)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from node.config.model import AcmeEab, AcmeSpec, CertificateSource, FrontendConfig, VipConfig
from node.config.reader import Reader

ACME_DIR = "acme"  # where issued certificates and the account key live, in a bundle
KEYS = {"directory", "email", "domains", "challenge", "key_type", "renew_before",
        "directory_ca", "eab"}  # fmt: skip
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s:,<>]+@[^@\s:,<>]+\.[^@\s:,<>]+$")
_URL = re.compile(
    r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s]*)?$|^https://\[[0-9a-fA-F:]+\](:\d{1,5})?(/[^\s]*)?$"
)
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
_MAX_DOMAINS = 100  # Let's Encrypt's limit of names per certificate
_MIN_RENEW = 3600.0


def issued_file(name: str) -> str:
    """The bundle file of certificate ``name`` once issued: chain and key, sealed."""
    return f"{ACME_DIR}/{name}.pem"


def parse_acme(r: Reader, name: str, value: Any) -> CertificateSource:
    path = f"certificates.{name}.acme"
    m = r.mapping(value, path, KEYS, {"directory", "domains"})
    directory = r.string(m, "directory", path, kind="https URL")
    if "directory" in m and isinstance(m["directory"], str) and not _URL.match(directory):
        r.error(f"{path}.directory", f"{directory!r} is not an https:// URL (the CA's "
                "directory, e.g. https://acme-v02.api.letsencrypt.org/directory)")  # fmt: skip
    email = r.string(m, "email", path, kind="e-mail address") or None
    if email is not None and not _EMAIL.match(email):
        r.error(f"{path}.email", f"{email!r} is not an e-mail address")
    r.fact(path, "domains", "list of DNS names")
    domains = _domains(r, m.get("domains"), f"{path}.domains")
    if m.get("challenge") == "tls-alpn-01":
        r.error(f"{path}.challenge", "tls-alpn-01 is not implemented: use http-01 (a "
                "plain HTTP frontend on port 80 answers it)")  # fmt: skip
        m = {k: v for k, v in m.items() if k != "challenge"}
    r.choice(m, "challenge", path, "http-01", ("http-01",))
    key_type = r.choice(m, "key_type", path, "ecdsa-p256", ("ecdsa-p256", "rsa-2048"))
    renew = r.duration(m, "renew_before", path, 30 * 86400.0, low=_MIN_RENEW)
    ca = r.string(m, "directory_ca", path, kind="file name") or None
    spec = AcmeSpec(
        directory=directory,
        domains=domains,
        email=email,
        key_type="rsa-2048" if key_type == "rsa-2048" else "ecdsa-p256",
        renew_before=renew,
        directory_ca=ca,
        eab=_eab(r, m.get("eab"), f"{path}.eab") if "eab" in m else None,
    )
    return CertificateSource(cert=issued_file(name), acme=spec)


def _domains(r: Reader, value: Any, path: str) -> tuple[str, ...]:
    found: list[str] = []
    for item_path, item in r.items(value, path):
        if not isinstance(item, str):
            r.error(item_path, f"must be a DNS name, got {item!r}")
            continue
        domain = item.lower().rstrip(".")
        problem = domain_problem(domain)
        if problem:
            r.error(item_path, f"{item!r} {problem}")
        elif domain in found:
            r.error(item_path, f"{item!r} is listed twice")
        else:
            found.append(domain)
    if value is not None and isinstance(value, list) and not value:
        r.error(path, "needs at least one DNS name")
    if len(found) > _MAX_DOMAINS:
        r.error(path, f"{len(found)} names; a certificate holds at most {_MAX_DOMAINS}")
    return tuple(found)


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` (lower case) cannot be in an http-01 order, or None."""
    if domain.startswith("*."):
        return "is a wildcard: a CA validates wildcards only by dns-01, not http-01"
    try:
        ipaddress.ip_address(domain)
        return "is an IP address: list DNS names"
    except ValueError:
        pass
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        return "is not a DNS name (letters, digits and - in dot-separated labels)"
    return None


def _eab(r: Reader, value: Any, path: str) -> AcmeEab:
    m = r.mapping(value, path, {"kid", "hmac_key"}, {"kid", "hmac_key"})
    kid = r.string(m, "kid", path)
    key = r.string(m, "hmac_key", path, kind="base64url")
    if "hmac_key" in m and isinstance(m["hmac_key"], str) and not _B64URL.match(key):
        r.error(f"{path}.hmac_key", "is not base64url (the HMAC key as the CA gave it)")
    return AcmeEab(kid, key)


def check_challenge_frontends(
    r: Reader,
    certificates: Mapping[str, CertificateSource],
    frontends: Sequence[FrontendConfig],
    vip: VipConfig | None,
) -> None:
    """http-01 needs a plain HTTP frontend on port 80 that the CA reaches: bound to the
    VIP or to every address (a cluster), or to any address (a standalone node)."""
    ordered = [name for name, source in certificates.items() if source.acme is not None]
    if not ordered:
        return
    wildcard = {"0.0.0.0", "::", ""}
    answering = [
        f for f in frontends
        if f.mode == "http" and f.tls is None and f.bind.port == 80
        and (vip is None or f.bind.host in wildcard or f.bind.host == str(vip.address.ip))
    ]  # fmt: skip
    if answering:
        return
    where = f"the VIP {vip.address.ip} (or every address)" if vip is not None else "any address"
    for name in ordered:
        r.error(f"certificates.{name}.acme.challenge",
                f"http-01 needs a plain HTTP frontend bound to port 80 on {where}: the CA "
                "fetches http://<domain>/.well-known/acme-challenge/ there; add one (mode: "
                "http, no tls)")  # fmt: skip
