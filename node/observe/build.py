"""This build's version (``floatgate --version``, ``/status``, ``floatgate_build_info``,
the status page footer): the installed package's metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def floatgate_version() -> str:
    try:
        return version("floatgate")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"
