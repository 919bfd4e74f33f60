"""Typed configuration errors."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration file is invalid. ``errors`` holds one ``file: path: message`` each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)
