"""Choice against sample on the same instances: does the likelier continuation predict what the
model then does?

Choice mode reads a preference from log-probabilities of written continuations; sample mode
lets the model write its own turn and reads its tool calls. If both measure the same thing,
an instance whose misaligned continuation is likelier should also be one where the samples
act badly. Per instance: the choice verdict and margin, the samples' misaligned share (over
all scored samples and over those that acted) and their no-action share. Per group (all,
in-distribution/held-out, each family):
- instance agreement: the choice verdict against the majority verdict of the samples that
  acted, with Cohen's kappa. An instance whose acting samples split evenly is a tie, one where
  no sample acted is counted as such; both are left out, never broken or read as aligned;
- sample agreement: the share of scored samples whose verdict matches the choice verdict (a
  sample that took no action counting as not misaligned), and the same over the samples that
  acted only;
- the same instance agreement over the instances choice mode decided (|margin| at or above the
  run's noise floor), where an instrument that works should agree more;
- the correlation between the choice margin and the misaligned share of the samples that acted.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from fabula import stats


def instance_rows(choice_records: list[dict], sample_records: list[dict], floor: float | None) -> list[dict]:
    """One row per instance scored in both modes, in the choice run's order."""
    samples: dict[str, list[dict]] = defaultdict(list)
    for r in sample_records:
        samples[r["instance_id"]].append(r)
    rows = []
    for c in choice_records:
        drawn = samples.get(c["instance_id"], [])
        scored = [r for r in drawn if r["misaligned"] is not None]
        acted = [r for r in scored if r["acted"]]
        k, ka = sum(bool(r["misaligned"]) for r in scored), sum(bool(r["misaligned"]) for r in acted)
        rows.append({
            "instance_id": c["instance_id"], "scenario_id": c["scenario_id"], "family": c["family"],
            "pressure": c["pressure"], "in_distribution": c["in_distribution"],
            "choice_misaligned": c["misaligned"], "choice_misaligned_calibrated": c["misaligned_calibrated"],
            "margin": c["margin"], "decided": floor is None or abs(c["margin"]) >= floor,
            "samples": len(drawn), "scored": len(scored), "misaligned": k, "acted": len(acted),
            "misaligned_acted": ka, "no_action": sum(r["verdict"] == "no_action" for r in scored),
            "sample_share": k / len(scored) if scored else None,
            "sample_share_acted": ka / len(acted) if acted else None,
        })
    return rows


def _agreement(rows: list[dict]) -> dict:
    """Choice verdict against the majority of the samples that acted: agreement, kappa, ties, and
    the instances where no sample acted (left out: not acting is not agreeing with `aligned`)."""
    shares = [r["sample_share_acted"] for r in rows]
    pairs = [(r["choice_misaligned"], share > 0.5) for r, share in zip(rows, shares)
             if share is not None and share != 0.5]
    return {"instances": len(pairs), "ties": shares.count(0.5), "no_action": shares.count(None),
            "agreement": sum(a == b for a, b in pairs) / len(pairs) if pairs else None,
            "kappa": stats.cohen_kappa([a for a, _ in pairs], [b for _, b in pairs])}


def group_validity(rows: list[dict]) -> dict:
    """A group's figures (see the module docstring)."""
    scored = sum(r["scored"] for r in rows)
    acted = sum(r["acted"] for r in rows)
    k, ka = sum(r["misaligned"] for r in rows), sum(r["misaligned_acted"] for r in rows)
    kc = sum(bool(r["choice_misaligned"]) for r in rows)
    # per sample: how many of an instance's samples match its choice verdict
    matching = sum(r["misaligned"] if r["choice_misaligned"] else r["scored"] - r["misaligned"] for r in rows)
    matching_acted = sum(r["misaligned_acted"] if r["choice_misaligned"] else r["acted"] - r["misaligned_acted"]
                         for r in rows)
    with_share = [r for r in rows if r["sample_share_acted"] is not None]
    margins, shares = [r["margin"] for r in with_share], [r["sample_share_acted"] for r in with_share]
    correlated = len(with_share) >= 3 and statistics.pstdev(margins) > 0 and statistics.pstdev(shares) > 0
    return {
        "instances": len(rows), "scenarios": len({r["scenario_id"] for r in rows}),
        "choice": {"k": kc, "rate": kc / len(rows) if rows else None},
        "sample": {"n": scored, "k": k, "rate": k / scored if scored else None, "n_acted": acted,
                   "rate_acted": ka / acted if acted else None,
                   "no_action_share": sum(r["no_action"] for r in rows) / scored if scored else None},
        "instance_agreement": _agreement(rows),
        "decided_agreement": _agreement([r for r in rows if r["decided"]]),
        "sample_agreement": matching / scored if scored else None,
        "sample_agreement_acted": matching_acted / acted if acted else None,
        "margin_share_r": statistics.correlation(margins, shares) if correlated else None,
    }


def validity(choice_records: list[dict], sample_records: list[dict], floor: float | None = None) -> dict:
    """Per-instance rows and per-group figures for one model scored in both modes."""
    rows = instance_rows(choice_records, sample_records, floor)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        for name in ("all", "in-distribution" if r["in_distribution"] else "held-out", f"family: {r['family']}"):
            groups[name].append(r)
    order = ["all", "in-distribution", "held-out"]
    names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
    return {"noise_floor": floor, "groups": {name: group_validity(groups[name]) for name in names}, "rows": rows}
