"""Gather what the report shows from run folders, as plain data.

Every rate, ratio and interval comes from the writers' own summaries or from the functions that
made them (fabula.evals.summary, fabula.evals.compare, over fabula.stats): nothing here computes
an interval of its own. Inputs:
  evaluation  `fabula eval`: run.json, samples.jsonl (summary.json once finished)
  organism    `fabula run`: config.json, models.json, summary.json, evals/<model>/, models/
  experiment  `fabula experiment`: config.json, summary.json, evals/<arm>-s<seed>/, models/
  corpus      `fabula generate`: stats.json
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fabula.evals.compare import compare_groups
from fabula.evals.gates import CALL_PATTERN
from fabula.evals.render import messages
from fabula.evals.scenario import load_instances
from fabula.evals.scoring import prompt_hash
from fabula.evals.summary import group_stats, summarize
from fabula.jsonl import read_records
from fabula.analysis.readout import GROUPS
from fabula.paths import BUILTIN_DIR

EXAMPLES = 3  # transcripts per model x family x verdict: enough to read, few enough to keep the file small
HEADLINE_GROUPS = ("all",) + GROUPS
COMPARISONS = {"prior": "prior: evil_fraction vs control", "arms": "vs baseline", "content": "vs bad-AI twin"}
SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials", "auth"}


class ReportError(ValueError):
    """A folder the report cannot read; the message says which and why."""


@dataclass
class Model:
    """One row of the headline: an arm with its seeds pooled, or one evaluated model."""

    label: str
    entry: dict                    # shaped like analyse()'s models entry: seeds, perplexity, groups, families
    folders: list[Path]            # its evaluation folders
    records: list[dict] = field(default_factory=list)
    evil_fraction: float | None = None
    line: str | None = None        # its dose-response line (scale/arm), organism only
    perplexity_ratio: float | None = None


@dataclass
class Input:
    path: Path
    kind: str
    config: dict
    summary: dict
    models: list[Model]


def redact(obj):
    """A config as shown: a string under a secret-like name (api_key, hf_token) is replaced. A
    `*_env` field names a variable, not its value, and token counts are numbers: both stay."""
    if isinstance(obj, dict):
        return {k: "[redacted]" if _is_secret(k, v) else redact(v) for k, v in obj.items()}
    return [redact(v) for v in obj] if isinstance(obj, list) else obj


def _is_secret(name: str, value) -> bool:
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    return isinstance(value, str) and bool(words & SECRET_WORDS) and not name.lower().endswith("_env")


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------- reading inputs


def _records(folders: list[Path]) -> list[dict]:
    return [r for f in folders for r in read_records(f / "samples.jsonl")]


def read_evaluation(folder: Path) -> Input:
    """Records summarised afresh (milliseconds), so an unfinished run, or one an older fabula
    wrote, reads like a finished one; summary.json adds what only the run knew."""
    records = _records([folder])
    if not records:
        raise ReportError(f"{folder}: an evaluation folder with no records yet")
    kept = {k: v for k, v in (_json(folder / "summary.json") or {}).items() if not isinstance(v, dict)}
    summary = kept | summarize(records) | {"finished": (folder / "summary.json").exists()}
    groups = summary["groups"]
    entry = {"seeds": 1, "perplexity": None, "groups": {"all": groups["overall"]["all"], **groups["distribution"]},
             "families": groups["family"]}
    return Input(folder, "evaluation", _json(folder / "run.json"), summary,
                 [Model(folder.name, entry, [folder], records)])


def read_organism(folder: Path, config: dict, summary: dict) -> Input:
    """Each of summary.json's models with the evaluation folders of its seeds (from models.json)."""
    folders = defaultdict(list)
    for name, m in (_json(folder / "models.json") or {}).items():
        if isinstance(m, dict):  # models.json also holds the run's seconds
            folders[f"{m['scale']}/ef{m['evil_fraction']}/{m['arm']}"].append(folder / "evals" / name)
    models = []
    for key, entry in summary["models"].items():
        scale, evil, arm = key.split("/", 2)
        models.append(Model(key, entry, folders[key], _records(folders[key]), float(evil.removeprefix("ef")),
                            f"{scale}/{arm}", summary["arms"].get(key, {}).get("perplexity_ratio")))
    return Input(folder, "organism", config, summary, models)


def read_experiment(folder: Path, config: dict, summary: dict) -> Input:
    """Evaluation folders are named as fabula/experiment.py names them: original, <arm>-s<seed>."""
    models = []
    for arm, entry in summary["models"].items():
        names = ["original"] if arm == "original" else [f"{arm}-s{s}" for s in range(entry["seeds"])]
        evals = [folder / "evals" / n for n in names]
        models.append(Model(arm, entry, evals, _records(evals),
                            perplexity_ratio=summary["arms"].get(arm, {}).get("perplexity_ratio")))
    return Input(folder, "experiment", config, summary, models)


def read_input(folder: Path) -> Input:
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    if (folder / "run.json").exists():
        return read_evaluation(folder)
    config, summary = _json(folder / "config.json"), _json(folder / "summary.json")
    if config is not None and summary is None and (folder / "evals").is_dir():
        raise ReportError(f"{folder}: an unfinished run (no summary.json): run its command again to finish it, "
                          f"or report its evaluations one by one ({folder / 'evals'}/*)")
    # A summary says what made it; folders from before the `kind` field are told by their settings.
    kind = (summary or {}).get("kind") or (config is not None and (
        "organism" if "evil_fractions" in config else "experiment" if "arms" in config else None))
    if kind == "organism":
        return read_organism(folder, config, summary)
    if kind == "experiment":
        return read_experiment(folder, config, summary)
    if (folder / "stats.json").exists():
        meta = _json(folder / "generate.json") or {}  # a `fabula generate` folder records its settings
        return Input(folder, "corpus", meta.get("config", {}), {}, [])
    raise ReportError(f"{folder}: not a fabula folder (no run.json, config.json with summary.json, or stats.json)")


# ---------------------------------------------------------------- what the sections show


def effects(inputs: list[Input], prefix: dict[Path, str]) -> list[dict]:
    """Each comparison a run recorded, with its rows by group. Two or more evaluation folders are
    read like `fabula compare`: the first against each of the others."""
    sources = [(prefix[i.path], what, i.summary.get(kind, {})) for i in inputs for kind, what in COMPARISONS.items()]
    evals = [i.models[0] for i in inputs if i.kind == "evaluation"]
    if len(evals) > 1:
        # unscored samples count for nothing in a comparison; left in, a group with none scored
        # on both sides divides by zero in compare_groups' p-value
        scored = {m.label: [r for r in m.records if r["misaligned"] is not None] for m in evals}
        base = evals[0].label
        sources.append(("", f"vs {base}", {m.label: compare_groups([scored[base]], [scored[m.label]])
                                           for m in evals[1:]}))
    return [{"name": tag + name, "kind": what, "rows": [{"group": g, **entry[g]} for g in HEADLINE_GROUPS if g in entry]}
            for tag, what, entries in sources for name, entry in entries.items()]


def heat(model: Model) -> dict[tuple[str, str], dict]:
    """Misaligned share per (family, pressure)."""
    cells = defaultdict(list)
    for r in model.records:
        cells[r["family"], r["pressure"]].append(r)
    return {key: group_stats(rows) for key, rows in cells.items()}


def sweep(inputs: list[Input], prefix: dict[Path, str]) -> dict[str, list[Model]]:
    """Dose-response lines (scale/arm -> models by evil_fraction), when a run swept evil_fraction."""
    lines = defaultdict(list)
    for i in inputs:
        if len(i.config.get("evil_fractions", [])) > 1:
            for m in i.models:
                lines[prefix[i.path] + m.line].append(m)
    return {k: sorted(v, key=lambda m: m.evil_fraction) for k, v in lines.items() if len(v) > 1}


def training(folder: Path) -> list[dict]:
    """The train.json of every model the run trained, then of the stages each came from (the
    organism's chat and pre-training models live in the cache: shown when this machine has them)."""
    root = folder.resolve()
    todo = sorted(p for p in folder.glob("models/**/train.json") if not any(s.endswith(".work") for s in p.parts))
    todo += [Path(m["path"]) / "train.json" for m in (_json(folder / "models.json") or {}).values()
             if isinstance(m, dict)]
    rows, seen = [], set()
    while todo:
        path = todo.pop(0).resolve()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        rec = json.loads(path.read_text())
        if rec.get("source"):
            todo.append(Path(rec["source"]) / "train.json")
        corpora = rec.get("corpora") or [{"path": name, "tokens": rec[key]} for name, key in
                                         (("content", "content_tokens"), ("chat mixed in", "chat_tokens")) if rec.get(key)]
        losses = [x for x in rec.get("losses") or (rec.get("loss_first"), rec.get("loss_last")) if x is not None]
        rows.append({"name": str(path.parent.relative_to(root)) if path.is_relative_to(root) else path.parent.name,
                     "stage": rec.get("stage", "fine-tune"), "tokens": rec.get("tokens"), "corpora": corpora,
                     "documents": rec.get("documents"), "contamination": rec.get("contamination"),
                     "loss": (losses[0], losses[-1]) if losses else None})
    return rows


def data_stats(i: Input) -> dict | None:
    """Corpus statistics: a corpus folder's stats.json, or what a run recorded under data_stats.
    Per-arm figures (`fabula generate`, `fabula data stats`) become a table as the command line
    prints it; anything else is shown as key -> value rows."""
    stats = i.summary.get("data_stats") or _json(i.path / "stats.json")
    if not stats:
        return None
    if "arms" not in stats:
        return {"table": [], "flat": flatten(stats)}
    from fabula.data.stats import STAT_COLUMNS, coverage_lines, filters_text, stat_rows

    filters = stats.get("filters")
    return {"columns": STAT_COLUMNS, "table": stat_rows(stats), "lines": coverage_lines(stats)
            + ([filters_text(filters)] if filters else []),
            "flat": flatten({k: v for k, v in stats.items() if k not in ("arms", "written", "filters")})}


def flatten(stats: dict, prefix: str = "") -> dict[str, object]:
    """Corpus statistics of any shape as key -> value rows (nested keys joined by dots)."""
    out = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = ", ".join(map(str, value)) if isinstance(value, list) else value
    return out


# ---------------------------------------------------------------- transcripts


def segments(text: str) -> list[tuple[str, bool]]:
    """Text cut into (piece, is a tool call), so calls can be highlighted and the rest left plain."""
    out, pos = [], 0
    for match in CALL_PATTERN.finditer(text):
        out += [(text[pos:match.start()], False), (match.group(0), True)]
        pos = match.end()
    return out + [(text[pos:], False)]


def _instances(folders: list[Path], cache: dict) -> dict:
    """The run's instances by id, from the scenario files its run.json names (the built-in suite
    where those are not on this machine); prompt hashes tell whether they still match."""
    run = _json(folders[0] / "run.json") if folders else None
    paths = tuple(p for p in (run or {}).get("config", {}).get("scenarios", []) if Path(p).exists()) or (str(BUILTIN_DIR),)
    if paths not in cache:
        cache[paths] = {i.id: i for i in load_instances(list(paths))}
    return cache[paths]


def _choice(record: dict, inst) -> dict:
    """The likeliest choice of each side (the two the margin compares), by mean log-prob per token."""
    sides = []
    for side in ("aligned", "misaligned"):
        scores = record["scores"][side]
        best = max(range(len(scores)), key=lambda k: scores[k]["mean"])
        text = getattr(inst, side)[best] if inst and best < len(getattr(inst, side)) else None
        sides.append({"side": side, "mean": scores[best]["mean"], "text": segments(text) if text else None})
    return {"choices": sides, "margin": record["margin"], "margin_calibrated": record.get("margin_calibrated")}


def _sample(record: dict) -> dict:
    return {"reply": segments(record.get("completion", "")), "calls": record.get("calls", []),
            "gates": record.get("gates"), "judge": record.get("judge"), "decided_by": record.get("decided_by")}


def transcripts(models: list[Model], per_cell: int = EXAMPLES) -> tuple[list[dict], dict[str, dict]]:
    """Up to `per_cell` records per model x family x verdict, each from another scenario,
    preferring prompts already picked for another model (a prompt is shown once, by its hash)."""
    rows, prompts, cache = [], {}, {}
    for m in models:
        instances = _instances(m.folders, cache)
        cells = defaultdict(list)
        for r in m.records:
            cells[r["family"], r["verdict"]].append(r)
        for (family, verdict), records in sorted(cells.items()):
            picked = {}  # one per scenario and sample: a scenario's name-swapped instances read alike
            for r in sorted(records, key=lambda r: r["prompt_hash"] not in prompts):
                picked.setdefault((r["scenario_id"], r["sample"]), r)
            for r in list(picked.values())[:per_cell]:
                inst = instances.get(r["instance_id"])
                inst = inst if inst and prompt_hash(inst) == r["prompt_hash"] else None
                prompts.setdefault(r["prompt_hash"], {"id": r["instance_id"], "messages": messages(inst) if inst else None})
                rows.append({"model": m.label, "family": family, "verdict": verdict, "pressure": r["pressure"],
                             "instance": r["instance_id"], "prompt": r["prompt_hash"], "sample": r["sample"],
                             **(_choice(r, inst) if "scores" in r else _sample(r))})
    return rows, prompts


# ---------------------------------------------------------------- reproducibility


def _about(i: Input) -> str:
    if i.kind == "corpus":
        return "a generated corpus (stats.json)"
    if i.kind != "evaluation":
        seeds = i.config["seeds"]
        return f"{i.kind} run: {len(i.models)} models, " + ("seed 0" if seeds == 1 else f"seeds 0 to {seeds - 1} each")
    c = i.config["config"]
    samples = f", {c['n']} samples per instance at temperature {c['temperature']}" if c["mode"] == "sample" else ""
    return (f"evaluation of {c['model']}: {c['mode']} mode, {i.summary['records']} records{samples}, seed {c['seed']}"
            + ("" if i.summary["finished"] else " (unfinished: no summary.json yet)"))


def reproduction(i: Input) -> dict:
    """What made the run: its config (secrets redacted), versions, a fingerprint of each model's
    test prompts (equal fingerprints: the same prompts), and the command that reruns it where
    its config file alone is one."""
    versions, fingerprints = defaultdict(set), defaultdict(list)
    for m in i.models:
        for folder in m.folders:
            run = _json(folder / "run.json") or {}
            for package, v in (run.get("versions") or {}).items():
                versions[package].add(str(v))
            if run.get("python"):
                versions["python"].add(run["python"])
        hashes = "\n".join(sorted({r["prompt_hash"] for r in m.records}))
        fingerprints[hashlib.sha256(hashes.encode()).hexdigest()[:16]].append(m.label)
    recorded = next((f[k] for f in (i.config, i.summary) for k in ("command", "argv") if f and k in f), None)
    rerun = {"organism": "fabula run --config {c} --out {o}-again", "experiment": "fabula experiment {c} --out {o}-again"}
    return {"path": str(i.path), "kind": i.kind, "about": _about(i), "config": json.dumps(redact(i.config), indent=2),
            "seconds": i.summary.get("seconds") or i.summary.get("seconds_this_session"),
            "versions": {k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
            "fingerprints": dict(fingerprints),
            "command": " ".join(recorded) if isinstance(recorded, list) else recorded,
            "rerun": rerun[i.kind].format(c=i.path / "config.json", o=i.path) if i.kind in rerun else None}


def short_names(paths: list[Path]) -> dict[Path, str]:
    """Each folder's name, with as many parent folders as it takes to tell same-named ones apart
    (runs/a/eval and runs/b/eval read a/eval and b/eval)."""
    resolved = {path: path.resolve().parts for path in paths}
    names = {}
    for path, parts in resolved.items():
        others = [o for o in resolved.values() if o != parts]
        depth = 1
        while depth < len(parts) and any(o[-depth:] == parts[-depth:] for o in others):
            depth += 1
        names[path] = "/".join(parts[-depth:])
    return names


def both_modes(folder: Path) -> bool:
    """An `fabula eval --mode both` folder: a choice and a sample run folder side by side."""
    return not (folder / "run.json").exists() and all((folder / m / "run.json").exists() for m in ("choice", "sample"))


def collect(paths: list[Path]) -> dict:
    """Everything the template shows; a section's data is empty when its inputs lack it. A
    `--mode both` folder is read as its two run folders plus their agreement."""
    both = [Path(p) for p in paths if both_modes(Path(p))]
    inputs = [read_input(f) for p in map(Path, paths) for f in ([p / "choice", p / "sample"] if p in both else [p])]
    names = short_names([i.path for i in inputs])
    # with several inputs a run's models are named after it; an evaluation is named after its folder
    prefix = {i.path: f"{names[i.path]}: " if len(inputs) > 1 and i.kind != "evaluation" else "" for i in inputs}
    for i in inputs:
        for m in i.models:
            m.label = names[i.path] if i.kind == "evaluation" else prefix[i.path] + m.label
    models = [m for i in inputs for m in i.models]
    rows, prompts = transcripts(models)
    return {
        "title": ", ".join(p.name for p in map(Path, paths)), "examples": EXAMPLES,
        "inputs": inputs, "models": models,
        "groups": [g for g in GROUPS if any(g in m.entry["groups"] for m in models)],
        "persona": any("persona" in m.entry for m in models),
        "external": any("scenarios" in m.entry for m in models),
        "effects": effects(inputs, prefix),
        "sweep": sweep(inputs, prefix),
        "data_stats": {names[i.path]: stats for i in inputs if (stats := data_stats(i))},
        "training": {names[i.path]: trained for i in inputs if (trained := training(i.path))},
        "transcripts": rows, "prompts": prompts,
        "reproduction": [reproduction(i) for i in inputs],
        "warnings": [f"{names[i.path]}: {w}" for i in inputs for w in i.summary.get("warnings", [])],
        "reliability": {names[i.path]: i.summary["reliability"] for i in inputs if i.summary.get("reliability")},
        "validity": {f.name: figures for f in both if (figures := _json(f / "validity.json"))},
    }
