"""One analysis for every run: `analyse(models, design)` reads a run's models (their evaluation
records) into its summary.json, the same way for `fabula run` (the organism) and `fabula
experiment` (a real model's arms); the report reads that summary. Tables (fabula.analysis.tables)
and plots (fabula.analysis.plots) only render it.
"""

from __future__ import annotations

from pathlib import Path

from fabula.analysis.plots import plot_mediation, plot_rates
from fabula.analysis.readout import Design, analyse
from fabula.jsonl import write_json_atomic

__all__ = ["Design", "analyse", "summarise"]


def summarise(out: Path, models: dict, design: Design, who: str, seconds: float) -> dict:
    """Analyse a finished run and write its summary.json and figures into `out`; `who` names
    the models in the figures' titles."""
    result = analyse(models, design) | {"seconds": round(seconds)}
    write_json_atomic(out / "summary.json", result)
    plot_rates(result, out / "rates.png", f"{who}, built-in suite: misaligned preference per model")
    if result.get("inworld"):
        plot_rates(result["inworld"], out / "inworld.png", f"{who}, in-world suite: misaligned preference per model",
                   ("in-distribution", "held-out, agent logs", "held-out, prose only"))
    if result["persona"]["points"]:
        plot_mediation(result["persona"]["points"], out / "mediation.png",
                       f"{who}: does the persona prior track honeypot misalignment?")
    return result
