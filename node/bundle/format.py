"""The bundle format (pure): one JSON document with the cluster file, every file it
names, and metadata; private keys encrypted with the cluster secret (AES-256-GCM, the
file name as associated data). The document's SHA-256 is its name in etcd.

    {"format": 1,
     "meta": {"author": ..., "time": ..., "message": ..., "parent": <revision or null>},
     "cluster_yaml": "<text>",
     "files": {"<name>": {"pem": "<text>"} | {"sealed": "<base64 nonce+ciphertext>"}}}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.bundle.errors import BundleCorrupt, SecretError

FORMAT = 1
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
    document = json.dumps(
        {"format": FORMAT, "meta": bundle.meta, "cluster_yaml": bundle.cluster_yaml,
         "files": files}, sort_keys=True, separators=(",", ":"),
    ).encode()  # fmt: skip
    return hashlib.sha256(document).hexdigest(), document


def unseal(sha: str, document: bytes, secret: bytes) -> Bundle:
    """Verify the hash, parse, decrypt. BundleCorrupt for anything that is not what
    was pushed; SecretError when the keys do not open with this secret."""
    if hashlib.sha256(document).hexdigest() != sha:
        raise BundleCorrupt(f"bundle {sha[:12]}: content does not match its SHA-256 "
                            "(changed or truncated in etcd): push again or roll back")  # fmt: skip
    try:
        data = json.loads(document)
        if data.get("format") != FORMAT:
            raise BundleCorrupt(f"bundle {sha[:12]}: format {data.get('format')!r} unknown")
        meta, text, entries = data["meta"], data["cluster_yaml"], data["files"]
        if not isinstance(text, str) or not isinstance(entries, dict):
            raise ValueError("cluster_yaml/files have the wrong type")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleCorrupt(f"bundle {sha[:12]}: not a bundle document ({exc})") from exc
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
