"""Rules: parsing errors and pure evaluation (first final match wins)."""

from __future__ import annotations

import pytest

from node.config import ConfigError, parse_cluster
from node.config.model import Rule
from node.proxy.http.rules import RequestFacts, evaluate
from node.tls.peer import ClientIdentity

BASE = """
cluster: c
frontends:
  - name: web
    bind: ":80"
    default_backend: app
    rules:
{rules}
backends:
  - {{name: app, servers: [{{name: s, address: "127.0.0.1:1"}}]}}
  - {{name: admin, servers: [{{name: s, address: "127.0.0.1:2"}}]}}
"""


def rules(text: str) -> tuple[Rule, ...]:
    return parse_cluster(BASE.format(rules=text)).frontends[0].rules


def facts(path: str = "/", **kw: object) -> RequestFacts:
    base: dict[str, object] = {"method": "GET", "path": path, "query": "", "host": "a.test",
                               "src": "10.1.2.3"}  # fmt: skip
    base.update(kw)
    return RequestFacts(**base)  # type: ignore[arg-type]


ALICE = ClientIdentity(True, "CN=alice,O=corp", ("alice.corp",), "ab" * 32)

DESIGN_EXAMPLE = """\
      - if: {path_beg: /ghost/, client_cert: false}
        redirect: {location: /, code: 302}"""


def test_design_example() -> None:
    r = rules(DESIGN_EXAMPLE)
    decision = evaluate(r, facts("/ghost/admin"))
    assert (decision.action, decision.status, decision.location) == ("redirect", 302, "/")
    assert decision.reason == "rule 1 (path_beg /ghost/, client_cert False): redirect 302 to /"
    assert evaluate(r, facts("/ghost/admin", identity=ALICE)).action == "forward"
    assert evaluate(r, facts("/blog/")).reason == "no rule decided: default backend"


def test_first_final_match_wins_and_header_rules_accumulate() -> None:
    r = rules("""\
      - set_header: {name: X-Env, value: prod}
      - if: {host: admin.test}
        use_backend: admin
      - if: {method: [GET, HEAD]}
        deny: {status: 405}
      - del_header: X-Never""")
    decision = evaluate(r, facts(host="admin.test"))
    assert (decision.action, decision.backend) == ("forward", "admin")
    assert decision.set_headers == (("X-Env", "prod"),)
    assert evaluate(r, facts()).status == 405
    assert evaluate(r, facts(method="POST")).del_headers == ("X-Never",)


@pytest.mark.parametrize(
    ("condition", "request_facts", "expected"),
    [
        ("{path_end: [.php, .asp]}", facts("/x/index.php"), True),
        ("{path_reg: '^/api/v[0-9]+/'}", facts("/api/v2/x"), True),
        ("{path_reg: '^/api/v[0-9]+/'}", facts("/api/vx/"), False),
        ("{src: 10.0.0.0/8}", facts(), True),
        ("{src: [192.168.0.0/16]}", facts(), False),
        ("{sni: app.test}", facts(sni="app.test"), True),
        ("{client_cert: true}", facts(identity=ALICE), True),
        ("{client_cert_subject: 'CN=alice,'}", facts(identity=ALICE), True),
        ("{client_cert_san: '\\.corp$'}", facts(identity=ALICE), True),
        (f"{{client_cert_sha256: [{'AB' * 32}]}}", facts(identity=ALICE), True),
        (f"{{client_cert_sha256: [{'cd' * 32}]}}", facts(identity=ALICE), False),
        ("{client_cert_subject: alice}", facts(), False),  # no verified certificate
        ("{any: [{path_beg: /a}, {path_beg: /b}]}", facts("/b/1"), True),
        ("{all: [{path_beg: /a}, {method: POST}]}", facts("/a/1"), False),
        ("{not: {path_beg: /public/}}", facts("/private"), True),
        ("{path_beg: /a, method: POST}", facts("/a", method="POST"), True),
    ],
)
def test_conditions(condition: str, request_facts: RequestFacts, expected: bool) -> None:
    r = rules(f"      - if: {condition}\n        deny: true")
    assert (evaluate(r, request_facts).action == "deny") is expected


def test_redirect_prefix_keeps_query() -> None:
    r = rules("      - redirect: {prefix: /new, code: 301}")
    decision = evaluate(r, facts("/old/page", query="a=1"))
    assert (decision.status, decision.location) == (301, "/new/old/page?a=1")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("      - if: {path_beg: /a}\n        deny: true\n        use_backend: admin",
         "frontends[0].rules[0]: needs exactly one action"),
        ("      - use_backend: nowhere", "frontends[0].rules[0].use_backend: backend 'nowhere'"),
        ("      - if: {path_reg: '('}\n        deny: true",
         "frontends[0].rules[0].if.path_reg: '(' is not a valid regular expression"),
        ("      - if: {src: 10.0.0.0/99}\n        deny: true", "is not an IP network"),
        ("      - if: {colour: red}\n        deny: true", "rules[0].if.colour: unknown key"),
        ("      - redirect: {location: /, code: 200}", "is out of range (300-399)"),
        ("      - redirect: {code: 302}", "needs exactly one of location or prefix"),
        ("      - if: {client_cert: maybe}\n        deny: true", "must be true or false"),
        ("      - set_header: {name: 'Bad Name', value: x}", "needs a valid header name"),
    ],
)  # fmt: skip
def test_rule_errors(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cluster(BASE.format(rules=text), "c.yaml")
    assert any(error in e for e in info.value.errors), info.value.errors
