"""`fabula experiment CONFIG`: arms x seeds -> train -> evaluate -> compare, every step cached.

  OUT/models/<arm>-s<seed>/   each arm's model (fabula train's folder: merged HF model + adapter)
  OUT/evals/<name>/           each model's honeypot run (fabula eval's folder), plus `original`,
                              the model before any fine-tuning
  OUT/summary.json, OUT/rates.png
Every arm trains on the same token budget: its own corpus mixed with the retain chat (baseline:
the retain chat alone). Each arm is read against baseline (what fine-tuning on it does) and
each positive arm against its bad-AI twin (what its content does, format held fixed).
A rerun skips every model and evaluation already finished and resumes the one in progress.
"""

from __future__ import annotations

import time
from pathlib import Path

from fabula.config import CorpusSpec, EvalConfig, ExperimentConfig, TrainConfig
from fabula.evals.run import evaluate_cached
from fabula.evals.summary import group_stats
from fabula.jsonl import write_json_atomic
from fabula.organism.analysis import arm_effects, model_entry, paired_shifts, persona_analysis
from fabula.organism.arms import CORPORA, ORGANISM, arm_names
from fabula.organism.heldout import heldout_perplexity
from fabula.paths import PROBES_DIR
from fabula.train.run import train_model


def arm_corpora(cfg: ExperimentConfig, arm: str) -> list[CorpusSpec]:
    retain = CorpusSpec(path=cfg.retain, share=cfg.retain_share or 1.0)
    if arm == "baseline":
        return [retain]
    own = CorpusSpec(path=cfg.corpora.get(arm, ORGANISM + arm), share=1 - cfg.retain_share)
    return [own, retain] if cfg.retain_share else [own]


def _evaluate(cfg: ExperimentConfig, model: Path, out: Path, console, probes: bool = False) -> list[dict]:
    """Honeypots (or, with `probes`, the persona-prior probes) in choice mode, cached."""
    return evaluate_cached(EvalConfig(model=str(model), out=out, mode="choice",
                                      scenarios=[str(PROBES_DIR)] if probes else cfg.scenarios,
                                      per_scenario=cfg.probe_per_scenario if probes else cfg.eval_per_scenario,
                                      batch_size=cfg.eval_batch_size, dtype=cfg.eval_dtype), console)


def _model(cfg: ExperimentConfig, path: Path, name: str, out: Path, console) -> dict:
    """A model's honeypot records, probe records and held-out perplexity."""
    return {"path": str(path), "records": _evaluate(cfg, path, out / "evals" / name, console),
            "probe_records": _evaluate(cfg, path, out / "evals" / f"{name}-probes", console, probes=True)
            if cfg.probes else [],
            "perplexity": heldout_perplexity(path, cfg.training.block_size)}


def run_experiment(cfg: ExperimentConfig, out: Path, console=None) -> dict:
    """Train and evaluate every arm and seed; returns the analysis (also OUT/summary.json)."""
    from fabula.backends.smollm2 import resolve_model

    say = console.print if console is not None else print
    arms = arm_names(cfg.arms, cfg.bridges)
    unknown = sorted(set(cfg.corpora) - set(arms))
    if unknown:
        raise ValueError(f"corpora given for arms not in the experiment: {', '.join(unknown)} (arms: {', '.join(arms)})")
    if "baseline" not in arms:
        raise ValueError("the experiment needs the baseline arm: every arm is read against it")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", cfg.model_dump(mode="json"))
    began = time.time()
    source = Path(resolve_model(cfg.model))
    models = {"original": {"arm": "original", "seed": None, **_model(cfg, source, "original", out, console)}}
    for seed in range(cfg.seeds):
        for arm in arms:
            name = f"{arm}-s{seed}"
            path = out / "models" / name
            train_cfg = TrainConfig(model=str(source), corpora=arm_corpora(cfg, arm), out=path, seed=seed,
                                    training=cfg.training, scenarios=cfg.scenarios)
            say(f"[bold]{name}[/]")
            record = train_model(train_cfg, resume=True, say=say, streams=CORPORA)
            models[name] = {"arm": arm, "seed": seed, "tokens": record["tokens"],
                            **_model(cfg, path, name, out, console)}
    result = analyse_experiment(models) | {"kind": "experiment", "seconds": round(time.time() - began)}
    write_json_atomic(out / "summary.json", result)
    return result


def analyse_experiment(models: dict) -> dict:
    """Per arm (seeds pooled) shares and perplexity; arms against baseline and against twins."""
    by_arm: dict[str, list[dict]] = {}
    for m in models.values():
        by_arm.setdefault(m["arm"], []).append(m)
    runs = {arm: [m["records"] for m in ms] for arm, ms in by_arm.items()}
    ppl = {arm: sum(m["perplexity"] for m in ms) / len(ms) for arm, ms in by_arm.items()}
    out = {"models": {arm: model_entry(runs[arm], {}, [m["perplexity"] for m in ms]) for arm, ms in by_arm.items()},
           "prior": {}, "family_sets": {},
           "tokens": {arm: [m.get("tokens") for m in ms] for arm, ms in by_arm.items()}}
    out["arms"], out["content"] = arm_effects({a: r for a, r in runs.items() if a != "original"}, ppl, {})
    probe_runs = {arm: [m["probe_records"] for m in ms] for arm, ms in by_arm.items() if arm != "original"}
    out["persona_shift"] = paired_shifts(probe_runs, ppl)
    if out["persona_shift"]:
        for arm, ms in by_arm.items():
            out["models"][arm]["persona"] = group_stats([r for m in ms for r in m["probe_records"]])
    out["persona"] = persona_analysis(models)
    return out
