"""One order through certbot's ``acme`` library (JWS, nonces, polling are its job):
account (found again by its key, or created, with EAB when the CA asks), new order,
http-01 answered by every node's data plane statelessly, finalize, the full chain.

Blocking (``requests``): the orderer runs it in a thread. Every failure is an
:class:`AcmeError` of one kind, with the CA's own words where it gave any.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from acme import challenges, crypto_util, errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from josepy.jwa import ES256, RS256
from josepy.jwk import JWK, JWKEC

from node.acme.errors import AcmeError, FailureKind
from node.config.model import AcmeSpec
from node.tls.acme import key_authorization, thumbprint

Progress = Callable[[str], None]
_RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"


def order(
    spec: AcmeSpec,
    account_key: bytes,
    cert_key: bytes,
    directory_ca: Path | None,
    timeout: float,
    progress: Progress,
    user_agent: str = "floatgate",
) -> bytes:
    """The issued certificate and its chain (PEM, leaf first) for ``cert_key``."""
    with _classified(spec, timeout):
        jwk = JWK.load(account_key)
        net = ClientNetwork(jwk, alg=ES256 if isinstance(jwk, JWKEC) else RS256,
                            user_agent=user_agent, timeout=int(min(timeout, 30)))  # fmt: skip
        if directory_ca is not None:
            # requests takes a CA file where the library's annotation says bool
            setattr(net, "verify_ssl", str(directory_ca))  # noqa: B010
        progress(f"directory {spec.directory}")
        directory = ClientV2.get_directory(spec.directory, net)
        client = ClientV2(directory, net)
        _account(client, net, spec, jwk, directory)
        progress(f"ordering {', '.join(spec.domains)}")
        orderr = client.new_order(crypto_util.make_csr(cert_key, list(spec.domains)))
        mine = thumbprint(account_key)
        for authzr in orderr.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue  # validated recently for this account (the CA reuses authorizations)
            found = [c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)]
            if not found:
                raise AcmeError("refused", f"{authzr.body.identifier.value}: the CA offers no "
                                "http-01 challenge")  # fmt: skip
            challb = found[0]
            response, validation = challb.response_and_validation(jwk)
            if validation.encode() != key_authorization(challb.chall.encode("token"), mine):
                raise AcmeError("refused", "the CA's token is not one the data plane answers")
            client.answer_challenge(challb, response)
            progress(f"http-01 for {authzr.body.identifier.value} answered")
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
        done = client.poll_and_finalize(orderr, deadline)
        chain = done.fullchain_pem.encode()
        _check_chain(chain, spec)
        progress("issued")
        return chain
    raise AssertionError("unreachable")  # (_classified raises; mypy cannot see it)


@contextlib.contextmanager
def _classified(spec: AcmeSpec, timeout: float) -> Iterator[None]:
    """Every failure of an order as an AcmeError of one kind."""
    try:
        yield
    except AcmeError:
        raise
    except errors.ValidationError as exc:
        raise AcmeError("challenge_failed", _validation_detail(exc)) from exc
    except errors.TimeoutError as exc:
        raise AcmeError("timeout", f"the order was not valid after {timeout:g}s") from exc
    except messages.Error as exc:
        kind: FailureKind = "rate_limited" if exc.typ == _RATE_LIMITED else "refused"
        raise AcmeError(kind, f"the CA answered: {exc.detail or exc.typ}") from exc
    except requests.exceptions.SSLError as exc:
        raise AcmeError("unreachable", f"{spec.directory}: TLS failed ({_first_line(exc)}): "
                        "is directory_ca the CA that signed the directory's "
                        "certificate?") from exc  # fmt: skip
    except (requests.exceptions.RequestException, OSError) as exc:
        raise AcmeError("unreachable", f"{spec.directory}: {_first_line(exc)}") from exc
    except errors.Error as exc:
        raise AcmeError("refused", f"{type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # a body that is not what RFC 8555 says
        raise AcmeError("refused", f"unexpected answer from the CA: {exc}") from exc


def _account(
    client: ClientV2, net: ClientNetwork, spec: AcmeSpec, jwk: JWK, directory: messages.Directory
) -> None:
    """The account of this key: created, or found again (a CA answers a known key with
    its account's URL)."""
    eab = None
    if spec.eab is not None:
        eab = messages.ExternalAccountBinding.from_data(jwk.public_key(), spec.eab.kid,
                                                        spec.eab.hmac_key, directory)  # fmt: skip
    elif client.external_account_required():
        raise AcmeError("refused", f"{spec.directory} requires an external account binding: "
                        "add acme.eab {kid, hmac_key} as the CA gave them")  # fmt: skip
    registration = messages.NewRegistration.from_data(
        email=spec.email, terms_of_service_agreed=True, external_account_binding=eab
    )
    try:
        client.new_account(registration)
    except errors.ConflictError as exc:
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())


def _check_chain(chain: bytes, spec: AcmeSpec) -> None:
    """What was issued serves: a chain beyond the leaf (a browser cannot build one from
    the leaf alone), every domain named."""
    try:
        certs = x509.load_pem_x509_certificates(chain)
    except ValueError as exc:
        raise AcmeError("incomplete", f"the CA's certificate is unreadable ({exc})") from exc
    if len(certs) < 2:
        raise AcmeError("incomplete", "the CA returned the certificate without its chain")
    try:
        san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    missing = sorted(set(spec.domains) - names)
    if missing:
        raise AcmeError("incomplete", f"the issued certificate lacks {', '.join(missing)}")


def _validation_detail(exc: errors.ValidationError) -> str:
    problems = []
    for authzr in exc.failed_authzrs:
        for chall in authzr.body.challenges:
            if chall.error is not None:
                detail = chall.error.detail or chall.error.typ
                problems.append(f"{authzr.body.identifier.value}: {detail}")
    return "the CA could not validate: " + ("; ".join(problems) or "no detail given")


def _first_line(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
