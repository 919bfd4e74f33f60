"""ansible/: ansible-lint (production profile) finds nothing, every playbook passes
--syntax-check, and the example inventory has the documented shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "NO_COLOR": "1",
           "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # fmt: skip
    return subprocess.run(argv, cwd=ANSIBLE, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_ansible_lint_production_profile_is_clean() -> None:
    result = _run(str(BIN / "ansible-lint"), "--profile", "production", "--offline", ".")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr


@pytest.mark.parametrize("playbook", ["site.yml", "push.yml", "drill.yml"])
def test_playbook_syntax(playbook: str) -> None:
    result = _run(str(BIN / "ansible-playbook"), "--syntax-check", playbook)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_inventory_has_three_etcd_members_and_two_nodes() -> None:
    inventory = yaml.safe_load((ANSIBLE / "inventory/example/hosts.yml").read_text())
    groups = inventory["all"]["children"]
    assert len(groups["etcd"]["hosts"]) == 3 and len(groups["floatgate"]["hosts"]) == 2
    readme = (ANSIBLE / "roles/floatgate/README.md").read_text()
    defaults = yaml.safe_load((ANSIBLE / "roles/floatgate/defaults/main.yml").read_text())
    undocumented = [name for name in defaults if f"`{name}`" not in readme]
    assert not undocumented, f"variables missing from roles/floatgate/README.md: {undocumented}"
    etcd_readme = (ANSIBLE / "roles/etcd/README.md").read_text()
    etcd_defaults = yaml.safe_load((ANSIBLE / "roles/etcd/defaults/main.yml").read_text())
    undocumented = [name for name in etcd_defaults if f"`{name}`" not in etcd_readme]
    assert not undocumented, f"variables missing from roles/etcd/README.md: {undocumented}"


def test_example_cluster_file_is_valid() -> None:
    example = ANSIBLE / "inventory/example/files/cluster/cluster.yaml"
    result = subprocess.run([str(BIN / "floatgate"), "check", str(example)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vip" in example.read_text() and "election" in example.read_text()
