"""ACME's pure parts: the configuration check, when to order, the backoff, what a push
carries over, and the stateless http-01 answer."""

from __future__ import annotations

import itertools
import random

import pytest
import requests
from acme import errors as acme_errors
from acme import messages

from node.acme.client import _classified
from node.acme.errors import AcmeError
from node.acme.plan import FIRST_RETRY, LONGEST_RETRY, Attempts, Served, decide, failed
from node.bundle.build import acme_files
from node.config import ConfigError, parse_cluster
from node.config.model import AcmeSpec
from node.tls.acme import ACCOUNT_KEY_FILE, key_authorization, new_account_key, thumbprint

BASE = """
cluster: edge
vip: {{address: 10.0.0.50/24}}
frontends:
  - {{name: web, bind: "{web}", default_backend: app}}
  - name: tls
    bind: ":443"
    default_backend: app
    tls: {{certificates: [blog]}}
backends:
  - {{name: app, servers: [{{name: a, address: "10.0.1.1:80"}}]}}
certificates:
  blog:
    acme:
{acme}
"""
GOOD = """      directory: https://acme-v02.api.letsencrypt.org/directory
      email: ops@example.com
      domains: [blog.example.com, WWW.example.com.]
      renew_before: 20d
      eab: {kid: kid-1, hmac_key: c2VjcmV0LWtleQ}"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_cluster(text, "c.yaml")
    return info.value.errors


def test_an_acme_certificate_parses_with_its_defaults() -> None:
    config = parse_cluster(BASE.format(web=":80", acme=GOOD))
    source = config.certificates["blog"]
    assert source.cert == "acme/blog.pem" and source.key is None
    spec = source.acme
    assert spec is not None
    assert spec.domains == ("blog.example.com", "www.example.com")
    assert spec.challenge == "http-01" and spec.key_type == "ecdsa-p256"
    assert spec.renew_before == 20 * 86400
    assert spec.eab is not None and spec.eab.kid == "kid-1"


@pytest.mark.parametrize(
    ("acme", "expected"),
    [
        ("      directory: http://ca.example/dir\n      domains: [a.example.com]",
         "acme.directory: 'http://ca.example/dir' is not an https:// URL"),
        ("      directory: https://ca.example/dir\n      domains: ['*.example.com']",
         "is a wildcard: a CA validates wildcards only by dns-01"),
        ("      directory: https://ca.example/dir\n      domains: [192.0.2.1]",
         "is an IP address"),
        ("      directory: https://ca.example/dir\n      domains: [localhost]",
         "'localhost' is not a DNS name"),
        ("      directory: https://ca.example/dir\n      domains: [a.example.com, A.example.com]",
         "'A.example.com' is listed twice"),
        ("      directory: https://ca.example/dir\n      domains: []",
         "acme.domains: needs at least one DNS name"),
        ("      directory: https://ca.example/dir\n      domains: [a.example.com]\n"
         "      challenge: tls-alpn-01", "tls-alpn-01 is not implemented: use http-01"),
        ("      directory: https://ca.example/dir\n      domains: [a.example.com]\n"
         "      email: nobody", "'nobody' is not an e-mail address"),
        ("      directory: https://ca.example/dir\n      domains: [a.example.com]\n"
         "      renew_before: 10m", "'10m' is too short"),
        ("      directory: https://ca.example/dir\n      domains: [a.example.com]\n"
         "      key_type: dsa", "'dsa' is not one of ecdsa-p256, rsa-2048"),
        ("      domains: [a.example.com]", "certificates.blog.acme.directory: is required"),
    ],
)  # fmt: skip
def test_check_refuses_what_cannot_be_ordered(acme: str, expected: str) -> None:
    errors = _errors(BASE.format(web=":80", acme=acme))
    assert any(expected in e for e in errors), errors


def test_http_01_needs_a_plain_port_80_frontend_on_the_vip() -> None:
    for web in (":8080", "10.0.0.99:80"):  # another port; an address that is not the VIP
        errors = _errors(BASE.format(web=web, acme=GOOD))
        assert any("http-01 needs a plain HTTP frontend bound to port 80 on the VIP 10.0.0.50"
                   in e for e in errors), errors  # fmt: skip
    assert parse_cluster(BASE.format(web="10.0.0.50:80", acme=GOOD)).certificates["blog"].acme


SPEC = AcmeSpec("https://ca.example/dir", ("a.example.com", "b.example.com"))
NOW = 1_800_000_000.0
DAY = 86400.0


def _served(days_left: float, **changes: object) -> Served:
    facts = {
        "not_after": NOW + days_left * DAY,
        "not_before": NOW + days_left * DAY - 90 * DAY,
        "domains": frozenset(SPEC.domains),
        "key_type": "ecdsa-p256",
        "placeholder": False,
    }
    facts.update(changes)
    return Served(**facts)  # type: ignore[arg-type]


def test_when_to_order() -> None:
    assert decide(SPEC, None, Attempts(), NOW, False).reason == "no certificate issued yet"
    assert decide(SPEC, _served(5, placeholder=True), Attempts(), NOW, False).order
    wait = decide(SPEC, _served(60), Attempts(), NOW, False)
    assert not wait.order and wait.at == NOW + 30 * DAY  # renew_before 30d
    assert decide(SPEC, _served(29), Attempts(), NOW, False).order
    changed = decide(SPEC, _served(60, domains=frozenset({"a.example.com", "c.example.com"})),
                     Attempts(), NOW, False)  # fmt: skip
    assert (
        changed.order and changed.reason == "the domains changed (+b.example.com, -c.example.com)"
    )
    assert decide(SPEC, _served(60, key_type="rsa-2048"), Attempts(), NOW, False).order
    asked = decide(SPEC, _served(60), Attempts(), NOW, True)
    assert asked.order and asked.reason == "renewal requested by an operator"


def test_a_certificate_shorter_lived_than_renew_before_is_not_reordered_at_once() -> None:
    """A CA issuing 6-day certificates to a renew_before of 30d: without a cap every new
    certificate would be due the moment it is stored, an order every pass."""
    fresh = _served(6, not_before=NOW)
    wait = decide(SPEC, fresh, Attempts(), NOW, False)
    assert not wait.order and wait.at == NOW + 3 * DAY  # half the lifetime
    assert "renewal due" in wait.reason and "half of its 6-day lifetime" in wait.reason
    assert decide(SPEC, fresh, Attempts(), NOW + 3 * DAY, False).order
    assert decide(SPEC, _served(60), Attempts(), NOW, False).at == NOW + 30 * DAY  # uncapped


def test_a_failure_backs_off_exponentially_with_jitter_and_an_operator_goes_ahead() -> None:
    rng = random.Random(7)
    attempts, waits = Attempts(), []
    for _ in range(12):
        attempts = failed(attempts, "unreachable", NOW, rng, None)
        waits.append(attempts.retry_at - NOW)
    assert FIRST_RETRY / 2 <= waits[0] <= FIRST_RETRY
    assert all(b > a / 2 for a, b in itertools.pairwise(waits))  # grows
    assert max(waits) <= LONGEST_RETRY and waits[-1] >= LONGEST_RETRY / 2
    assert len({round(w) for w in waits[-3:]}) == 3  # jittered, not in step
    held = decide(SPEC, None, attempts, NOW + 1, False)
    assert not held.order and held.at == attempts.retry_at
    assert "backing off after 12 failed attempt(s) (unreachable)" in held.reason
    assert decide(SPEC, None, attempts, NOW + 1, True).order  # an explicit request
    later = failed(Attempts(), "rate_limited", NOW, rng, retry_after=3 * 3600.0)
    assert later.retry_at >= NOW + 3 * 3600.0  # the CA's Retry-After


def test_a_push_carries_the_account_key_and_what_was_issued() -> None:
    config = parse_cluster(BASE.format(web=":80", acme=GOOD))
    first = acme_files(config, {})
    assert set(first) == {ACCOUNT_KEY_FILE}  # created for the first ACME certificate
    previous = {**first, "acme/blog.pem": b"issued", "acme/gone.pem": b"old"}
    carried = acme_files(config, previous)
    assert carried == {ACCOUNT_KEY_FILE: first[ACCOUNT_KEY_FILE], "acme/blog.pem": b"issued"}
    files = BASE.format(web=":80", acme=GOOD).split("  blog:")[0] + "  blog: blog.pem\n"
    plain = parse_cluster(files)
    assert acme_files(plain, previous) == {}  # back to files: nothing ACME travels


def test_the_http_01_answer_is_the_token_and_the_account_thumbprint() -> None:
    key = new_account_key()
    mine = thumbprint(key)
    assert len(mine) == 43 and "=" not in mine  # base64url of a SHA-256
    assert thumbprint(key) == mine
    assert key_authorization("tOk-_9", mine) == f"tOk-_9.{mine}".encode()
    for hostile in ("", "a.b", "../x", "a b", "x" * 300, "<script>"):
        assert key_authorization(hostile, mine) is None


@pytest.mark.parametrize(
    ("raised", "kind", "said"),
    [
        (messages.Error(typ="urn:ietf:params:acme:error:rateLimited", detail="too many"),
         "rate_limited", "the CA answered: too many"),
        (messages.Error(typ="urn:ietf:params:acme:error:badCSR", detail="bad key"),
         "refused", "the CA answered: bad key"),
        (requests.exceptions.ConnectionError("refused"), "unreachable",
         "https://ca.example/dir: refused"),
        (requests.exceptions.SSLError("bad cert"), "unreachable", "is directory_ca the CA"),
        (acme_errors.TimeoutError(), "timeout", "not valid after 90s"),
        (acme_errors.ValidationError([]), "challenge_failed", "the CA could not validate"),
        (ValueError("not JSON"), "refused", "unexpected answer from the CA: not JSON"),
    ],
)  # fmt: skip
def test_every_failure_of_an_order_has_one_kind(raised: Exception, kind: str, said: str) -> None:
    with pytest.raises(AcmeError) as info, _classified(SPEC, 90):
        raise raised
    assert info.value.kind == kind and said in str(info.value)
