"""The drill log: one JSON line per drill, for the operator's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def record_drill(report: dict[str, Any], path: Path | None, data_dir: str) -> Path | None:
    """Append to ``path``, else data_dir/drills.jsonl, else
    ~/.local/state/floatgate/drills.jsonl. Returns where it went (None: nowhere)."""
    fallback = Path.home() / ".local/state/floatgate/drills.jsonl"
    candidates = [path] if path is not None else [Path(data_dir) / "drills.jsonl", fallback]
    for candidate in candidates:
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            with candidate.open("a", encoding="utf-8") as out:
                out.write(json.dumps(report, sort_keys=True) + "\n")
        except OSError:
            continue
        return candidate
    return None
