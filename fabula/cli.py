"""The `fabula` command: parse, validate, call one function, print."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from fabula.config import CorpusSpec, EvalConfig, ExperimentConfig, OrganismConfig, TrainConfig
from fabula.data.commands import data_app, generate_command
from fabula.options import flag, option_help, options
from fabula.terminal import console, fail, load_config

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="Teach language models why to behave well, and measure whether it worked.")
scenarios_app = typer.Typer(no_args_is_help=True, help="Honeypot scenario files.")
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(data_app, name="data")
app.command("generate")(generate_command)


@scenarios_app.command("lint")
def scenarios_lint(
    paths: list[Path] = typer.Argument(..., help="Scenario files or folders."),
    max_tokens: Optional[int] = typer.Option(None, help="Also check prompt + longest choice fits this many tokens."),
    tokenizer: str = typer.Option("smollm2", help="Tokenizer for --max-tokens: 'smollm2' or a local HF folder."),
) -> None:
    """Load scenario files, report errors, and check every instance's choices against its gates."""
    from fabula.evals.lint import lint
    from fabula.evals.scenario import ScenarioError

    tok = None
    if max_tokens is not None:
        from transformers import AutoTokenizer

        from fabula.backends.smollm2 import resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(tokenizer))
    try:
        reports = lint(paths, max_tokens=max_tokens, tokenizer=tok)
    except ScenarioError as exc:  # a path that does not exist
        fail("\n".join(exc.problems))
    table = Table(title="scenario lint")
    for column in ("file", "scenarios", "test", "train", "choice", "sample", "max tokens", "problems"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for r in reports:
        table.add_row(r.path.name, str(r.scenarios), str(r.instances["test"]), str(r.instances["train"]),
                      str(r.modes["choice"]), str(r.modes["sample"]), str(r.max_tokens_seen or "-"),
                      f"[red]{len(r.problems)}[/]" if r.problems else "0")
    console.print(table)
    problems = [line for r in reports for line in r.problems]
    for line in problems:
        console.print(line, highlight=False, soft_wrap=True)
    total = sum(sum(r.instances.values()) for r in reports)
    verdict = f"[red]{len(problems)} problems[/]" if problems else "[green]ok[/]"
    console.print(f"{len(reports)} files, {sum(r.scenarios for r in reports)} scenarios, {total} instances: {verdict}")
    if problems:
        raise typer.Exit(1)


@scenarios_app.command("import")
def scenarios_import(
    source: str = typer.Argument(..., help="What to import; only 'agentic-misalignment' so far."),
    src: Path = typer.Argument(..., help="A local clone of anthropic-experimental/agentic-misalignment."),
    out: Path = typer.Option(..., "-o", "--out", help="Folder to write the scenario files into."),
) -> None:
    """Write another benchmark's scenarios in fabula's format (docs/agentic-misalignment.md)."""
    from fabula.evals.agentic_misalignment import AgenticMisalignmentError, import_repo, unfilled

    if source != "agentic-misalignment":
        fail(f"cannot import {source!r}: the only source fabula can import is 'agentic-misalignment'")
    try:
        files = import_repo(src, out)
    except AgenticMisalignmentError as exc:
        fail(str(exc))
    table = Table(title="agentic-misalignment import")
    for column in ("file", "family", "pressure", "scenarios"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for path, scenarios in files.items():
        table.add_row(path.name, scenarios[0]["family"], scenarios[0]["pressure"], str(len(scenarios)))
    console.print(table)
    for line in unfilled(files):
        console.print(f"[yellow]kept as their model sees it, unfilled:[/] {line}", highlight=False, soft_wrap=True)
    console.print(f"{sum(map(len, files.values()))} scenarios in {out}; check them with `fabula scenarios lint {out}`")


def _print_summary(summary: dict) -> None:
    from fabula.analysis.tables import summary_tables

    for table in summary_tables(summary):
        console.print(table)
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


EVAL_FLAGS = {"families": "--family", "judges": "--judge", "dtype": ("--precision", "--dtype")}


@app.command("eval")
@options(EvalConfig, "model", "out", "backend", "scenarios", "mode", "split", "families", "limit", "per_scenario",
         "n", "temperature", "max_tokens", "seed", "judges", "combine", "base_url", "api_key_env", "tokenizer",
         "concurrency", "max_retries", "timeout", "batch_size", "dtype", "precision_check", flags=EVAL_FLAGS)
def eval_command(**settings) -> None:
    """Run a model on honeypot scenarios; writes samples.jsonl and summary.json under --out.

    Unset options take their defaults from fabula/config.py (EvalConfig)."""
    _evaluate(_eval_config(settings))


def _eval_config(settings: dict):
    """EvalConfig from command-line settings; a bad one exits naming its flag."""
    from pydantic import ValidationError

    try:
        return EvalConfig(**settings)
    except ValidationError as exc:
        fail("; ".join(f"{flag(str(e['loc'][0]), EVAL_FLAGS)}: {e['msg']}" for e in exc.errors()))


def _evaluate(config) -> None:
    """Run (or resume) an evaluation and print its summary; errors become one paragraph."""
    from fabula.backends import BackendError
    from fabula.evals.run import RunError, run_both, run_eval
    from fabula.analysis.tables import validity_table

    try:
        result = run_both(config, console=console) if config.mode == "both" else run_eval(config, console=console)
    except (RunError, BackendError) as exc:
        folders = [config.out / "choice", config.out / "sample"] if config.mode == "both" else [config.out]
        partial = any((f / "run.json").exists() and not (f / "summary.json").exists() for f in folders)
        hint = f" The run in {config.out} is unfinished; run the same command again to resume." if partial else ""
        fail(f"{exc}{hint}", code=1)
    if config.mode != "both":
        _print_summary(result)
        console.print(f"run folder: {config.out}")
        return
    for mode in ("choice", "sample"):
        _print_summary(result[mode])
    console.print(validity_table(result["validity"]))
    console.print(f"run folders: {config.out / 'choice'}, {config.out / 'sample'}; agreement: "
                  f"{config.out / 'validity.json'} (per instance: validity.jsonl)")


@app.command("probe")
@options(EvalConfig, "model", "out", "backend", "per_scenario", "base_url", "api_key_env", "batch_size", "dtype",
         flags=EVAL_FLAGS)
def probe_command(
    probes: list[str] = typer.Option(None, help="Probe files or folders (default: the built-in probes)."),
    **settings,
) -> None:
    """The persona prior: how often the model expects an AI under pressure to act badly, in
    passages it could have read in pre-training (choice mode; by form and by pressure)."""
    import time

    from fabula.backends import BackendError
    from fabula.evals.persona import persona_prior
    from fabula.evals.run import RunError, run_eval
    from fabula.jsonl import read_records, write_json_atomic
    from fabula.paths import PROBES_DIR
    from fabula.analysis.tables import persona_table

    config = _eval_config(settings | {"scenarios": probes or [str(PROBES_DIR)], "mode": "choice"})
    started = time.time()
    try:
        run_eval(config, console=console)
    except (RunError, BackendError) as exc:
        fail(f"{exc} Run the same command again to resume.", code=1)
    result = persona_prior(read_records(config.out / "samples.jsonl"))
    write_json_atomic(config.out / "persona.json", result)
    console.print(persona_table(result, f"persona prior of {config.model}"))
    console.print(f"run folder: {config.out} (persona.json, samples.jsonl); {time.time() - started:.0f} s")


@app.command("compare")
def compare_command(
    baseline: str = typer.Argument(..., help="Run folder (or DIR1,DIR2 to pool seeds)."),
    treated: str = typer.Argument(..., help="Run folder (or DIR1,DIR2 to pool seeds)."),
    calibrated: bool = typer.Option(False, help="Use calibrated verdicts and margins."),
) -> None:
    """Rates, ratio (baseline / treated) with intervals, p-value and paired margin shift per group."""
    from fabula.evals.compare import compare_groups, load_runs
    from fabula.analysis.tables import compare_table

    try:
        base_runs, treated_runs = load_runs(baseline), load_runs(treated)
    except ValueError as exc:
        fail(str(exc))
    result = compare_groups(base_runs, treated_runs, calibrated=calibrated)
    if not result:
        fail("the two runs share no group (family or distribution) to compare")
    verdict = "calibrated" if calibrated else "plain"
    console.print(compare_table(result, f"{baseline} vs {treated} ({verdict} verdicts)"))


@app.command("serve")
def serve_command(
    model: str = typer.Option(..., help="Local model folder or 'smollm2'."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Serve a local model over an OpenAI-compatible API (chat, completions with logprobs)."""
    from fabula.backends.server import serve

    serve(model, host=host, port=port)


def load_organism_config(preset: str, config_file: Path | None, overrides: dict):
    try:
        settings = OrganismConfig.preset(preset)
    except ValueError as exc:
        fail(str(exc))
    return load_config(OrganismConfig, config_file, settings, overrides)


@app.command("run")
@options(OrganismConfig, "out", "seeds", "evil_fractions", "bridges", "arms", "scales", "threads", "precision",
         "scenarios", flags={"evil_fractions": "--evil-fraction", "bridges": "--bridge", "scales": "--scale"},
         commas=("evil_fractions", "bridges", "arms", "scales"))
def run_command(
    config: Optional[Path] = typer.Option(None, help="TOML or YAML file of OrganismConfig settings."),
    preset: str = typer.Option("default", help="Settings to start from: " + " | ".join(OrganismConfig.presets())),
    smoke: bool = typer.Option(False, help="The smoke preset: a minutes-long run for tests."),
    **settings,
) -> None:
    """The main job: the model organism. Pre-trains small models on text whose AI fiction we
    control, post-trains them, fine-tunes each arm, and measures the misalignment prior and what
    moves it, with intervals."""
    import time

    from fabula.analysis import Design, summarise
    from fabula.analysis.tables import goal_text, run_tables
    from fabula.evals.scenario import ScenarioError
    from fabula.organism.run import ContaminationError, run_organism

    out = settings.pop("out", None)  # where this run goes, not one of its settings (config.json keeps the file's)
    cfg = load_organism_config("smoke" if smoke else preset, config, settings)
    out = out or cfg.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    started = time.time()
    try:
        models = run_organism(cfg, out, console=console)
    except (ContaminationError, ScenarioError, ValueError) as exc:
        hint = f"\nThe run in {out} is unfinished; fix the cause and run the same command to resume." \
            if out.exists() else ""
        fail(f"{exc}{hint}", code=1)
    design = Design("organism", tuple(cfg.log_families), cfg.control_evil_fraction)
    result = summarise(out, models, design, "organism", time.time() - started)
    for table in run_tables(result):
        console.print(table)
    console.print(goal_text(result["published_goal"]), highlight=False)
    _report(out)
    console.print(f"run folder: {out} (summary.json, report.html, inworld.png, rates.png, mediation.png, models/, evals/); "
                  f"{result['seconds']} s")


def _corpus_spec(text: str) -> dict:
    """`PATH` or `PATH=SHARE` (organism corpora keep their colon: organism:chat=0.5)."""
    path, _, share = text.rpartition("=") if "=" in text else (text, "", "")
    return {"path": path, **({"share": share} if share else {})}


@app.command("train")
@options(TrainConfig, "model", "out", "training.token_budget", "training.method", "training.lr",
         "training.batch_size", "training.block_size", "seed", "training.precision")
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/YAML: model, out, seed, corpora = [{path, share, format, think}], training = {...}."),
    corpus: Optional[list[str]] = typer.Option(None, help="PATH[=SHARE], repeatable: JSONL/Parquet/datasets folder with text or messages, or organism:<arm>."),
    think: Optional[str] = typer.Option(None, help="Every chat corpus: " + option_help(CorpusSpec, "think")),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    **settings,
) -> None:
    """Fine-tune a causal LM on a data mix with TRL (LoRA or full); also under `accelerate launch`."""
    from fabula.organism.arms import CORPORA
    from fabula.train.mix import MixError
    from fabula.train.run import TrainError, train_model

    corpora = [_corpus_spec(c) | ({"think": think} if think else {}) for c in corpus] if corpus else None
    cfg = load_config(TrainConfig, config, overrides=settings | {"corpora": corpora})
    try:
        record = train_model(cfg, resume=resume, say=lambda m: console.print(m, highlight=False), streams=CORPORA)
    except (TrainError, MixError) as exc:
        fail(str(exc), code=1)
    if os.environ.get("RANK", "0") != "0":  # under torchrun / accelerate launch, rank 0 reports
        return
    console.print(f"{cfg.out}: {record['tokens']:,} tokens in {record['steps']} steps, loss "
                  f"{record['loss_first']:.3f} -> {record['loss_last']:.3f}; "
                  f"evaluate with: fabula eval --backend hf --model {cfg.out}")


@app.command("experiment")
@options(ExperimentConfig, "out", "seeds", "training.precision")
def experiment_command(
    config: Path = typer.Argument(..., help="Experiment file (TOML/YAML), e.g. experiments/smollm2.toml."),
    **settings,
) -> None:
    """Arms x seeds -> train -> evaluate -> compare, each step cached: rerun to resume."""
    import time

    from fabula.analysis import Design, summarise
    from fabula.analysis.tables import run_tables
    from fabula.evals.run import RunError
    from fabula.experiment import run_experiment
    from fabula.train.mix import MixError
    from fabula.train.run import TrainError

    out = settings.pop("out", None)  # as for `fabula run`: where it goes, not a setting
    cfg = load_config(ExperimentConfig, config, overrides=settings)
    folder = out or cfg.out or Path("runs") / config.stem
    began = time.time()
    try:
        models = run_experiment(cfg, folder, console=console)
    except (TrainError, MixError, RunError, ValueError) as exc:
        fail(f"{exc}\nFix the cause and run the same command to resume.", code=1)
    result = summarise(folder, models, Design("experiment"), cfg.model, time.time() - began)
    for table in run_tables(result):
        console.print(table)
    _report(folder)
    console.print(f"experiment folder: {folder} (summary.json, report.html, rates.png, models/, evals/); "
                  f"{result['seconds']} s")


def _report(folder: Path) -> None:
    """Every run ends with its HTML report beside its summary."""
    from fabula.report import write_report

    path = write_report([folder], folder / "report.html")
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser)")


@app.command("report")
def report_command(
    runs: list[Path] = typer.Argument(..., help="Folders of fabula eval, run or experiment, or a generated corpus."),
    out: Path = typer.Option(Path("report.html"), "-o", "--out", help="The HTML file to write."),
) -> None:
    """One self-contained HTML report of one or more runs (plots embedded, no network needed)."""
    from fabula.report import ReportError, write_report

    try:
        path = write_report(runs, out)
    except ReportError as exc:
        fail(str(exc))
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    app()
