"""A test PKI made with floatgate's own dev-CA code: root -> intermediate -> servers,
client certificates (valid, revoked, from another CA), a CRL, bad bundles."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from node.tls.devca import Issued, cert_pem, crl, issue, key_pem


@dataclass
class Pki:
    dir: Path
    root: Issued
    intermediate: Issued
    client: Issued
    revoked: Issued
    stranger: Issued  # a client certificate from a CA nobody trusts

    def path(self, name: str) -> str:
        return str(self.dir / name)


def make_pki(out: Path) -> Pki:
    out.mkdir(parents=True, exist_ok=True)
    root = issue("Test Root CA", None, ca=True, days=3650)
    intermediate = issue("Test Intermediate CA", root, ca=True, days=1000)
    app = issue("app.test", intermediate, names=("app.test", "*.app.test"))
    other = issue("other.test", intermediate, names=("other.test",), kind="rsa")
    client = issue("alice", root, client=True)
    revoked = issue("mallory", root, client=True)
    stranger_ca = issue("Stranger CA", None, ca=True)
    stranger = issue("eve", stranger_ca, client=True)
    expired = issue("old.test", intermediate, names=("old.test",),
                    not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30),
                    days=10)  # fmt: skip
    nosan = issue("nosan.test", intermediate)
    month_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    old_client = issue("old-alice", root, client=True, days=10, not_before=month_ago)
    files = {
        "ca.pem": cert_pem(root.cert),
        "app.pem": cert_pem(app.cert, intermediate.cert) + key_pem(app.key),
        "other.pem": cert_pem(other.cert, intermediate.cert) + key_pem(other.key),
        "other.crt": cert_pem(other.cert, intermediate.cert),
        "other.key": key_pem(other.key),
        "client.pem": cert_pem(client.cert) + key_pem(client.key),
        "revoked.pem": cert_pem(revoked.cert) + key_pem(revoked.key),
        "stranger.pem": cert_pem(stranger.cert) + key_pem(stranger.key),
        "crl.pem": crl(root, revoked=(revoked.cert,)),
        "expired.pem": cert_pem(expired.cert, intermediate.cert) + key_pem(expired.key),
        "nosan.pem": cert_pem(nosan.cert, intermediate.cert) + key_pem(nosan.key),
        "expired-client.pem": cert_pem(old_client.cert) + key_pem(old_client.key),
        "mismatch.pem": cert_pem(app.cert, intermediate.cert) + key_pem(other.key),
        "disorder.pem": cert_pem(app.cert, root.cert, intermediate.cert) + key_pem(app.key),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return Pki(out, root, intermediate, client, revoked, stranger)
