"""Fuzzing the HTTP/1.1 request path: generated raw request bytes against a real
``floatgate run`` process in front of a strict recording backend.

Invariants, checked for every case (see fuzzkit.FuzzTarget.run):

- the process never dies, and a fresh normal request is served (as exactly one request)
  after every case;
- the client never sees a traceback or a Python exception name, and everything it
  receives is a sequence of whole, well-formed HTTP/1.1 responses;
- a request the proxy refuses (400, 408, 413, 414, 431, 501) reaches the backend not at
  all (when sent in one piece; sent in pieces, a streamed prefix may have gone, but
  never a whole request);
- what the backend receives parses, strictly, as whole well-formed requests, never more
  of them than the client sent, with request targets the client sent.

The bounded run lasts FLOATGATE_FUZZ_SECONDS (60 by default); see README.md here for
longer runs and for the corpus of every case the fuzzer ever found.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, reject, seed, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.hostile.fuzzkit import (
    Case,
    CorpusEntry,
    FuzzTarget,
    InvariantBroken,
    cases,
    fuzz_target,
    load_corpus,
    save_case,
)

SECONDS = float(os.environ.get("FLOATGATE_FUZZ_SECONDS", "60"))
EXAMPLES = int(os.environ.get("FLOATGATE_FUZZ_EXAMPLES", "0"))  # 0: as many as fit
SEED = int(os.environ.get("FLOATGATE_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
BATCH = 50  # examples per Hypothesis run; runs repeat (seed, seed+1, ...) until time is up
STRICT = os.environ.get("FLOATGATE_FUZZ_STRICT") == "1"  # known bugs fail the run too

# Invariants a known, not yet fixed, bug breaks: the fuzzer discards (and counts) the
# cases that break them, so the bounded run stays useful meanwhile; a corpus entry
# marked xfail reproduces each. Remove the entry with the fix (FLOATGATE_FUZZ_STRICT=1
# shows what they hide).
KNOWN_BUGS: dict[tuple[str, str], str] = {  # (invariant, text in its message): the bug
    # none known; an entry here hides a finding the fuzzer keeps meeting until it is fixed
}


def _known(exc: InvariantBroken) -> tuple[str, str] | None:
    return next((k for k in KNOWN_BUGS if k[0] == exc.kind and k[1] in exc.message), None)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    # Hypothesis keeps caches in ./.hypothesis by default: not in the repository.
    set_hypothesis_home_dir(str(tmp_path_factory.mktemp("hypothesis-home")))
    with fuzz_target(tmp_path_factory.mktemp("fuzz")) as live:
        yield live


def _found_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("FLOATGATE_FUZZ_FOUND")
    return Path(configured) if configured else tmp_path_factory.getbasetemp() / "fuzz-found"


def test_fuzz_request_path(target: FuzzTarget, tmp_path_factory: pytest.TempPathFactory) -> None:
    database_dir = os.environ.get("FLOATGATE_FUZZ_DB") or tmp_path_factory.mktemp("hypothesis")
    database = DirectoryBasedExampleDatabase(str(database_dir))
    found = _found_dir(tmp_path_factory)
    ran = 0
    known: dict[tuple[str, str], int] = {}

    def check(case: Case) -> None:
        nonlocal ran
        ran += 1
        try:
            target.run(case)
        except InvariantBroken as exc:
            bug = _known(exc)
            if bug is not None and not STRICT:
                known[bug] = known.get(bug, 0) + 1
                reject()
            path = save_case(case, found, str(exc))
            raise InvariantBroken(
                exc.kind,
                f"{exc.message}\n  case: {case!r}\n  saved as {path} "
                f"(copy it into tests/hostile/corpus/)\n  reproduce: FLOATGATE_FUZZ_SEED={SEED}",
            ) from None

    started = time.monotonic()
    batch = 0
    while True:
        remaining = EXAMPLES - ran if EXAMPLES else BATCH
        if remaining <= 0 or (not EXAMPLES and time.monotonic() - started >= SECONDS):
            break
        run = settings(
            max_examples=min(BATCH, remaining),
            deadline=None,
            database=database,
            derandomize=False,
            print_blob=True,
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        )(seed(SEED + batch)(given(case=cases())(check)))
        run()
        batch += 1
    print(f"\nfuzz: {ran} cases in {time.monotonic() - started:.1f}s, seed {SEED}")
    for bug, count in known.items():
        print(f"fuzz: {count} cases discarded for a known bug [{bug[0]}]: {KNOWN_BUGS[bug]}")
    assert ran > 0


def _corpus_params() -> list[object]:
    params: list[object] = []
    for entry in load_corpus():
        marks = [pytest.mark.xfail(strict=False, reason=entry.xfail)] if entry.xfail else []
        params.append(pytest.param(entry, id=entry.name, marks=marks))
    return params


@pytest.mark.parametrize("entry", _corpus_params())
def test_corpus_case(target: FuzzTarget, entry: CorpusEntry) -> None:
    """Every case the fuzzer ever found (and a few seeded by hand), replayed."""
    target.run(entry.case)
