"""Statistics for misalignment rates: intervals, tests, ratios, paired shifts, seed pooling.

Instances expanded from one scenario's `vars` share everything but names, so they are not
independent: every bootstrap here resamples *scenarios* (clusters), never instances.
The closed-form formulas are a few lines each, written out so the runtime needs only numpy;
tests check them against statsmodels and scipy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np

Z95 = NormalDist().inv_cdf(0.975)
N_BOOT = 2000


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95% interval; low and high are None where no interval can be given
    (a pressure effect from a single scenario)."""

    estimate: float
    low: float | None
    high: float | None

    def excludes(self, value: float) -> bool:
        return not (self.low <= value <= self.high)

    def record(self) -> dict:
        """The one form summary.json holds an interval in."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    @classmethod
    def from_record(cls, holder: Mapping, key: str) -> Interval | None:
        """`holder[key]` as record() wrote it; None where there is none. Run folders written
        before record() hold a bare estimate under `key` with [low, high] beside it, under `ci`
        (`ci_acted` beside `rate_acted`): read too, so old folders still report."""
        value = holder.get(key)
        if value is None:
            return None
        if isinstance(value, Mapping):
            return cls(value["estimate"], value["low"], value["high"])
        low, high = holder.get("ci" + (key.removeprefix("rate") if key.startswith("rate") else "")) or (None, None)
        return cls(value, low, high)

    def fmt(self, spec: str = ".2f", bounds_only: bool = False) -> str:
        """The one text form of an interval, each number in format `spec`: "0.41 [0.30, 0.52]",
        ".0%" "41% [30%, 52%]", "+.2f" "+0.19 [+0.13, +0.25]"; `bounds_only` leaves out the
        estimate where a column beside shows it. Without bounds: the estimate alone."""
        bounds = "" if self.low is None else f"[{self.low:{spec}}, {self.high:{spec}}]"
        if bounds_only:
            return bounds
        return f"{self.estimate:{spec}}" + (f" {bounds}" if bounds else "")


def interval_text(holder: Mapping, key: str, spec: str = ".2f", bounds_only: bool = False) -> str:
    """`holder[key]` as Interval.fmt writes it, or "-" where the holder has none: what every table
    and the report print."""
    interval = Interval.from_record(holder, key)
    return "-" if interval is None else interval.fmt(spec, bounds_only)


def wilson(k: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for k successes in n trials (stays inside [0, 1], sane at 0 and n)."""
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Pooled two-sided z-test of p1 == p2: (z, p-value)."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, 2 * (1 - NormalDist().cdf(abs(z)))


def rate_ratio(k_base: int, n_base: int, k_treated: int, n_treated: int, z: float = Z95) -> Interval:
    """Baseline rate / treated rate with the log (Katz) interval.

    A zero count makes the log undefined; then 0.5 is added to every cell (Haldane), as is usual.
    """
    if 0 in (k_base, k_treated):
        k_base, k_treated, n_base, n_treated = k_base + 0.5, k_treated + 0.5, n_base + 1, n_treated + 1
    ratio = (k_base / n_base) / (k_treated / n_treated)
    se = math.sqrt(1 / k_base - 1 / n_base + 1 / k_treated - 1 / n_treated)
    return Interval(ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se))


def _percentile(estimate: float, draws: np.ndarray) -> Interval:
    """Percentile interval. Infinite draws (a ratio over a zero rate) are kept, so the upper
    bound says 'unbounded' rather than pretending; only undefined (nan) draws are dropped."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0:
        return Interval(estimate, float("nan"), float("nan"))
    low, high = np.quantile(draws, [0.025, 0.975], method="inverted_cdf")
    return Interval(estimate, float(low), float(high))


def cluster_bootstrap(clusters: Sequence[Hashable], stat: Callable[[list], float],
                      n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Resample clusters with replacement; `stat` gets the resampled list of cluster keys."""
    keys = sorted(set(clusters), key=str)
    rng = np.random.default_rng(seed)
    draws = np.array([stat([keys[i] for i in rng.integers(0, len(keys), len(keys))]) for _ in range(n_boot)])
    return _percentile(stat(keys), draws)


def _cluster_sums(values: Mapping[str, float], cluster_of: Mapping[str, Hashable]) -> tuple[list, np.ndarray, np.ndarray]:
    """Per cluster: (keys, sum of values, number of values), for vectorised resampling."""
    grouped: dict[Hashable, list[float]] = defaultdict(list)
    for key, value in values.items():
        grouped[cluster_of[key]].append(value)
    keys = sorted(grouped, key=str)
    return keys, np.array([sum(grouped[k]) for k in keys]), np.array([len(grouped[k]) for k in keys], dtype=float)


def _draws(n_clusters: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot resamples of cluster indices, one row each."""
    return rng.integers(0, n_clusters, size=(n_boot, n_clusters))


def _mean(sums: np.ndarray, counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[idx].sum(-1) / counts[idx].sum(-1)


def cluster_mean(values: Mapping[str, float], cluster_of: Mapping[str, Hashable],
                 n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Mean of per-instance values with a cluster-bootstrap interval (resampling scenarios)."""
    _, sums, counts = _cluster_sums(values, cluster_of)
    idx = _draws(len(sums), n_boot, np.random.default_rng(seed))
    return _percentile(sums.sum() / counts.sum(), _mean(sums, counts, idx))


def correlation(x: Sequence[float], y: Sequence[float], n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Pearson r with a bootstrap interval over the points (draws with no spread are dropped)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 3:
        raise ValueError("a correlation needs at least 3 points")
    idx = np.random.default_rng(seed).integers(0, len(xs), size=(n_boot, len(xs)))
    bx, by = xs[idx], ys[idx]
    bx, by = bx - bx.mean(1, keepdims=True), by - by.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (bx * by).sum(1) / np.sqrt((bx ** 2).sum(1) * (by ** 2).sum(1))
    return _percentile(float(np.corrcoef(xs, ys)[0, 1]), r[np.isfinite(r)])


def paired_shift(before: Mapping[str, float], after: Mapping[str, float],
                 cluster_of: Mapping[str, Hashable], n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Mean per-instance change (after - before) over instances both runs scored, with a
    cluster-bootstrap interval. Far more sensitive than comparing shares."""
    shared = sorted(set(before) & set(after))
    if not shared:
        raise ValueError("the two runs share no instances")
    _, sums, counts = _cluster_sums({k: after[k] - before[k] for k in shared}, cluster_of)
    idx = _draws(len(sums), n_boot, np.random.default_rng(seed))
    return _percentile(sums.sum() / counts.sum(), _mean(sums, counts, idx))


def bootstrap_ratio(base: Mapping[str, float], treated: Mapping[str, float],
                    cluster_of: Mapping[str, Hashable], n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Ratio of mean misalignment (base / treated), cluster bootstrap.

    Values are per-instance misaligned shares (0/1, or a fraction of samples). When both runs
    scored the same instances the resampled clusters are shared (paired); otherwise each side
    is resampled on its own.
    """
    kb, sb, cb = _cluster_sums(base, cluster_of)
    kt, st, ct = _cluster_sums(treated, cluster_of)
    rng = np.random.default_rng(seed)
    if set(base) == set(treated):
        idx = _draws(len(kb), n_boot, rng)
        rb, rt = _mean(sb, cb, idx), _mean(st, ct, idx)
    else:
        rb, rt = _mean(sb, cb, _draws(len(kb), n_boot, rng)), _mean(st, ct, _draws(len(kt), n_boot, rng))
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(rt > 0, rb / np.where(rt > 0, rt, 1), np.inf)
    rate_t = st.sum() / ct.sum()
    return _percentile((sb.sum() / cb.sum()) / rate_t if rate_t > 0 else float("inf"), draws)


def difference_of_rates(a: Mapping[str, float], b: Mapping[str, float], cluster_of: Mapping[str, Hashable],
                        n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """mean(a) - mean(b) for two disjoint groups of instances, each resampled by scenario
    (used for the pressure effect: share under a pressure minus share under `none`)."""
    _, sa, ca = _cluster_sums(a, cluster_of)
    _, sb, cb = _cluster_sums(b, cluster_of)
    rng = np.random.default_rng(seed)
    draws = _mean(sa, ca, _draws(len(sa), n_boot, rng)) - _mean(sb, cb, _draws(len(sb), n_boot, rng))
    return _percentile(sa.sum() / ca.sum() - sb.sum() / cb.sum(), draws)


def pool_seeds(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average each instance's value over the seeds (runs) that scored it.

    Seeds are repeated measurements of the same instance, not new instances: pooling them
    this way keeps the bootstrap's unit the scenario, so more seeds cannot fake precision.
    """
    sums: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for key, value in run.items():
            sums[key].append(value)
    return {key: sum(v) / len(v) for key, v in sums.items()}


def mcnemar(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for b and c discordant pairs (baseline-only misaligned,
    treated-only misaligned): the binomial test of b against b + c at one half. Exact at every
    count (integer arithmetic), so no switch to the chi-square approximation is needed."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def paired_verdicts(base: Mapping[str, float], treated: Mapping[str, float],
                    cluster_of: Mapping[str, Hashable] | None = None) -> dict:
    """McNemar for two models on the same units: each instance's verdict is its misaligned share
    above one half (one sample: the verdict itself); a share of exactly one half is a tie,
    dropped and counted, never broken. With `cluster_of` the units are scenarios (the mean of
    their instances' shares), the unit the bootstrap resamples: name swaps are not independent."""
    if cluster_of is not None:
        base, treated = (cluster_mean_by(values, cluster_of) for values in (base, treated))
    shared = sorted(set(base) & set(treated))
    cells = {"both": 0, "baseline_only": 0, "treated_only": 0, "neither": 0}
    ties = 0
    for key in shared:
        if base[key] == 0.5 or treated[key] == 0.5:
            ties += 1
            continue
        b, t = base[key] > 0.5, treated[key] > 0.5
        cells["both" if b and t else "baseline_only" if b else "treated_only" if t else "neither"] += 1
    return {"units": len(shared), "ties": ties, **cells,
            "p_value": mcnemar(cells["baseline_only"], cells["treated_only"])}


def cluster_mean_by(values: Mapping[str, float], cluster_of: Mapping[str, Hashable]) -> dict[Hashable, float]:
    """The mean value of each cluster's members."""
    grouped: dict[Hashable, list[float]] = defaultdict(list)
    for key, value in values.items():
        grouped[cluster_of[key]].append(value)
    return {cluster: sum(v) / len(v) for cluster, v in grouped.items()}


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Cohen's kappa of two raters' yes/no answers on the same items; None when chance agreement
    is total (both always say the same one thing), where kappa is undefined."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[bool]]) -> float | None:
    """Fleiss' kappa for yes/no answers, one row per item with the same number (>= 2) of raters;
    None when undefined (no items, or every answer the same)."""
    if not ratings:
        return None
    m = len(ratings[0])
    yes = np.array([sum(row) for row in ratings], dtype=float)
    counts = np.stack([yes, m - yes], axis=1)
    p_item = ((counts * (counts - 1)).sum(1) / (m * (m - 1))).mean()
    shares = counts.sum(0) / counts.sum()
    expected = float((shares ** 2).sum())
    return None if expected == 1 else float((p_item - expected) / (1 - expected))


def undone_share(baseline: Mapping[str, float], arm: Mapping[str, float], control: Mapping[str, float],
                 cluster_of: Mapping[str, Hashable], n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The share of the prior an arm undoes: (baseline - arm) / (baseline - control), over the
    instances all three scored, each draw of one scenario bootstrap resampling the same scenarios
    for all three. The prior (baseline - control) comes with its interval; the share is given only
    where that interval excludes 0, since nothing can be undone of a prior that may not exist."""
    shared = sorted(set(baseline) & set(arm) & set(control))
    if not shared:
        raise ValueError("the three runs share no instances")
    sums = [_cluster_sums({k: values[k] for k in shared}, cluster_of) for values in (baseline, arm, control)]
    counts = sums[0][2]
    idx = _draws(len(counts), n_boot, np.random.default_rng(seed))
    (b, a, c), (db, da, dc) = ([s.sum() / counts.sum() for _, s, _ in sums],
                               [_mean(s, counts, idx) for _, s, _ in sums])
    prior = _percentile(b - c, db - dc)
    out = {"instances": len(shared), "scenarios": len(counts), "prior": prior.record(), "undone": None,
           "defined": prior.excludes(0)}
    if out["defined"]:
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = (db - da) / (db - dc)
        out["undone"] = _percentile((b - a) / (b - c), draws[np.isfinite(draws)]).record()
    return out
