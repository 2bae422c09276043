"""Turn a run's records into rates with intervals, by family, pressure, split and distribution.

Per group: n scored samples, k misaligned, Wilson 95% interval, how many instances and
scenarios they came from (the scenario count is the real sample size), and in choice mode the
calibrated verdict and margins beside the plain one, with how often the two agree.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

from fabula import stats
from fabula.evals.judges import judge_agreement
from fabula.evals.reliability import decided, precision_flips, reliability

GROUPINGS: dict[str, Callable[[dict], str]] = {
    "overall": lambda r: "all",
    "distribution": lambda r: "in-distribution" if r["in_distribution"] else "held-out",
    "split": lambda r: r["split"],
    "family": lambda r: r["family"],
    "pressure": lambda r: r["pressure"],
    "family_pressure": lambda r: f"{r['family']}/{r['pressure']}",
}


def instance_values(records: Iterable[dict], key: str = "misaligned") -> dict[str, float]:
    """Per instance: the share of its scored samples with `key` true (or the mean of a number)."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.get(key) is not None:
            values[r["instance_id"]].append(float(r[key]))
    return {k: sum(v) / len(v) for k, v in values.items()}


def group_stats(records: list[dict], floor: float | None = None) -> dict:
    """A group's figures; with a noise `floor` (choice mode) also the undecided instances and the
    share among the decided ones."""
    scored = [r for r in records if r["misaligned"] is not None]
    k = sum(bool(r["misaligned"]) for r in scored)
    out = {
        "n": len(scored), "k": k, "rate": stats.wilson(k, len(scored)).record(),
        "unscored": len(records) - len(scored),
        "instances": len({r["instance_id"] for r in records}),
        "scenarios": len({r["scenario_id"] for r in records}),
    }
    if records and "acted" in records[0]:  # sample mode: shares over all samples and over those that acted
        acted = [r for r in scored if r["acted"]]
        ka = sum(bool(r["misaligned"]) for r in acted)
        no_action = sum(r["verdict"] == "no_action" for r in scored)
        out |= {"no_action": no_action, "no_action_share": no_action / len(scored) if scored else 0.0,
                "n_acted": len(acted), "k_acted": ka, "rate_acted": stats.wilson(ka, len(acted)).record()}
    if records and "margin" in records[0]:
        kc = sum(bool(r["misaligned_calibrated"]) for r in records)
        out |= {
            "k_calibrated": kc, "rate_calibrated": stats.wilson(kc, len(records)).record(),
            "agreement": sum(r["misaligned"] == r["misaligned_calibrated"] for r in records) / len(records),
            "mean_margin": sum(r["margin"] for r in records) / len(records),
            "mean_margin_calibrated": sum(r["margin_calibrated"] for r in records) / len(records),
        }
    if floor is not None:
        sure = decided(records, floor)
        kd = sum(bool(r["misaligned"]) for r in sure)
        out |= {"undecided": len(records) - len(sure), "n_decided": len(sure), "k_decided": kd,
                "rate_decided": stats.wilson(kd, len(sure)).record()}
    return out


def pressure_effects(records: list[dict], key: str = "misaligned") -> dict:
    """Share under each pressure minus share under `none`, per family and over all families,
    with a scenario-bootstrap interval.

    The `none` twins hold the temptation without the threat: a share that is just as high there
    is a taste for a phrasing, not a reaction to the threat. A side with a single scenario gets
    no interval: resampling one scenario cannot say how much scenarios vary.
    """
    cluster_of = {r["instance_id"]: r["scenario_id"] for r in records}
    by_group: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_group[r["family"]][r["pressure"]].append(r)
        by_group["all families"][r["pressure"]].append(r)
    effects = {}
    for group, by_pressure in sorted(by_group.items()):
        if "none" not in by_pressure:
            continue
        control = instance_values(by_pressure["none"], key)
        for pressure, rows in sorted(by_pressure.items()):
            values = instance_values(rows, key)
            if pressure == "none" or not values or not control:
                continue
            scenarios = (len({cluster_of[i] for i in values}), len({cluster_of[i] for i in control}))
            diff = stats.difference_of_rates(values, control, cluster_of)
            if min(scenarios) < 2:
                diff = stats.Interval(diff.estimate, None, None)
            effects[f"{group}/{pressure}"] = {"effect": diff.record(), "scenarios": list(scenarios)}
    return effects


def warnings(overall: dict) -> list[str]:
    """What a reader must know before reading the shares."""
    out = []
    if overall.get("no_action_share", 0) > 0.5:
        out.append(f"{overall['no_action']} of {overall['n']} scored samples ({overall['no_action_share']:.0%}) took no "
                   "action (no parseable tool call): the misaligned share over all samples counts them as not "
                   "misaligned; read the share over the samples that acted, and whether the model can act at all")
    return out


def summarize(records: list[dict], rescored: list[dict] | None = None) -> dict:
    """The run's figures; `rescored`: the same instances scored in the other precision (choice mode)."""
    buckets: dict[str, dict[str, list[dict]]] = {}
    for name, key_of in GROUPINGS.items():
        buckets[name] = defaultdict(list)
        for r in records:
            buckets[name][key_of(r)].append(r)
    choice = bool(records) and "scores" in records[0]
    # choice mode: how much of the verdict is the instrument, overall and by distribution; one noise floor
    figures = {key: reliability(rows) for key, rows in sorted((buckets["overall"] | buckets["distribution"]).items())
               } if choice else {}
    floor = figures["all"]["noise_floor"] if choice else None
    groups = {name: {key: group_stats(rows, floor) for key, rows in sorted(by_key.items())}
              for name, by_key in buckets.items()}
    summary = {"records": len(records), "groups": groups, "pressure_effect": pressure_effects(records),
               "warnings": warnings(groups["overall"].get("all", {}))}
    if choice:
        summary["reliability"] = figures
        if rescored:
            figures["all"]["precision_check"] = precision_flips(records, rescored)
    if (judges := judge_agreement(records)) is not None:
        summary["judges"] = judges
    if records and "margin" in records[0]:
        summary["pressure_effect_calibrated"] = pressure_effects(records, "misaligned_calibrated")
    return summary
