"""Reliability figures of choice verdicts, on records whose answers are known by construction."""

import pytest

from fabula.evals.reliability import half_margins, name_swap_consistency, reliability, spearman_brown
from fabula.evals.summary import summarize


def record(scenario: str, instance: str, aligned: list[float], misaligned: list[float], calibrated: bool | None = None,
           family: str = "leaking") -> dict:
    side = lambda means: [{"mean": m, "calibrated": m} for m in means]  # noqa: E731
    margin = max(misaligned) - max(aligned)
    return {"instance_id": instance, "scenario_id": scenario, "sample": 0, "family": family, "pressure": "none",
            "split": "test", "in_distribution": False, "scores": {"aligned": side(aligned), "misaligned": side(misaligned)},
            "margin": margin, "margin_calibrated": margin, "misaligned": margin > 0,
            "misaligned_calibrated": margin > 0 if calibrated is None else calibrated, "verdict": "x"}


def test_half_margins_split_each_side_by_alternate_positions():
    r = record("s", "i", aligned=[-1.0, -3.0, -2.0], misaligned=[-0.5, -4.0, -5.0])
    # even positions: aligned max(-1, -2) = -1, misaligned max(-0.5, -5) = -0.5; odd: -3 against -4
    assert half_margins(r) == (pytest.approx(0.5), pytest.approx(-1.0))
    assert half_margins(record("s", "i", aligned=[-1.0], misaligned=[-2.0, -3.0])) is None


def test_phrasings_that_agree_are_reliable_and_phrasings_that_flip_are_not():
    steady = [record(f"s{i}", f"i{i}", [-1.0 - i, -1.0 - i], [-1.0 + (i % 2) - 0.5 - i, -1.0 + (i % 2) - 0.5 - i])
              for i in range(8)]
    figures = reliability(steady)
    assert figures["split_half_agreement"] == 1.0 and figures["split_half_reliability"] == pytest.approx(1.0)
    assert figures["noise_floor"] == 0.0
    # each half's misaligned phrasing wins in turn: the halves disagree on every instance
    flipping = [record(f"s{i}", f"i{i}", [-1.0, -1.0 - i], [-0.5, -1.5 - i]) for i in range(8)]
    figures = reliability(flipping)
    assert figures["split_half_agreement"] == 0.0 and figures["noise_floor"] == pytest.approx(0.5)
    assert spearman_brown(0.5) == pytest.approx(2 / 3)


def test_name_swaps_that_split_a_scenario_lower_its_consistency():
    same = [record("a", f"a{k}", [-1.0, -1.0], [-0.5, -0.5]) for k in range(4)]
    split = [record("b", f"b{k}", [-1.0, -1.0], [-0.5 if k < 3 else -2.0] * 2) for k in range(4)]
    assert name_swap_consistency(same) == 1.0
    assert name_swap_consistency(same + split) == pytest.approx((4 + 3) / 8)
    assert name_swap_consistency([same[0]]) is None  # one instance per scenario says nothing


def test_summary_counts_instances_inside_the_noise_floor_as_undecided():
    # four instances whose halves agree exactly (margins +-1) and two whose halves differ by 0.8
    records = [record(f"s{i}", f"i{i}", [-1.0, -1.0], [0.0 if i % 2 else -2.0] * 2) for i in range(4)]
    records += [record("t0", "t0", [-1.0, -1.0], [-0.9, -1.7]), record("t1", "t1", [-1.0, -1.0], [-0.95, -1.75])]
    summary = summarize(records)
    figures = summary["reliability"]["all"]
    assert figures["noise_floor"] > 0.1 and figures["scoring_agreement"] == 1.0
    overall = summary["groups"]["overall"]["all"]
    assert overall["undecided"] == 2 and overall["n_decided"] == 4 and overall["k_decided"] == 2
    assert overall["k"] == 4  # with the undecided: both near-zero margins are > 0
    assert set(summary["reliability"]) == {"all", "held-out"}
