"""What the command modules share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

Commands = Any  # argparse's subparsers action (its class is private to argparse)


def certs_dir(args: argparse.Namespace) -> Path:
    """--certs, else the directory cluster.yaml is in."""
    chosen: Path = args.certs if args.certs is not None else args.cluster.resolve().parent
    return chosen
