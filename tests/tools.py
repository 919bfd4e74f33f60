"""External tools the suite drives (promtool, chromium, ...): a test that needs one skips
on a developer machine without it, and fails in CI (CI=true), where scripts/setup.sh
installs it."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (Debian package {package}; scripts/setup.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
