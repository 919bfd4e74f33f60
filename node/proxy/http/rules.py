"""Pure rule evaluation: request facts in, a verdict with a reason sentence out."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from node.config.model import Condition, Match, Rule
from node.tls.peer import ClientIdentity


@dataclass(frozen=True, slots=True)
class RequestFacts:
    method: str
    path: str
    query: str
    host: str  # lower-case, without port
    src: str
    sni: str = ""
    identity: ClientIdentity = field(default_factory=ClientIdentity)


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    action: str  # "forward", "redirect", "deny"
    reason: str
    backend: str | None = None
    status: int = 0
    location: str = ""
    set_headers: tuple[tuple[str, str], ...] = ()
    del_headers: tuple[str, ...] = ()


def evaluate(rules: tuple[Rule, ...], facts: RequestFacts) -> RuleVerdict:
    set_headers: list[tuple[str, str]] = []
    del_headers: list[str] = []
    for rule in rules:
        if rule.condition is not None and not matches(rule.condition, facts):
            continue
        if rule.set_header is not None:
            set_headers.append(rule.set_header)
            continue
        if rule.del_header is not None:
            del_headers.append(rule.del_header)
            continue
        why = f"rule {rule.index}" + (f" ({describe(rule.condition)})" if rule.condition else "")
        if rule.redirect is not None:
            location = _location(rule, facts)
            verdict = RuleVerdict("redirect", f"{why}: redirect {rule.redirect.code} to {location}",
                                status=rule.redirect.code, location=location)  # fmt: skip
        elif rule.deny_status is not None:
            verdict = RuleVerdict(
                "deny", f"{why}: deny {rule.deny_status}", status=rule.deny_status
            )
        else:
            verdict = RuleVerdict("forward", f"{why}: use backend {rule.use_backend}",
                                backend=rule.use_backend)  # fmt: skip
        return replace(verdict, set_headers=tuple(set_headers), del_headers=tuple(del_headers))
    return RuleVerdict("forward", "no rule decided: default backend",
                    set_headers=tuple(set_headers), del_headers=tuple(del_headers))  # fmt: skip


def _location(rule: Rule, facts: RequestFacts) -> str:
    redirect = rule.redirect
    assert redirect is not None
    if redirect.location is not None:
        target = redirect.location
    else:
        target = (redirect.prefix or "") + facts.path
    if redirect.keep_query and facts.query:
        target += ("&" if "?" in target else "?") + facts.query
    return target


def matches(condition: Condition, facts: RequestFacts) -> bool:
    if not all(_matches(m, facts) for m in condition.matches):
        return False
    if not all(matches(c, facts) for c in condition.all_of):
        return False
    if condition.any_of and not any(matches(c, facts) for c in condition.any_of):
        return False
    return condition.negate is None or not matches(condition.negate, facts)


def _matches(test: Match, facts: RequestFacts) -> bool:
    kind, values = test.kind, test.values
    identity = facts.identity
    if kind == "path_beg":
        return facts.path.startswith(tuple(values))
    if kind == "path_end":
        return facts.path.endswith(tuple(values))
    if kind == "path_reg":
        return any(p.search(facts.path) for p in values)
    if kind == "host":
        return facts.host in values
    if kind == "method":
        return facts.method in values
    if kind == "sni":
        return facts.sni in values
    if kind == "src":
        try:
            address = ipaddress.ip_address(facts.src)
        except ValueError:
            return False
        return any(address in network for network in values)
    if kind == "client_cert":
        return identity.verified is values[0]
    if not identity.verified:
        return False
    if kind == "client_cert_subject":
        return any(p.search(identity.subject) for p in values)
    if kind == "client_cert_san":
        return any(p.search(san) for p in values for san in identity.sans)
    if kind == "client_cert_sha256":
        return identity.sha256 in values
    raise ValueError(f"unknown condition {kind}")


def describe(condition: Condition) -> str:
    parts = [m.describe() for m in condition.matches]
    parts += [f"all[{describe(c)}]" for c in condition.all_of]
    if condition.any_of:
        parts.append("any[" + " | ".join(describe(c) for c in condition.any_of) + "]")
    if condition.negate is not None:
        parts.append(f"not[{describe(condition.negate)}]")
    return ", ".join(parts)


__all__ = ["ClientIdentity", "RequestFacts", "RuleVerdict", "evaluate", "matches"]
