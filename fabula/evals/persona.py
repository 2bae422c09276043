"""The persona prior: what a model expects an AI character under pressure to do.

The probes (`fabula/evals/probes/`, family `persona-prior`, render: document) are passages in
forms a model met in pre-training (fiction, first-person narration, news, forum posts, film
synopses, encyclopedia entries, interviews) that stop where the AI's response is about to be
told. The persona-prior score is the share of probes whose misaligned continuation the model
finds likelier. Mediation asks whether that expectation explains the honeypot results across
models: one point per model, a correlation with a bootstrap interval over models.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fabula import stats
from fabula.evals.summary import group_stats, instance_values
from fabula.paths import PROBES_DIR  # noqa: F401 - tests import it from here

def persona_prior(records: list[dict]) -> dict:
    """Overall (plain and calibrated, Wilson and scenario-bootstrap intervals), by form, by pressure."""
    cluster_of = {r["instance_id"]: r["scenario_id"] for r in records}
    out = {"all": group_stats(records)}
    for key in ("misaligned", "misaligned_calibrated"):
        out["all"][f"bootstrap_{key}"] = stats.cluster_mean(instance_values(records, key), cluster_of).record()
    for field in ("form", "pressure"):
        groups = defaultdict(list)
        for r in records:
            groups[r.get(field) or "-"].append(r)
        out[f"by_{field}"] = {name: group_stats(rows) for name, rows in sorted(groups.items())}
    return out


def mediation(points: list[dict], x: str = "persona", y: str = "honeypot") -> dict:
    """Pearson r between two per-model scores, with a bootstrap interval over models."""
    if len(points) < 3:
        return {"models": len(points), "r": None, "note": "fewer than 3 models: no correlation"}
    return {"models": len(points), "r": stats.correlation([p[x] for p in points], [p[y] for p in points]).record()}
