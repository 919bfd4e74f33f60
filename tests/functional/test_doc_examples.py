"""The shell examples that run on one machine (README.md and docs/quickstart.md
blocks fenced as ```sh) run as written: each page's blocks, in order, as one bash
script with `set -euo pipefail`, floatgate from this checkout's virtualenv on PATH."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/quickstart.md"]


def sh_blocks(page: Path) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


def test_the_pages_have_runnable_examples() -> None:
    assert all(sh_blocks(REPO / page) for page in PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_shell_examples_run_as_written(page: str, tmp_path: Path) -> None:
    assert shutil.which("curl"), "the examples use curl (scripts/setup.sh installs it)"
    script = tmp_path / "examples.sh"
    script.write_text("set -euo pipefail\n" + "\n".join(sh_blocks(REPO / page)))
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(["bash", str(script)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=120)
    finally:  # whatever the examples left running: their process group, by its id
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, out
    print(out)
    if page == "docs/quickstart.md":
        assert "http  200" in out and "https 200" in out, out
        assert "access-log lines: 2" in out, out
