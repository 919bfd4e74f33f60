"""Request rules on http frontends: parsing and validation (evaluation is in
node/proxy/http/rules.py).

    rules:
      - if: {path_beg: /ghost/, client_cert: false}
        redirect: {location: /, code: 302}
      - if: {any: [{path_end: .php}, {method: [TRACE, TRACK]}]}
        deny: {status: 403}
      - if: {host: admin.example.com}
        use_backend: admin
      - set_header: {name: X-Env, value: prod}     # no "if": always
      - del_header: X-Debug

Rules run in order. ``redirect``, ``deny`` and ``use_backend`` are final: the first
matching one decides. ``set_header`` and ``del_header`` apply and evaluation goes on.
Keys inside one condition mapping must all hold (and); ``all``, ``any``, ``not`` combine.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from node.config.model import Condition, Match, Network, Redirect, Rule
from node.config.reader import Reader

_MATCHERS = {
    "path_beg", "path_end", "path_reg", "host", "method", "src", "sni",
    "client_cert", "client_cert_subject", "client_cert_san", "client_cert_sha256",
}  # fmt: skip
_COMBINERS = {"all", "any", "not"}
_ACTIONS = {"redirect", "deny", "use_backend", "set_header", "del_header"}
_REDIRECT_CODES = (301, 302, 303, 307, 308)


def parse_rules(r: Reader, value: Any, path: str, backends: set[str]) -> tuple[Rule, ...]:
    rules = []
    for index, (item_path, item) in enumerate(r.items(value, path)):
        m = r.mapping(item, item_path, _ACTIONS | {"if"})
        r.fact(item_path, "deny", "true, or a mapping")
        r.fact(item_path, "use_backend", "backend name")
        r.fact(item_path, "del_header", "header name")
        actions = [key for key in m if key in _ACTIONS]
        if len(actions) != 1:
            r.error(item_path, f"needs exactly one action ({', '.join(sorted(_ACTIONS))})")
            continue
        action = actions[0]
        condition = _condition(r, m["if"], f"{item_path}.if") if "if" in m else None
        rule = Rule(index=index + 1, condition=condition)
        action_path = f"{item_path}.{action}"
        if action == "redirect":
            rule = _with(rule, redirect=_redirect(r, m[action], action_path))
        elif action == "deny":
            rule = _with(rule, deny_status=_deny(r, m[action], action_path))
        elif action == "use_backend":
            name = m[action]
            if not isinstance(name, str) or name not in backends:
                r.error(action_path, f"backend {name!r} is not defined")
            rule = _with(rule, use_backend=str(name))
        elif action == "set_header":
            h = r.mapping(m[action], action_path, {"name", "value"}, {"name", "value"})
            r.fact(action_path, "name", "header name")
            r.fact(action_path, "value", "string")
            name, text = str(h.get("name", "")), str(h.get("value", ""))
            if not _header_name_ok(name) or any(c in text for c in "\r\n\0"):
                r.error(action_path, "needs a valid header name and a single-line value")
            rule = _with(rule, set_header=(name, text))
        else:
            name = m[action]
            if not isinstance(name, str) or not _header_name_ok(name):
                r.error(action_path, f"{name!r} is not a header name")
            rule = _with(rule, del_header=str(name))
        rules.append(rule)
    return tuple(rules)


def _with(rule: Rule, **changes: Any) -> Rule:
    from dataclasses import replace

    return replace(rule, **changes)


def _header_name_ok(name: str) -> bool:
    return bool(re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name))


def _redirect(r: Reader, value: Any, path: str) -> Redirect:
    m = r.mapping(value, path, {"location", "prefix", "code", "keep_query"})
    r.fact(path, "location", "URL or path")
    r.fact(path, "prefix", "URL or path")
    if ("location" in m) == ("prefix" in m):
        r.error(path, "needs exactly one of location or prefix")
    code = r.integer(m, "code", path, 302, 300, 399)
    if code not in _REDIRECT_CODES:
        r.error(f"{path}.code", f"{code} is not a redirect code (301, 302, 303, 307, 308)")
    target = str(m.get("location") or m.get("prefix") or "")
    if any(c in target for c in "\r\n\0 "):
        r.error(path, f"{target!r} is not a valid location")
    return Redirect(
        code=code,
        location=str(m["location"]) if "location" in m else None,
        prefix=str(m["prefix"]).rstrip("/") if "prefix" in m else None,
        keep_query=r.boolean(m, "keep_query", path, "prefix" in m),
    )


def _deny(r: Reader, value: Any, path: str) -> int:
    if value is True:
        return 403
    m = r.mapping(value, path, {"status"})
    return r.integer(m, "status", path, 403, 400, 599)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _condition(r: Reader, value: Any, path: str) -> Condition:
    m = r.mapping(value, path, _MATCHERS | _COMBINERS)
    for matcher in _MATCHERS:
        r.fact(path, matcher, "true or false" if matcher == "client_cert" else "string or list")
    matches: list[Match] = []
    all_of: list[Condition] = []
    any_of: list[Condition] = []
    negate = None
    for key, raw in m.items():
        where = f"{path}.{key}"
        if key == "all":
            all_of.extend(_condition(r, c, p) for p, c in r.items(raw, where))
        elif key == "any":
            any_of.extend(_condition(r, c, p) for p, c in r.items(raw, where))
        elif key == "not":
            negate = _condition(r, raw, where)
        elif key in _MATCHERS:
            matches.append(Match(key, _values(r, key, raw, where)))
    if not (matches or all_of or any_of or negate):
        r.error(path, "is empty")
    return Condition(tuple(matches), tuple(all_of), tuple(any_of), negate)


def _values(r: Reader, kind: str, raw: Any, path: str) -> tuple[Any, ...]:
    if kind == "client_cert":
        if not isinstance(raw, bool):
            r.error(path, f"must be true or false, got {raw!r}")
            return (True,)
        return (raw,)
    values = _listed(raw)
    if not values or any(not isinstance(v, str | int) or isinstance(v, bool) for v in values):
        r.error(path, "must be a string or a list of strings")
        return ()
    texts = [str(v) for v in values]
    if kind in ("path_reg", "client_cert_subject", "client_cert_san"):
        compiled = []
        for text in texts:
            try:
                compiled.append(re.compile(text))
            except re.error as exc:
                r.error(path, f"{text!r} is not a valid regular expression ({exc})")
        return tuple(compiled)
    if kind == "src":
        networks: list[Network] = []
        for text in texts:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                r.error(path, f"{text!r} is not an IP network (CIDR)")
        return tuple(networks)
    if kind == "method":
        return tuple(t.upper() for t in texts)
    if kind in ("host", "sni"):
        return tuple(t.lower() for t in texts)
    if kind == "client_cert_sha256":
        cleaned = tuple(t.lower().replace(":", "") for t in texts)
        if any(not re.fullmatch(r"[0-9a-f]{64}", t) for t in cleaned):
            r.error(path, "must be SHA-256 fingerprints (64 hex digits)")
        return cleaned
    return tuple(texts)
