"""`fabula eval`: run a model on honeypot instances into a resumable run folder.

A run folder holds run.json (the resolved settings), samples.jsonl (one record per instance x
sample, appended in batches) and, only once every record is in, summary.json. A folder without
summary.json is an unfinished run; running the same command again resumes it.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fabula.backends import Backend, BackendError, GenerateSettings, make_backend
from fabula.config import EvalConfig, first_change, parse_judge
from fabula.evals.scenario import Instance, ScenarioError, load_instances
from fabula.evals.scoring import prompt_hash, sample_records, score_choices
from fabula.evals.summary import summarize
from fabula.evals.validity import validity
from fabula.jsonl import append_records, read_records, write_json_atomic, write_records_atomic
from fabula.progress import StageProgress
from fabula.versions import package_version


class RunError(Exception):
    """A run cannot start or cannot continue; the message says why and what to do."""


@dataclass
class Plan:
    instances: list[Instance]
    train_families: list[str]


def plan(config: EvalConfig) -> Plan:
    """Which instances this run scores. In-distribution = families that have train scenarios."""
    try:
        everything = load_instances(config.scenarios)
    except ScenarioError as exc:
        raise RunError("the scenario files have problems:\n" + "\n".join(exc.problems)) from None
    train_families = sorted({i.family for i in everything if i.split == "train"})
    chosen = [i for i in everything if config.split in ("all", i.split)]
    if config.families:
        unknown = set(config.families) - {i.family for i in everything}
        if unknown:
            raise RunError(f"no scenarios of famil{'y' if len(unknown) == 1 else 'ies'} "
                           f"{', '.join(sorted(unknown))} in {', '.join(config.scenarios)}")
        chosen = [i for i in chosen if i.family in config.families]
    needed = {"choice", "sample"} if config.mode == "both" else {config.mode}
    unsupported = [i.id for i in chosen if not needed <= set(i.modes)]
    if unsupported:
        need = {"choice": "'choices'", "sample": "'misaligned_if' or 'judge'"}.get(
            config.mode, "'choices', or both 'misaligned_if' and 'judge'")
        raise RunError(f"{len(unsupported)} instances cannot be scored in {config.mode} mode (they lack "
                       f"{need}), e.g. {', '.join(unsupported[:3])}; choose --families or another --mode")
    if config.judges and config.mode == "choice":
        raise RunError("--judge reads sampled replies: use it with --mode sample or both")
    if config.precision_check and (config.mode == "sample" or config.backend != "hf"):
        raise RunError("--precision-check rescores in choice mode with the hf backend (a served model's precision "
                       "is the server's)")
    if config.per_scenario:
        kept, count = [], Counter()
        for instance in chosen:
            count[instance.scenario_id] += 1
            if count[instance.scenario_id] <= config.per_scenario:
                kept.append(instance)
        chosen = kept
    if config.limit:
        chosen = chosen[:config.limit]
    if not chosen:
        raise RunError(f"no instances of split {config.split!r} in {', '.join(config.scenarios)}")
    return Plan(chosen, train_families)


def build_backends(config: EvalConfig) -> tuple[Backend, dict[str, Backend]]:
    """The model under test, and the judges by name (`backend:model`)."""
    options = dict(base_url=config.base_url, api_key_env=config.api_key_env, concurrency=config.concurrency,
                   max_retries=config.max_retries, timeout=config.timeout, batch_size=config.batch_size,
                   dtype=config.dtype, tokenizer=config.tokenizer)
    backend = make_backend(config.backend, config.model, **options)
    judges = {}
    for spec in config.judges:
        kind, model, base_url = parse_judge(spec)
        judges[f"{kind}:{model}"] = make_backend(kind, model, **(options | {"base_url": base_url, "api_key_env": None}))
    return backend, judges


def check_settings(config: EvalConfig) -> None:
    """An existing run folder must have been made with the same measured settings."""
    saved = json.loads((config.out / "run.json").read_text())["config"]
    if saved.get("judge_model"):  # written before judge panels: one judge in three fields
        saved["judges"] = [f"{saved['judge_backend']}:{saved['judge_model']}"]
    change = first_change(saved, config.measured(), EvalConfig)
    if change:
        raise RunError(f"{config.out} holds a run made with other settings ({change}); choose another --out or "
                       "repeat the original settings")


def evaluate_cached(config: EvalConfig, console=None) -> list[dict]:
    """The records of a finished run folder made with these settings, running (or resuming) it
    first when it is not finished. A finished folder made with other settings is an error."""
    if (config.out / "summary.json").exists():
        check_settings(config)
    else:
        run_eval(config, console=console)
    return read_records(config.out / "samples.jsonl")


def open_run_folder(config: EvalConfig, the_plan: Plan) -> list[dict]:
    """Create the folder, or check an existing one was started with the same settings; returns
    the records already there (a partial last line from a killed run is dropped)."""
    out = config.out
    meta = out / "run.json"
    if meta.exists():
        check_settings(config)
    elif out.exists() and any(out.iterdir()):
        raise RunError(f"{out} exists and is not a fabula run folder; choose another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(meta, {
            "config": config.measured(), "plumbing": {k: v for k, v in config.model_dump(mode="json").items()
                                                      if k in EvalConfig.PLUMBING and k != "api_key_env"},
            "train_families": the_plan.train_families, "instances": len(the_plan.instances),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
            "versions": {p: package_version(p) for p in ("fabula", "torch", "transformers", "openai", "anthropic")},
        })
    return read_records(out / "samples.jsonl", repair=True)


def check_unchanged(records: list[dict], instances: list[Instance], out: Path) -> None:
    """A resumed run must score the same prompts it started with."""
    hashes = {i.id: prompt_hash(i) for i in instances}
    for r in records:
        if hashes.get(r["instance_id"], r["prompt_hash"]) != r["prompt_hash"]:
            raise RunError(f"instance {r['instance_id']} changed since {out} was started (its prompt "
                           "hash differs); results would mix two versions: choose another --out")


def run_eval(config: EvalConfig, console=None) -> dict:
    """Score every planned instance not yet in the folder; write summary.json when all are in."""
    the_plan = plan(config)
    if config.combine == "judge" and not config.judges and config.mode != "choice":
        raise RunError("--combine judge needs at least one --judge")
    backend, judges = build_backends(config)
    done_records = open_run_folder(config, the_plan)
    check_unchanged(done_records, the_plan.instances, config.out)
    done = {(r["instance_id"], r["sample"]) for r in done_records}
    samples = 1 if config.mode == "choice" else config.n
    pending = [i for i in the_plan.instances if any((i.id, k) not in done for k in range(samples))]
    in_dist = set(the_plan.train_families)
    position = {inst.id: k for k, inst in enumerate(the_plan.instances)}
    path = config.out / "samples.jsonl"
    step = 4 if config.mode == "choice" else config.batch_size
    started = time.time()
    neutral_cache: dict = {}
    with StageProgress(console, f"{config.mode} {config.model}", len(the_plan.instances),
                       completed=len(the_plan.instances) - len(pending), transient=False) as progress:
        for start in range(0, len(pending), step):
            batch = pending[start:start + step]
            if config.mode == "choice":
                records = score_choices(backend, batch, in_dist, neutral_cache)
            else:
                # seeded by the batch's place in the whole plan, so a resumed run samples alike
                settings = GenerateSettings(n=config.n, temperature=config.temperature,
                                            max_tokens=config.max_tokens, seed=config.seed + position[batch[0].id])
                records = sample_records(backend, batch, settings, in_dist, judges, config.combine)
            append_records(path, [r for r in records if (r["instance_id"], r["sample"]) not in done])
            progress.advance(len(batch))
    wanted = {i.id for i in the_plan.instances}
    records = [r for r in read_records(path) if r["instance_id"] in wanted]
    rescored = precision_check(config, the_plan.instances, in_dist, console) if config.precision_check else None
    summary = summarize(records, rescored) | {
        "kind": "evaluation", "model": config.model, "backend": config.backend, "mode": config.mode, "seed": config.seed,
        "train_families": the_plan.train_families, "seconds_this_session": round(time.time() - started, 1),
        "prompts_truncated_this_session": getattr(backend, "truncated", 0),
    }
    write_json_atomic(config.out / "summary.json", summary)
    return summary


def run_both(config: EvalConfig, console=None) -> dict:
    """Choice and sample mode on the same instances, each an ordinary run folder (OUT/choice,
    OUT/sample, resumed like any other), then how far they agree: OUT/validity.json (per group)
    and OUT/validity.jsonl (per instance), written once both are complete."""
    plan(config)  # refuse bad input before either run starts
    # the choice run holds no sampling settings, so one choice folder serves every sampling setting
    unsampled = {name: EvalConfig.model_fields[name].default for name in EvalConfig.SAMPLING}
    choice = run_eval(config.model_copy(update=unsampled | {"mode": "choice", "out": config.out / "choice"}), console)
    sample = run_eval(config.model_copy(update={"mode": "sample", "out": config.out / "sample",
                                                "precision_check": False}), console)
    result = validity(read_records(config.out / "choice" / "samples.jsonl"),
                      read_records(config.out / "sample" / "samples.jsonl"),
                      choice["reliability"]["all"]["noise_floor"])
    write_records_atomic(config.out / "validity.jsonl", result.pop("rows"))
    result |= {"model": config.model, "backend": config.backend, "n": config.n, "temperature": config.temperature,
               "max_tokens": config.max_tokens, "seed": config.seed, "split": config.split}
    write_json_atomic(config.out / "validity.json", result)
    return {"choice": choice, "sample": sample, "validity": result}


def precision_check(config: EvalConfig, instances: list[Instance], in_dist: set[str], console=None) -> list[dict]:
    """Every instance rescored with the model loaded in the other precision, into
    precision_check.jsonl (appended in batches and resumed like samples.jsonl); returns its records."""
    other = "bfloat16" if config.dtype == "float32" else "float32"
    path = config.out / "precision_check.jsonl"
    done = {r["instance_id"] for r in read_records(path, repair=True)}
    pending = [i for i in instances if i.id not in done]
    if pending:
        backend = make_backend("hf", config.model, batch_size=config.batch_size, dtype=other)
        neutral_cache: dict = {}
        with StageProgress(console, f"choice {config.model} in {other}", len(instances),
                           completed=len(instances) - len(pending), transient=False) as progress:
            for start in range(0, len(pending), 4):
                batch = pending[start:start + 4]
                append_records(path, [{"instance_id": r["instance_id"], "precision": other} | {
                    k: r[k] for k in ("margin", "margin_calibrated", "misaligned", "misaligned_calibrated")}
                    for r in score_choices(backend, batch, in_dist, neutral_cache)])
                progress.advance(len(batch))
    wanted = {i.id for i in instances}
    return [r for r in read_records(path) if r["instance_id"] in wanted]


__all__ = ["BackendError", "RunError", "run_both", "run_eval", "plan"]
