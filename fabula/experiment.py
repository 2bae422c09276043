"""`fabula experiment CONFIG`: arms x seeds -> train -> evaluate -> compare, every step cached.

  OUT/models/<arm>-s<seed>/   each arm's model (fabula train's folder: merged HF model + adapter)
  OUT/evals/<name>/           each model's honeypot run (fabula eval's folder), plus `original`,
                              the model before any fine-tuning
  OUT/summary.json, OUT/rates.png    written by fabula.analysis.summarise from what run_experiment returns
Every arm trains on the same token budget: its own corpus mixed with the retain chat (baseline:
the retain chat alone). Each arm is read against baseline (what fine-tuning on it does) and
each positive arm against its bad-AI twin (what its content does, format held fixed).
A rerun skips every model and evaluation already finished and resumes the one in progress.
"""

from __future__ import annotations

from pathlib import Path

from fabula.config import CorpusSpec, EvalConfig, ExperimentConfig, TrainConfig
from fabula.evals.run import evaluate_cached
from fabula.jsonl import write_json_atomic
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
    """Train and evaluate every arm and seed; returns {model name: its records and perplexity}."""
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
    return models
