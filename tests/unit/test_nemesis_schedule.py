"""The nemesis schedule: drawn from the seed alone, restricted by --faults, and refusing
fault names it does not know or cannot run with the settings."""

from __future__ import annotations

import random

import pytest

from deploy.lab.nemesis import FAULTS, FaultChoiceError, choose_faults


def test_the_same_seed_draws_the_same_schedule() -> None:
    first = choose_faults(random.Random(7), 40, 3)
    assert first == choose_faults(random.Random(7), 40, 3)
    assert first != choose_faults(random.Random(8), 40, 3)
    assert set(first) <= set(FAULTS)


def test_one_etcd_member_never_draws_a_leader_pause() -> None:
    drawn = choose_faults(random.Random(1), 500, 1)
    assert "etcd-leader-pause" not in drawn
    assert set(drawn) == set(FAULTS) - {"etcd-leader-pause"}
    assert "etcd-leader-pause" in choose_faults(random.Random(1), 500, 3)


def test_faults_restrict_the_draw_to_the_named_ones() -> None:
    drawn = choose_faults(random.Random(3), 60, 1, ["etcd-delay", "sigstop", "etcd-delay"])
    assert set(drawn) == {"etcd-delay", "sigstop"}
    assert choose_faults(random.Random(3), 5, 1, ["etcd-delay"]) == ["etcd-delay"] * 5


def test_an_unknown_fault_is_refused_with_the_list_of_faults() -> None:
    with pytest.raises(FaultChoiceError, match=r"unknown fault etcd-dealy; faults: kill-9, "):
        choose_faults(random.Random(3), 5, 1, ["etcd-dealy"])


def test_a_leader_pause_on_one_etcd_member_is_refused() -> None:
    with pytest.raises(FaultChoiceError, match="etcd-leader-pause needs --etcd-members 3"):
        choose_faults(random.Random(3), 5, 1, ["sigstop", "etcd-leader-pause"])
