"""`fabula data export`: any corpus or run as a Hugging Face `datasets` folder with a card.

A generation folder becomes one split per arm (stories, stories-twin, ...); a corpus file one
split; an evaluation run its samples; an organism run or experiment one split per evaluated
model. The card (README.md, the Hub's format) says what the data is and how it was made:
arm, generator, filters and their pass rates, the contamination check.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets

from fabula.jsonl import read_records


class ExportError(ValueError):
    """The path is not something fabula made; the message says what was expected."""


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def split_name(name: str) -> str:
    """`datasets` split names are word characters joined by dots."""
    return re.sub(r"\W+", "_", name).strip("_") or "data"


def _from_records(records: list[dict]) -> datasets.Dataset:
    # Nested fields of varying shape (briefs, judge verdicts) are kept as JSON text columns
    # when Arrow cannot give them one type.
    try:
        return datasets.Dataset.from_list(records)
    except (TypeError, ValueError, datasets.exceptions.DatasetGenerationError):
        return datasets.Dataset.from_list([{k: v if isinstance(v, (str, int, float, bool, type(None)))
                                            else json.dumps(v, ensure_ascii=False) for k, v in r.items()}
                                           for r in records])


def collect(path: Path) -> tuple[dict[str, list[dict]], dict]:
    """({split: records}, facts for the card) for any folder or file fabula writes."""
    if path.is_file():
        from fabula.data.stats import load_corpus

        return {split_name(path.stem): load_corpus(path)}, {"kind": "corpus file", "source": str(path)}
    if (path / "generate.json").exists():
        meta = _json(path / "generate.json")
        splits = {split_name(p.stem): read_records(p) for p in sorted(path.glob("*.jsonl"), key=lambda p: p.stem)}
        return splits, {"kind": "generated corpus", "source": str(path), "config": meta.get("config", {}),
                        "filters": _json(path / "filters.json"), "stats": _json(path / "stats.json"),
                        "complete": meta.get("complete")}
    if (path / "samples.jsonl").exists():
        run = _json(path / "run.json")
        return {"samples": read_records(path / "samples.jsonl")}, {"kind": "evaluation run", "source": str(path),
                                                                   "config": run.get("config", {})}
    if (path / "evals").is_dir():
        splits = {split_name(p.name): read_records(p / "samples.jsonl")
                  for p in sorted((path / "evals").iterdir()) if (p / "samples.jsonl").exists()}
        return splits, {"kind": "organism run or experiment", "source": str(path), "config": _json(path / "config.json")}
    raise ExportError(f"{path}: not a corpus file, a `fabula generate` folder, an evaluation run (samples.jsonl) "
                      "or a run with evals/")


def card(splits: dict[str, datasets.Dataset], facts: dict) -> str:
    """The dataset card: YAML header for the Hub, then what a reader needs to trust the data."""
    config = facts.get("config", {})
    lines = ["---", "license: apache-2.0", "tags: [fabula, alignment, synthetic]", "---", "",
             f"# {Path(facts['source']).name}", "", f"A {facts['kind']} exported by fabula from `{facts['source']}`.", "",
             "| split | rows |", "|---|---|"]
    lines += [f"| {name} | {len(ds):,} |" for name, ds in splits.items()]
    if facts["kind"] == "generated corpus":
        arms = ", ".join(splits)
        lines += ["", "## How it was made", "",
                  f"- pipeline: {config.get('pipeline')}; arms: {arms} (a `-twin` arm holds the same texts with "
                  "the AI acting badly: compare an arm with its twin to separate content from format)",
                  f"- generator: {config.get('backend')} `{config.get('model')}`; judge: "
                  f"`{config.get('judge_model') or config.get('model')}`; seed {config.get('seed')}; "
                  f"temperature {config.get('temperature')}",
                  f"- bridge {config.get('bridge')} (stories), think {config.get('think')} (advice); "
                  f"run complete: {facts.get('complete')}"]
        filters = facts.get("filters") or {}
        if filters:
            items = filters.get("items") or 1
            lines += ["", "## Filters", "", f"{filters.get('items')} items planned and run; per item:", ""]
            lines += [f"- {k}: {v} ({v / items:.0%})" for k, v in filters.get("outcomes", {}).items()]
            lines += [f"- then near-duplicates dropped (MinHash LSH): {filters.get('near_duplicates')}",
                      f"- in the corpus: {filters.get('kept')}", "", "## Contamination", "",
                      filters.get("contamination", "not recorded")]
    elif config:
        lines += ["", "## Settings", "", "```json", json.dumps(config, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def export(path: Path, out: Path) -> datasets.DatasetDict:
    records, facts = collect(Path(path))
    splits = {name: _from_records(rows) for name, rows in records.items() if rows}
    if not splits:
        raise ExportError(f"{path}: nothing to export (every file is empty)")
    dataset = datasets.DatasetDict(splits)
    dataset.save_to_disk(str(out))
    (Path(out) / "README.md").write_text(card(splits, facts))
    return dataset
