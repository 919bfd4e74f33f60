"""Session-ticket keys shared by every node, so a client resumes its TLS session on
whichever node holds the VIP after a failover.

Python's ssl module has no API for ticket keys; OpenSSL has
``SSL_CTX_ctrl(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, 80, keys)``. This module reaches
the ``SSL_CTX`` behind an ``ssl.SSLContext`` (CPython keeps it right after the object
header) and sets the 80-byte key (16 name, 32 HMAC, 32 AES). It checks first that the
pointer really is that context's (its options must read back the same) and reads the
key back after setting it; on any doubt it does nothing and says so, and the node
still serves (sessions then resume only on the node that issued them).

The key travels in bundles as ``session-ticket.key`` (sealed like private keys).
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import os
import ssl
import sys

TICKET_KEY_FILE = "session-ticket.key"
KEY_BYTES = 80
_SET_KEYS, _GET_KEYS = 59, 58  # SSL_CTRL_SET/GET_TLSEXT_TICKET_KEYS
_HEADER = b"-----BEGIN FLOATGATE SESSION TICKET PRIVATE KEY-----\n"
_FOOTER = b"-----END FLOATGATE SESSION TICKET PRIVATE KEY-----\n"


class TicketKeyError(Exception):
    """The ticket key cannot be used (file malformed, or OpenSSL not reachable)."""


def new_key_file() -> bytes:
    """A new ticket key in the bundle file format (its name makes bundles seal it)."""
    return _HEADER + base64.b64encode(os.urandom(KEY_BYTES)) + b"\n" + _FOOTER


def parse_key_file(data: bytes) -> bytes:
    body = data.strip()
    if not body.startswith(_HEADER.strip()) or not body.endswith(_FOOTER.strip()):
        raise TicketKeyError(f"{TICKET_KEY_FILE}: not a session-ticket key file")
    inner = body[len(_HEADER.strip()) : -len(_FOOTER.strip())].strip()
    try:
        key = base64.b64decode(inner, validate=True)
    except ValueError as exc:
        raise TicketKeyError(f"{TICKET_KEY_FILE}: not base64") from exc
    if len(key) != KEY_BYTES:
        raise TicketKeyError(f"{TICKET_KEY_FILE}: {len(key)} bytes, expected {KEY_BYTES}")
    return key


def _libssl() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    return lib


def set_ticket_key(context: ssl.SSLContext, key: bytes) -> None:
    """Make ``context`` encrypt and decrypt session tickets with ``key``."""
    if sys.implementation.name != "cpython" or not ssl.OPENSSL_VERSION.startswith("OpenSSL 3"):
        raise TicketKeyError("shared ticket keys need CPython with OpenSSL 3")
    if len(key) != KEY_BYTES:
        raise TicketKeyError(f"a ticket key is {KEY_BYTES} bytes")
    lib = _libssl()
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer or lib.SSL_CTX_get_options(pointer) != int(context.options):
        raise TicketKeyError("could not find OpenSSL's context behind ssl.SSLContext")
    buffer = ctypes.create_string_buffer(key, KEY_BYTES)
    if lib.SSL_CTX_ctrl(pointer, _SET_KEYS, KEY_BYTES, buffer) != 1:
        raise TicketKeyError("OpenSSL refused the ticket key")
    check = ctypes.create_string_buffer(KEY_BYTES)
    if lib.SSL_CTX_ctrl(pointer, _GET_KEYS, KEY_BYTES, check) != 1 or check.raw != key:
        raise TicketKeyError("the ticket key did not read back")
