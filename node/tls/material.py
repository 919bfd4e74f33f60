"""Everything TLS a configuration names, loaded and checked before it is applied.

``load_tls`` reads every certificate, CA and CRL in ``cluster.yaml`` (relative paths are
resolved against the certificates directory), builds one server context per frontend
certificate, and returns per-frontend runtimes. Any problem anywhere raises
:class:`TlsConfigError` listing all of them, so a bad file changes nothing.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.config.model import CertificateSource, ClusterConfig, FrontendTls
from node.tls.acme import ACCOUNT_KEY_FILE, load_private_key, placeholder, thumbprint
from node.tls.certfile import CertFile, check_cert_file, load_ca, load_cert_file, load_crl
from node.tls.context import ClientAuth, SniSelector, client_context, server_context
from node.tls.errors import CertificateError
from node.tls.tickets import TICKET_KEY_FILE, TicketKeyError, parse_key_file, set_ticket_key


class TlsConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class FrontendTlsRuntime:
    selector: SniSelector
    config: FrontendTls
    certs: tuple[CertFile, ...]
    auth: ClientAuth | None = None
    ticket_key: bytes | None = None  # shared by the cluster (bundle); None: per context

    def rotated(self) -> FrontendTlsRuntime:
        """Fresh contexts from the same material: OpenSSL gives each context new random
        session-ticket keys, so tickets issued before this point no longer resume."""
        return build_frontend_tls(self.config, self.certs, self.auth)

    @property
    def client_auth(self) -> bool:
        auth = self.config.client_auth
        return auth is not None and auth.verify != "none"


@dataclass(frozen=True)
class BackendTlsRuntime:
    context: ssl.SSLContext
    sni: str | None


@dataclass(frozen=True)
class TlsMaterial:
    frontends: dict[str, FrontendTlsRuntime]
    certs: dict[str, CertFile]
    warnings: tuple[str, ...]
    backends: dict[str, BackendTlsRuntime] = field(default_factory=dict)
    acme_thumbprint: str | None = None  # the ACME account's: answers http-01 challenges


def build_frontend_tls(
    config: FrontendTls,
    certs: tuple[CertFile, ...],
    auth: ClientAuth | None,
    ticket_key: bytes | None = None,
) -> FrontendTlsRuntime:
    contexts = [(b, server_context(b, config.policy, auth, config.alpn)) for b in certs]
    if ticket_key is not None:
        for _, context in contexts:
            set_ticket_key(context, ticket_key)  # TicketKeyError: the caller decides
    return FrontendTlsRuntime(SniSelector(contexts), config, certs, auth, ticket_key)


def load_tls(
    config: ClusterConfig,
    certs_dir: Path,
    now: datetime.datetime | None = None,
    acme_dir: Path | None = None,
) -> TlsMaterial:
    """``acme_dir``: where ``acme/`` (issued certificates, the account key) is, when not
    in ``certs_dir`` (a standalone node keeps it under its data_dir)."""
    errors: list[str] = []
    moment = now or datetime.datetime.now(datetime.UTC)

    def resolve(name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else certs_dir / path

    served = {name for f in config.frontends if f.tls for name in f.tls.certificates}
    certs: dict[str, CertFile] = {}
    warnings: list[str] = []
    acme_root = acme_dir or certs_dir
    for name, source in config.certificates.items():
        if source.acme is not None:
            certs[name] = _acme_cert(name, source, acme_root / source.cert, moment, warnings)
            continue
        try:
            key = resolve(source.key) if source.key else None
            certs[name] = load_cert_file(resolve(source.cert), key, moment, name in served)
        except CertificateError as exc:
            errors.append(f"certificates.{name}: {exc}")
    cas: dict[str, bytes] = {}
    for name, filename in config.client_cas.items():
        try:
            cas[name] = b"".join(
                c.public_bytes(serialization.Encoding.PEM) for c in load_ca(resolve(filename))
            )
        except CertificateError as exc:
            errors.append(f"client_cas.{name}: {exc}")
    crls: dict[str, bytes] = {}
    for name, filename in config.crls.items():
        try:
            crls[name] = load_crl(resolve(filename), moment).public_bytes(
                serialization.Encoding.PEM
            )
        except CertificateError as exc:
            errors.append(f"crls.{name}: {exc}")
    thumb = None
    if any(s.acme is not None for s in config.certificates.values()):
        try:
            thumb = thumbprint((acme_root / ACCOUNT_KEY_FILE).read_bytes())
        except FileNotFoundError:
            warnings.append("acme: no account key yet (floatgate push makes one; a "
                            "standalone node at its start): http-01 challenges are not "
                            "answered until then")  # fmt: skip
        except (OSError, CertificateError) as exc:
            errors.append(f"{acme_root / ACCOUNT_KEY_FILE}: {exc}")
    ticket_key = None
    ticket_file = certs_dir / TICKET_KEY_FILE
    if ticket_file.exists():
        try:
            ticket_key = parse_key_file(ticket_file.read_bytes())
        except (OSError, TicketKeyError) as exc:
            errors.append(f"{ticket_file}: {exc}")
    if errors:
        raise TlsConfigError(errors)
    frontends: dict[str, FrontendTlsRuntime] = {}
    for frontend in config.frontends:
        tls = frontend.tls
        if tls is None:
            continue
        auth = None
        if tls.client_auth is not None:
            crl = crls[tls.client_auth.crl] if tls.client_auth.crl else None
            auth = ClientAuth(tls.client_auth.verify, cas[tls.client_auth.ca], crl)
        chosen = tuple(certs[name] for name in tls.certificates)
        try:
            try:
                frontends[frontend.name] = build_frontend_tls(tls, chosen, auth, ticket_key)
            except TicketKeyError as exc:
                why = f"({exc}): sessions resume only on the issuing node"
                warnings.append(f"frontend {frontend.name}: shared ticket key not used {why}")
                frontends[frontend.name] = build_frontend_tls(tls, chosen, auth)
        except (OSError, ValueError) as exc:
            raise TlsConfigError([f"frontend {frontend.name}: TLS setup failed: {exc}"]) from exc
    backends: dict[str, BackendTlsRuntime] = {}
    for backend in config.backends:
        btls = backend.tls
        if btls is None:
            continue
        try:
            context = client_context(
                btls.verify == "required",
                cas[btls.ca] if btls.ca else None,
                certs[btls.client_certificate] if btls.client_certificate else None,
            )
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise TlsConfigError([f"backend {backend.name}: TLS setup failed: {exc}"]) from exc
        backends[backend.name] = BackendTlsRuntime(context, btls.sni)
    found = tuple(w for b in certs.values() for w in b.warnings) + tuple(warnings)
    return TlsMaterial(frontends, certs, found, backends, thumb)


def _acme_cert(
    name: str, source: CertificateSource, path: Path, now: datetime.datetime, warnings: list[str]
) -> CertFile:
    """What the CA issued for ``name``; until then (or once it expired), a self-signed
    placeholder for its domains, with a warning: a frontend always starts."""
    spec = source.acme
    assert spec is not None
    if path.exists():
        try:
            return load_cert_file(path, None, now)
        except CertificateError as exc:
            why = f"the issued certificate cannot serve ({exc})"
    else:
        why = "no certificate issued yet"
    warnings.append(f"certificates.{name}: {why}: serving a self-signed placeholder for "
                    f"{', '.join(spec.domains)} until {spec.directory} issues one")  # fmt: skip
    pem = placeholder(spec.domains, spec.key_type)
    certs = x509.load_pem_x509_certificates(pem)
    key = load_private_key(pem, f"certificates.{name}")
    made = check_cert_file(f"certificates.{name} (placeholder)", certs, key, now)
    return replace(made, warnings=())  # its short life is not news: the warning above is
