"""The DESIGN.md frontend, as written, over real TLS: clients without a certificate
asking for /ghost/... are redirected to /, everyone else reaches the blog."""

from __future__ import annotations

from typing import Any

from tests.conftest import free_port
from tests.functional.pki import Pki
from tests.functional.rawhttp import raw_exchange
from tests.functional.test_tls import client_context, https_get


def design_yaml(port: int, ghost: str, admin: str) -> str:
    # The frontend block below is DESIGN.md's, with only the bind port changed.
    return f"""
cluster: edge
certificates:
  blog: app.pem
client_cas:
  private_ca: ca.pem
frontends:
  - name: https_termination
    bind: "127.0.0.1:{port}"
    mode: http
    tls:
      certificates: [blog]
      client_auth: {{ca: private_ca, verify: optional}}
    forwardfor: true
    rules:
      - if: {{path_beg: /ghost/, client_cert: false}}
        redirect: {{location: /, code: 302}}
    default_backend: ghost
backends:
  - name: ghost
    mode: http
    balance: roundrobin
    servers:
      - {{name: ghost1, address: "{ghost}"}}
  - name: admin
    servers:
      - {{name: admin1, address: "{admin}"}}
"""


async def test_design_example_end_to_end(backends: Any, proxy: Any, pki: Pki) -> None:
    ghost, admin = await backends("ghost"), await backends("admin")
    port = free_port()
    await proxy(design_yaml(port, ghost.address, admin.address), pki.dir)
    anonymous, alice = client_context(pki), client_context(pki, "client.pem")

    data, _ = await https_get(port, anonymous, path="/ghost/admin")
    assert data.startswith(b"HTTP/1.1 302 Found\r\n")
    assert b"\r\nLocation: /\r\n" in data
    assert ghost.requests == []  # redirected by floatgate, nothing forwarded

    data, _ = await https_get(port, alice, path="/ghost/admin")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ghost")
    assert ghost.headers[-1]["X-SSL-Client-Verify"] == ["SUCCESS"]

    data, _ = await https_get(port, anonymous, path="/blog/post")
    assert data.startswith(b"HTTP/1.1 200")
    assert ghost.headers[-1]["X-SSL-Client-Verify"] == ["NONE"]
    assert [p for _, p in ghost.requests] == ["/ghost/admin", "/blog/post"]


async def test_deny_use_backend_and_headers_over_plain_http(backends: Any, proxy: Any) -> None:
    app, admin = await backends("app"), await backends("admin")
    port = free_port()
    yaml = f"""
cluster: c
frontends:
  - name: web
    bind: "127.0.0.1:{port}"
    default_backend: app
    rules:
      - set_header: {{name: X-Env, value: prod}}
      - del_header: X-Debug
      - if: {{any: [{{path_end: .php}}, {{method: TRACE}}]}}
        deny: {{status: 403}}
      - if: {{host: admin.test}}
        use_backend: admin
      - if: {{path_beg: /old/}}
        redirect: {{prefix: /new, code: 308}}
backends:
  - {{name: app, servers: [{{name: a, address: "{app.address}"}}]}}
  - {{name: admin, servers: [{{name: b, address: "{admin.address}"}}]}}
"""
    await proxy(yaml)
    reply = await raw_exchange(port, b"GET /x.php HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert reply.status == 403 and not reply.closed  # a refusal, not a broken connection
    reply = await raw_exchange(port, b"GET /old/p?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert reply.status == 308 and reply.headers["location"] == "/new/old/p?q=1"
    reply = await raw_exchange(
        port, b"GET / HTTP/1.1\r\nHost: Admin.Test:8080\r\nX-Debug: 1\r\n\r\n"
    )
    assert reply.status == 200 and reply.body == b"admin"
    assert admin.headers[0]["X-Env"] == ["prod"] and "X-Debug" not in admin.headers[0]
    reply = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: www.test\r\nX-Env: dev\r\n\r\n")
    assert reply.body == b"app" and app.headers[0]["X-Env"] == ["prod"]
    assert len(app.requests) == 1  # the denied and redirected requests went nowhere
