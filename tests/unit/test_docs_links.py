"""Every relative link in the operator pages leads somewhere: the file exists, and a
#fragment names a heading of that page (GitHub's anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "ansible").glob("**/README.md")]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered."""
    found: set[str] = set()
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def test_anchor_rules() -> None:
    found = anchors(REPO / "docs" / "cluster.md")
    assert "the-fence-vipfence-bpf" in found and "the-vip-and-its-fence" not in found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, fragment = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert broken == []


# How the project is developed is not the product: operator pages say what is, not
# which issue or session brought it or what is planned.
DEVELOPMENT_TALK = re.compile(
    r"\bissue \d+|\bthe \w+ issue\b|not in this version|\(today\)|\bnot yet\b(?! valid)|"
    r"\bthis session\b(?! \(resumption)|\bcame after\b|\bthe final code\b",
    re.I,
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_pages_speak_of_the_product_not_its_development(page: Path) -> None:
    found = [
        f"{number}: {line.strip()[:120]}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if DEVELOPMENT_TALK.search(line)
    ]
    assert found == []
