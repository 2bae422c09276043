"""The data commands: `fabula generate PIPELINE` and `fabula data stats|export` (registered in
fabula.cli, kept here so the CLI module stays one screen per idea; they print and fail through
fabula.terminal, as fabula.cli does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, get_args

import typer
from rich.table import Table

from fabula.config import GenerateConfig, Pipeline
from fabula.options import options
from fabula.terminal import console, fail, load_config

data_app = typer.Typer(no_args_is_help=True, help="Generated corpora: statistics and export.")


@options(GenerateConfig, "model", "backend", "base_url", "api_key_env", "n", "seed", "judge_model", "judge_backend",
         "target_model", "target_backend", "target_base_url", "constitution", "taxonomy", "scenarios", "bridge",
         "think", "twins", "concurrency", "rpm", "max_cost", "price_in", "price_out", "batch")
def generate_command(
    pipeline: str = typer.Argument(..., help=" | ".join(get_args(Pipeline))),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: data/<pipeline>); an unfinished one resumes."),
    dry_run: bool = typer.Option(False, help="Print planned calls, tokens and cost in each lane; call nothing."),
    config: Optional[Path] = typer.Option(None, help="TOML or YAML file of GenerateConfig settings."),
    **settings,
) -> None:
    """Generate a training corpus (and its twin) with an LLM: resumable, cached, filtered."""
    from fabula.backends.base import BackendError
    from fabula.data.generate import GenerateError, dry_run as plan_only, generate
    from fabula.data.inputs import InputError

    overrides = settings | {"pipeline": pipeline, "out": out or (None if config else Path("data") / pipeline)}
    cfg = load_config(GenerateConfig, config, None, overrides)
    try:
        if dry_run:
            plan_only(cfg, console)
            return
        result = generate(cfg, console)
    except (GenerateError, InputError, BackendError) as exc:
        fail(str(exc), code=1)
    if result["stopped"]:
        raise typer.Exit(3)


@data_app.command("stats")
def stats_command(
    path: Path = typer.Argument(..., help="A corpus .jsonl file or a `fabula generate` folder."),
    tokenizer: Optional[str] = typer.Option(None, help="Count tokens with this tokenizer ('smollm2' or a folder)."),
) -> None:
    """Counts, tokens, theme and pressure coverage, diversity, and filter pass rates."""
    from fabula.data.stats import (STAT_COLUMNS, corpus_stats, coverage_lines, filters_of, filters_text,
                                   load_corpus, stat_rows)

    try:
        records = load_corpus(path)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    tok = None
    if tokenizer:
        from fabula.backends.hf import load_tokenizer

        tok = load_tokenizer(tokenizer)
    stats = corpus_stats(records, tok)
    saved = path / "stats.json" if path.is_dir() else None
    if saved and saved.exists():  # a generation folder: also what was written before the filters
        stats["written"] = json.loads(saved.read_text()).get("written", {})
    table = Table(title=f"{path}: tokens {stats['tokenizer']}",
                  caption="(all written): every text the pipeline wrote, before the filters" if stats.get("written") else None)
    for column in ("arm", *STAT_COLUMNS):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for name, cells in stat_rows(stats):
        table.add_row(name, *cells)
    console.print(table)
    for line in coverage_lines(stats):
        console.print(line, highlight=False)
    filters = filters_of(path)
    if filters:
        console.print(filters_text(filters), highlight=False)
        for reason, count in filters["reasons"].items():
            console.print(f"  {count:>5}  {reason}", highlight=False)


@data_app.command("export")
def export_command(
    path: Path = typer.Argument(..., help="A corpus file, a `fabula generate` folder, or a run folder."),
    out: Path = typer.Option(..., "-o", "--out", help="The `datasets` folder to write (load_from_disk reads it)."),
) -> None:
    """Write a corpus or run as a Hugging Face `datasets` folder, with a dataset card."""
    from fabula.data.export import ExportError, export

    try:
        dataset = export(path, out)
    except (ExportError, FileNotFoundError) as exc:
        fail(str(exc))
    console.print(f"{out}: " + ", ".join(f"{name} ({len(ds):,} rows)" for name, ds in dataset.items())
                  + "; card in README.md", highlight=False)
