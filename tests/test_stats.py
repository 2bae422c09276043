"""Statistics checked against independent implementations (statsmodels, scipy) and known cases."""

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from fabula import stats


@pytest.mark.parametrize("k, n", [(0, 10), (7, 40), (40, 40), (123, 480), (1, 3)])
def test_wilson_matches_statsmodels(k, n):
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    got = stats.wilson(k, n)
    assert got.estimate == pytest.approx(k / n)
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-9)


@pytest.mark.parametrize("k1, n1, k2, n2", [(30, 100, 12, 90), (5, 50, 5, 50), (200, 480, 150, 480)])
def test_two_proportion_test_matches_statsmodels(k1, n1, k2, n2):
    z, p = proportions_ztest([k1, k2], [n1, n2])
    assert stats.two_proportion_test(k1, n1, k2, n2) == pytest.approx((z, p), abs=1e-9)


@pytest.mark.parametrize("k1, n1, k2, n2", [(30, 100, 12, 90), (65, 100, 19, 100), (10, 480, 9, 480)])
def test_rate_ratio_log_interval_matches_statsmodels(k1, n1, k2, n2):
    low, high = confint_proportions_2indep(k1, n1, k2, n2, method="log", compare="ratio")
    got = stats.rate_ratio(k1, n1, k2, n2)
    assert got.estimate == pytest.approx((k1 / n1) / (k2 / n2))
    assert (got.low, got.high) == pytest.approx((low, high), rel=1e-9)


def test_rate_ratio_with_a_zero_count_stays_finite():
    got = stats.rate_ratio(40, 100, 0, 100)
    assert np.isfinite(got.high) and got.low > 1


def clustered_data(n_clusters=30, per_cluster=12, seed=1):
    """Instances in a cluster share their value: the extreme case of name-swapped instances."""
    rng = np.random.default_rng(seed)
    values, cluster_of = {}, {}
    for c in range(n_clusters):
        v = float(rng.random() < 0.4)
        for i in range(per_cluster):
            values[f"s{c}--{i}"] = v
            cluster_of[f"s{c}--{i}"] = f"s{c}"
    return values, cluster_of


def test_cluster_bootstrap_is_wider_than_treating_instances_as_independent():
    values, cluster_of = clustered_data()
    clustered = stats.cluster_bootstrap(list(cluster_of.values()),
                                        lambda keys: np.mean([values[i] for c in keys for i in values if cluster_of[i] == c]))
    naive = stats.wilson(int(sum(values.values())), len(values))
    assert (clustered.high - clustered.low) > 2 * (naive.high - naive.low)


def test_paired_shift_recovers_a_known_shift_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    cluster_of = {f"s{c}--{i}": f"s{c}" for c in range(40) for i in range(5)}
    before = {k: rng.normal() for k in cluster_of}
    after = {k: v - 0.3 + rng.normal(scale=0.05) for k, v in before.items()}
    shift = stats.paired_shift(before, after, cluster_of)
    assert shift.estimate == pytest.approx(-0.3, abs=0.02)
    assert shift.low < -0.3 < shift.high and shift.excludes(0)


def test_paired_shift_of_identical_runs_is_zero():
    values, cluster_of = clustered_data()
    shift = stats.paired_shift(values, values, cluster_of)
    assert (shift.estimate, shift.low, shift.high) == (0, 0, 0)


def test_bootstrap_ratio_paired_interval_is_narrower_than_unpaired_when_instances_correlate():
    rng = np.random.default_rng(3)
    cluster_of = {f"s{c}--{i}": f"s{c}" for c in range(40) for i in range(4)}
    difficulty = {c: rng.random() for c in set(cluster_of.values())}
    base = {k: float(rng.random() < 0.2 + 0.7 * difficulty[c]) for k, c in cluster_of.items()}
    treated = {k: float(base[k] and rng.random() < 0.5) for k in base}
    paired = stats.bootstrap_ratio(base, treated, cluster_of)
    # drop one instance from `treated` so the sets differ and the sides are resampled separately
    unpaired = stats.bootstrap_ratio(base, {k: v for k, v in list(treated.items())[1:]}, cluster_of)
    assert paired.estimate == pytest.approx(sum(base.values()) / sum(treated.values()))
    assert paired.low > 1
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low)


def test_difference_of_rates():
    cluster_of = {f"a{c}--{i}": f"a{c}" for c in range(10) for i in range(3)}
    cluster_of |= {f"b{c}--{i}": f"b{c}" for c in range(10) for i in range(3)}
    a = {k: 1.0 for k in cluster_of if k.startswith("a")}
    b = {k: float(k.startswith("b0") or k.startswith("b1")) for k in cluster_of if k.startswith("b")}
    diff = stats.difference_of_rates(a, b, cluster_of)
    assert diff.estimate == pytest.approx(1 - 0.2)
    assert diff.low > 0.4 and diff.high <= 1.0


def test_pool_seeds_averages_per_instance():
    pooled = stats.pool_seeds([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0, "c": 1.0}])
    assert pooled == {"a": 0.5, "b": 0.0, "c": 1.0}


def test_bootstrap_ratio_over_a_zero_treated_rate_is_unbounded_not_dropped():
    cluster_of = {f"s{c}--0": f"s{c}" for c in range(20)}
    base = {k: 1.0 for k in cluster_of}
    treated = {k: float(k == "s0--0") for k in cluster_of}
    ratio = stats.bootstrap_ratio(base, treated, cluster_of)
    assert ratio.estimate == 20 and ratio.high == float("inf") and ratio.low > 1


@pytest.mark.parametrize("b, c", [(0, 0), (1, 0), (3, 11), (9, 9), (25, 40), (120, 151)])
def test_exact_mcnemar_matches_statsmodels(b, c):
    from statsmodels.stats.contingency_tables import mcnemar

    expected = mcnemar([[5, b], [c, 7]], exact=True).pvalue
    assert stats.mcnemar(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_paired_verdicts_count_discordant_pairs_and_drop_ties():
    base = {"a1": 1.0, "a2": 1.0, "b1": 1.0, "c1": 0.0, "d1": 0.5, "e1": 1.0}
    treated = {"a1": 0.0, "a2": 0.0, "b1": 1.0, "c1": 1.0, "d1": 0.0, "e1": 0.25, "only-here": 1.0}
    result = stats.paired_verdicts(base, treated)
    assert (result["units"], result["ties"]) == (6, 1)  # d1 sat at one half: a tie, never broken
    assert (result["both"], result["baseline_only"], result["treated_only"], result["neither"]) == (1, 3, 1, 0)
    from statsmodels.stats.contingency_tables import mcnemar

    assert result["p_value"] == pytest.approx(mcnemar([[1, 3], [1, 0]], exact=True).pvalue)
    # by scenario: a = mean(a1, a2) on both sides; the swaps count once
    scenarios = stats.paired_verdicts(base, treated, {k: k[0] for k in base | treated})
    assert scenarios["units"] == 5 and scenarios["baseline_only"] == 2 and scenarios["treated_only"] == 1


def test_kappas_match_statsmodels():
    from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

    rng = np.random.default_rng(3)
    truth = rng.random(60) < 0.4
    raters = np.stack([truth ^ (rng.random(60) < flip) for flip in (0.1, 0.2, 0.35)], axis=1)
    a, b = raters[:, 0].tolist(), raters[:, 1].tolist()
    table = np.array([[sum(x and y for x, y in zip(a, b)), sum(x and not y for x, y in zip(a, b))],
                      [sum(y and not x for x, y in zip(a, b)), sum(not x and not y for x, y in zip(a, b))]])
    assert stats.cohen_kappa(a, b) == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)
    counts, _ = aggregate_raters(raters.astype(int))
    assert stats.fleiss_kappa(raters.tolist()) == pytest.approx(fleiss_kappa(counts, method="fleiss"), abs=1e-12)
    assert stats.cohen_kappa([True] * 5, [True] * 5) is None  # chance agreement total: undefined
    assert stats.cohen_kappa([True, True, False], [False, False, True]) == pytest.approx(-0.8)


def test_undone_share_is_the_arm_s_part_of_the_prior_and_undefined_without_one():
    scenarios = [f"s{k}" for k in range(12)]
    cluster_of = {f"{s}-{i}": s for s in scenarios for i in range(2)}
    control = {k: 0.0 for k in cluster_of}
    baseline = {k: 1.0 if int(k[1:].split("-")[0]) < 8 else 0.0 for k in cluster_of}  # 8 of 12 scenarios: prior 2/3
    arm = {k: v if int(k[1:].split("-")[0]) < 4 else 0.0 for k, v in baseline.items()}  # undoes half of it
    result = stats.undone_share(baseline, arm, control, cluster_of)
    assert result["defined"] and result["prior"]["estimate"] == pytest.approx(2 / 3)
    assert result["undone"]["estimate"] == pytest.approx(0.5)
    assert result["undone"]["low"] <= 0.5 <= result["undone"]["high"] and result["scenarios"] == 12
    null = stats.undone_share(control, arm, control, cluster_of)  # no prior: nothing to undo
    assert not null["defined"] and null["undone"] is None and null["prior"]["estimate"] == 0


def test_an_interval_is_written_read_and_printed_one_way():
    interval = stats.Interval(0.41, 0.304, 0.52)
    assert interval.record() == {"estimate": 0.41, "low": 0.304, "high": 0.52}
    assert stats.Interval.from_record({"rate": interval.record()}, "rate") == interval
    # the form older run folders hold: a bare estimate, [low, high] beside it
    old = {"rate": 0.41, "ci": [0.304, 0.52], "rate_acted": 0.5, "ci_acted": [0.2, 0.8]}
    assert stats.Interval.from_record(old, "rate") == interval
    assert stats.Interval.from_record(old, "rate_acted") == stats.Interval(0.5, 0.2, 0.8)
    assert stats.Interval.from_record({"r": 0.3, "ci": [0.1, 0.5]}, "r") == stats.Interval(0.3, 0.1, 0.5)
    assert stats.Interval.from_record({"effect": 0.1, "ci": None}, "effect") == stats.Interval(0.1, None, None)
    assert stats.Interval.from_record({"r": None}, "r") is None
    assert interval.fmt() == "0.41 [0.30, 0.52]" and interval.fmt(".0%") == "41% [30%, 52%]"
    assert stats.Interval(0.19, 0.13, -0.25).fmt("+.2f") == "+0.19 [+0.13, -0.25]"
    assert interval.fmt(bounds_only=True) == "[0.30, 0.52]"
    assert stats.Interval(0.19, None, None).fmt("+.2f") == "+0.19"  # no interval from a single scenario
    assert stats.interval_text({}, "margin_shift") == "-" and stats.interval_text(old, "rate", ".0%") == "41% [30%, 52%]"
