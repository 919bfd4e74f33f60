"""The admin token (``admin.token_file`` in node.yaml): read once, never logged."""

from __future__ import annotations

from pathlib import Path


def read_token(path: str | None) -> str | None:
    """The token, or None when no file is configured, it cannot be read, or it is empty
    (write endpoints are then refused)."""
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError:
        return None
    return token or None
