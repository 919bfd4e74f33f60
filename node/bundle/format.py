"""The bundle format (pure): one JSON document with the cluster file, every file it
names, and metadata; private keys encrypted with the cluster secret (AES-256-GCM, the
file name as associated data); the whole document authenticated with an HMAC-SHA256
keyed from the cluster secret (HKDF, its own key), so nobody without the secret can
change a backend, a rule or a CA list. The document's SHA-256 is its name in etcd.

    {"format": 2,
     "meta": {"author": ..., "time": ..., "message": ..., "parent": <revision or null>},
     "cluster_yaml": "<text>",
     "files": {"<name>": {"pem": "<text>"} | {"sealed": "<base64 nonce+ciphertext>"}},
     "mac": "<hex HMAC-SHA256 over the canonical JSON of everything else>"}

Format 1 (no MAC) is refused: it cannot be told from a forged document.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.bundle.errors import BundleCorrupt, BundleUnauthenticated, SecretError

FORMAT = 2
_UNAUTHENTICATED = 1  # documents from before bundles carried a MAC
_MAC_INFO = b"floatgate bundle document MAC v1"
_PRIVATE = b"PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class Bundle:
    cluster_yaml: str
    files: dict[str, bytes]
    meta: dict[str, Any] = field(default_factory=dict)


def has_private_key(data: bytes) -> bool:
    return _PRIVATE in data


def seal(bundle: Bundle, secret: bytes) -> tuple[str, bytes]:
    """(sha256 hex, document bytes). Files holding a private key are encrypted."""
    aead = AESGCM(secret)
    files: dict[str, dict[str, str]] = {}
    for name, data in sorted(bundle.files.items()):
        if has_private_key(data):
            nonce = os.urandom(12)
            sealed = nonce + aead.encrypt(nonce, data, name.encode())
            files[name] = {"sealed": base64.b64encode(sealed).decode()}
        else:
            files[name] = {"pem": data.decode()}
    body = {"format": FORMAT, "meta": bundle.meta, "cluster_yaml": bundle.cluster_yaml,
            "files": files}  # fmt: skip
    document = _canonical({**body, "mac": _mac(secret, body)})
    return hashlib.sha256(document).hexdigest(), document


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _mac(secret: bytes, body: dict[str, Any]) -> str:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO).derive(secret)
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def unseal(sha: str, document: bytes, secret: bytes, legacy: bool = False) -> Bundle:
    """Verify the hash, parse, check the MAC, decrypt. BundleCorrupt for anything that
    is not what was pushed; BundleUnauthenticated when the MAC does not verify (forged,
    or another secret) or is missing; SecretError when the keys do not open with this
    secret. ``legacy``: read a format-1 document without a MAC (only to carry its
    sealed, AEAD-authenticated session-ticket key over to a new push)."""
    if hashlib.sha256(document).hexdigest() != sha:
        raise BundleCorrupt(f"bundle {sha[:12]}: content does not match its SHA-256 "
                            "(changed or truncated in etcd): push again or roll back")  # fmt: skip
    try:
        data = json.loads(document)
        if data.get("format") not in (FORMAT, _UNAUTHENTICATED):
            raise BundleCorrupt(f"bundle {sha[:12]}: format {data.get('format')!r} unknown")
        meta, text, entries = data["meta"], data["cluster_yaml"], data["files"]
        if not isinstance(text, str) or not isinstance(entries, dict):
            raise ValueError("cluster_yaml/files have the wrong type")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleCorrupt(f"bundle {sha[:12]}: not a bundle document ({exc})") from exc
    _authenticate(sha, data, secret, legacy)
    aead = AESGCM(secret)
    files: dict[str, bytes] = {}
    for name, entry in entries.items():
        try:
            if "sealed" in entry:
                sealed = base64.b64decode(entry["sealed"], validate=True)
                files[name] = aead.decrypt(sealed[:12], sealed[12:], name.encode())
            else:
                files[name] = str(entry["pem"]).encode()
        except InvalidTag as exc:
            raise SecretError(f"bundle {sha[:12]}: {name} does not decrypt with this cluster "
                              "secret (is secret_file the one the cluster was pushed with?)"
                              ) from exc  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleCorrupt(f"bundle {sha[:12]}: file {name} is damaged ({exc})") from exc
    return Bundle(text, files, meta if isinstance(meta, dict) else {})


def _authenticate(sha: str, data: dict[str, Any], secret: bytes, legacy: bool) -> None:
    if data["format"] == _UNAUTHENTICATED:
        if legacy:
            return
        raise BundleUnauthenticated(
            f"bundle {sha[:12]}: format 1 carries no MAC (pushed by a floatgate from before "
            "bundles were authenticated), so it cannot be told from a forged one and is not "
            "applied: push it again (floatgate push) with this version"
        )
    body = {k: v for k, v in data.items() if k != "mac"}
    given = data.get("mac")
    if not isinstance(given, str) or not hmac.compare_digest(given, _mac(secret, body)):
        raise BundleUnauthenticated(
            f"bundle {sha[:12]}: its MAC does not verify with this cluster secret: it was "
            "written by someone without the secret (not applied), or secret_file is not "
            "the one the cluster was pushed with"
        )
