"""docs/configuration.md is generated from the configuration readers: the checked-in
page must be what `floatgate config-reference` prints, every key a reader accepts must
have a meaning (and every meaning a key), and the every-key examples must stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import parse_cluster, reference
from node.config.nodefile import parse_node

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "configuration.md"


def test_the_checked_in_page_is_the_generated_one() -> None:
    assert PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/configuration.md is out of date: run "
        "`floatgate config-reference --output docs/configuration.md`"
    )


@pytest.mark.parametrize("file", ["cluster.yaml", "node.yaml"])
def test_every_accepted_key_has_a_meaning_and_every_meaning_a_key(file: str) -> None:
    missing, stale = reference.unexplained(file)
    assert missing == [], f"keys {file}'s reader accepts, not in MEANINGS: {missing}"
    assert stale == [], f"MEANINGS for keys {file}'s reader does not accept: {stale}"


def test_a_key_without_a_meaning_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: drop one meaning and it is named."""
    meanings = dict(reference.MEANINGS["cluster.yaml"])
    del meanings["vip.fence"]
    monkeypatch.setitem(reference.MEANINGS, "cluster.yaml", meanings)
    assert reference.unexplained("cluster.yaml") == (["vip.fence"], [])


def test_the_examples_are_valid_configurations() -> None:
    config = parse_cluster(reference.example("cluster.yaml"), "examples/cluster.yaml")
    assert config.vip is not None and config.election.lease_ttl == 2.0
    node = parse_node(reference.example("node.yaml"), "examples/node.yaml")
    assert node.etcd is not None and node.admin is not None


def test_rows_carry_the_readers_kinds_defaults_and_required_keys() -> None:
    rows = {row.path: row for row in reference.rows("cluster.yaml")}
    assert rows["vip.fence"].kind == "bpf | lifetime" and rows["vip.fence"].default == "`bpf`"
    assert rows["election.lease_ttl"].default == "`2s`"
    assert rows["frontends[].maxconn"].kind == "integer 1-1000000"
    assert rows["frontends[].bind"].required and not rows["frontends[].maxconn"].required
    assert rows["frontends[].timeout.client"].default == "`defaults.timeout.client`"
    # frontends take only the timeouts frontends read; backends only theirs
    assert "frontends[].timeout.server" not in rows and "backends[].timeout.client" not in rows
    node_rows = {row.path: row for row in reference.rows("node.yaml")}
    assert node_rows["priority"].default == "`100`"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("frontends[2].rules[0].if.any[1].host", "frontends[].rules[].if.host"),
        ("frontends[0].rules[3].if.not.all[0].not.src", "frontends[].rules[].if.src"),
        ("frontends[0].rules[3].if.not", "frontends[].rules[].if.not"),
        ("certificates.web.cert", "certificates.<name>.cert"),
        ("backends[10].servers[3].weight", "backends[].servers[].weight"),
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert reference.normalize(raw, {"certificates"}) == normal
