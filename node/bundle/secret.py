"""The cluster secret: 32 random bytes (base64 in a file, mode 0600) that encrypt the
private keys inside bundles. It never goes to etcd."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from node.bundle.errors import SecretError

SECRET_BYTES = 32  # AES-256


def generate(path: Path) -> None:
    """Write a new secret; refuses to overwrite an existing file."""
    data = base64.b64encode(secrets.token_bytes(SECRET_BYTES)) + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        why = "a new secret would lock out every bundle encrypted with the old one"
        raise SecretError(f"{path} exists: {why} (remove it first if you mean it)") from exc
    except OSError as exc:
        raise SecretError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load(path: str | Path | None) -> bytes:
    if path is None:
        raise SecretError("no secret_file in node.yaml (create one: floatgate secret generate)")
    try:
        text = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"cannot read the cluster secret {path}: {exc.strerror}") from exc
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise SecretError(f"{path} is not a cluster secret (base64 of 32 bytes)") from exc
    if len(key) != SECRET_BYTES:
        raise SecretError(f"{path} holds {len(key)} bytes; a cluster secret is 32")
    return key
