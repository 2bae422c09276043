"""`fabula compare`: a baseline run (or seeds of it) against a treated run, group by group.

Per group: both rates with Wilson intervals, the rate ratio (baseline / treated) with the log
interval and a scenario-cluster bootstrap (paired when both scored the same instances), the
two-proportion p-value, when paired the exact McNemar test over instances and over scenarios,
and in choice mode the paired per-instance margin shift, which sees effects far smaller than a
change of share can.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fabula import stats
from fabula.evals.summary import instance_values
from fabula.jsonl import read_records


def load_runs(spec: str) -> list[list[dict]]:
    """`DIR` or `DIR1,DIR2,...` (seeds of one arm, pooled); each must be a finished run."""
    runs = []
    for part in spec.split(","):
        folder = Path(part)
        if not (folder / "summary.json").exists():
            what = "an unfinished run (no summary.json): resume it first" if (folder / "run.json").exists() \
                else "not a fabula run folder"
            raise ValueError(f"{folder} is {what}")
        runs.append(read_records(folder / "samples.jsonl"))
    return runs


def _counts(runs: list[list[dict]], key: str) -> tuple[int, int]:
    scored = [r for run in runs for r in run if r.get(key) is not None]
    return sum(bool(r[key]) for r in scored), len(scored)


def _no_action_share(runs: list[list[dict]]) -> float | None:
    """Sample mode: the share of scored samples that took no action (None in choice mode)."""
    scored = [r for run in runs for r in run if r.get("misaligned") is not None and "acted" in r]
    return sum(r["verdict"] == "no_action" for r in scored) / len(scored) if scored else None


def compare_groups(base_runs: list[list[dict]], treated_runs: list[list[dict]], calibrated: bool = False,
                   family_sets: dict[str, set[str]] | None = None) -> dict:
    """Per group (all, in-distribution, held-out, each family, and each named set of families)."""
    key = "misaligned_calibrated" if calibrated else "misaligned"
    margin_key = "margin_calibrated" if calibrated else "margin"
    cluster_of = {r["instance_id"]: r["scenario_id"] for run in base_runs + treated_runs for r in run}

    def groups(runs: list[list[dict]]) -> dict[str, list[list[dict]]]:
        out: dict[str, list[list[dict]]] = defaultdict(lambda: [[] for _ in runs])
        for i, run in enumerate(runs):
            for r in run:
                names = ["all", "in-distribution" if r["in_distribution"] else "held-out", r["family"]]
                names += [n for n, fams in (family_sets or {}).items() if r["family"] in fams]
                for name in names:
                    out[name][i].append(r)
        return out

    gb, gt = groups(base_runs), groups(treated_runs)
    result = {}
    for name in [g for g in gb if g in gt]:
        kb, nb = _counts(gb[name], key)
        kt, nt = _counts(gt[name], key)
        if not nb or not nt:  # nothing scored on one side (sample mode: all unscored)
            continue
        vb = stats.pool_seeds([instance_values(run, key) for run in gb[name]])
        vt = stats.pool_seeds([instance_values(run, key) for run in gt[name]])
        row = {
            "baseline": {"k": kb, "n": nb, "rate": stats.wilson(kb, nb).record()},
            "treated": {"k": kt, "n": nt, "rate": stats.wilson(kt, nt).record()},
            "ratio_log": stats.rate_ratio(kb, nb, kt, nt).record(),
            "ratio_bootstrap": stats.bootstrap_ratio(vb, vt, cluster_of).record(),
            "paired": set(vb) == set(vt),
            "p_value": stats.two_proportion_test(kb, nb, kt, nt)[1],
            "scenarios": len({cluster_of[i] for i in vb | vt}),
        }
        if row["paired"]:
            row["share_shift"] = stats.paired_shift(vb, vt, cluster_of).record()
            # McNemar on the same instances, and on scenarios (the unit the bootstrap resamples)
            row["mcnemar"] = stats.paired_verdicts(vb, vt)
            row["mcnemar_scenarios"] = stats.paired_verdicts(vb, vt, cluster_of)
        if not calibrated and _no_action_share(gb[name]) is not None:  # a drop in share may be a drop in acting
            row["no_action"] = {"baseline": _no_action_share(gb[name]), "treated": _no_action_share(gt[name])}
        mb = stats.pool_seeds([instance_values(run, margin_key) for run in gb[name]])
        mt = stats.pool_seeds([instance_values(run, margin_key) for run in gt[name]])
        if set(mb) & set(mt):
            row["margin_shift"] = stats.paired_shift(mb, mt, cluster_of).record()
        result[name] = row
    return result
