"""Run in the lab's client namespace: what a TLS client sees through the VIP. Prints
JSON: the server certificate's SHA-256, and for /ghost/ without and with a client
certificate the status, Location and the client-cert headers the backend received."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import sys
from typing import Any


def get(host: str, sni: str, ca: str, cert: str | None, path: str) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert)
    try:
        raw = socket.create_connection((host, 443), timeout=5)
        tls = context.wrap_socket(raw, server_hostname=sni)
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}"}
    with tls:
        fingerprint = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    result: dict[str, Any] = {"status": int(lines[0].split()[1]), "fingerprint": fingerprint,
                              "location": headers.get("Location")}  # fmt: skip
    if result["status"] == 200:
        seen = json.loads(body)["headers"]
        result["verify"] = seen.get("X-SSL-Client-Verify")
        result["subject"] = seen.get("X-SSL-Client-Subject")
    return result


def resume(host: str, sni: str, ca: str) -> None:
    """A session now; after a line on stdin (the failover happened), a new connection
    offering it: prints whether the new active resumed it."""
    context = ssl.create_default_context(cafile=ca)

    def once(session: ssl.SSLSession | None) -> ssl.SSLSocket:
        tls = context.wrap_socket(socket.create_connection((host, 443), timeout=5),
                                  server_hostname=sni, session=session)  # fmt: skip
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        while tls.recv(65536):
            pass
        return tls

    first = once(None)
    session = first.session
    first.close()
    print("ready", flush=True)
    sys.stdin.readline()
    second = once(session)
    print(json.dumps({"resumed": second.session_reused}), flush=True)
    second.close()


def main() -> None:
    if sys.argv[1] == "resume":
        resume(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    if sys.argv[1] == "served":  # the certificate a client trusting only CA is served
        print(json.dumps(get(sys.argv[2], sys.argv[3], sys.argv[4], None, "/")))
        return
    host, sni, ca, cert = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    print(json.dumps({
        "anonymous": get(host, sni, ca, None, "/ghost/post"),
        "with_cert": get(host, sni, ca, cert, "/ghost/post"),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
