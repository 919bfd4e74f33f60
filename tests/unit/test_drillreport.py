"""The drill's measurements from probe and node samples (pure)."""

from __future__ import annotations

from node.ops.drill.report import NodeSample, Probe, double_holders, outage, verdict, vip_moved_at


def _probes(results: list[tuple[float, bool]]) -> list[Probe]:
    return [Probe(t - 0.01, t, ok) for t, ok in results]


def test_outage_is_the_longest_gap_between_successes() -> None:
    probes = _probes([(1.0, True), (1.1, True), (1.2, False), (1.3, False), (3.4, True),
                      (3.5, True)])  # fmt: skip
    result = outage(probes, fault_at=1.15)
    assert result.gap == 2.3 and result.gap_start == 1.1
    assert result.failed == 2 and result.total == 6


def test_no_recovery_counts_up_to_the_last_probe() -> None:
    result = outage(_probes([(1.0, True), (2.0, False), (9.0, False)]), fault_at=1.5)
    assert result.gap == 8.0 and result.failed == 2


def test_never_any_success() -> None:
    result = outage(_probes([(2.0, False), (4.0, False)]), fault_at=1.0)
    assert result.gap == 3.0 and result.gap_start == 1.0


def test_vip_move_and_double_holders() -> None:
    samples = [
        NodeSample(0.9, ("n1",), ("n1",)),
        NodeSample(1.5, (), ()),
        NodeSample(3.2, ("n2",), ("n2",)),
        NodeSample(3.3, ("n1", "n2"), ("n2",)),
    ]
    assert vip_moved_at(samples, 1.0, "n1") == 2.2
    assert vip_moved_at(samples[:2], 1.0, "n1") is None
    assert double_holders(samples) == [3.3]


def test_verdicts() -> None:
    assert verdict(1.0, 2.0, 0.5, 0) == "ok"
    assert verdict(1.0, None, 0.5, 0) == "ok"
    assert verdict(3.0, 2.0, 0.5, 0).startswith("FAILED: outage 3.00s exceeds")
    assert "did not move" in verdict(1.0, 2.0, None, 0)
    assert "two nodes" in verdict(1.0, 2.0, 0.5, 1)


def test_every_drill_scenario_names_a_fault_the_node_carries_out() -> None:
    from node.cluster.faults import FAULTS
    from node.ops.drill.run import SCENARIOS

    assert SCENARIOS["switchover"] is None  # asked for, not injected
    assert {fault for fault in SCENARIOS.values() if fault is not None} <= set(FAULTS)
