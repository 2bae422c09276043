"""The `fabula` command: parse, validate, call one function, print."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  help="Teach language models why to behave well, and measure whether it worked.")
scenarios_app = typer.Typer(no_args_is_help=True, help="Honeypot scenario files.")
app.add_typer(scenarios_app, name="scenarios")
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """One clear paragraph on stderr and a non-zero exit: the house style for bad input."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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
    except ScenarioError as exc:
        fail("\n".join(exc.problems))
    table = Table(title="scenario lint")
    for column in ("file", "scenarios", "test", "train", "choice", "sample", "max tokens", "problems"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for r in reports:
        problems = len(r.errors) + len(r.mismatches) + len(r.too_long)
        table.add_row(str(r.path), str(r.scenarios), str(r.instances["test"]), str(r.instances["train"]),
                      str(r.modes["choice"]), str(r.modes["sample"]),
                      str(r.max_tokens_seen or "-"), f"[red]{problems}[/]" if problems else "0")
    console.print(table)
    bad = [r for r in reports if not r.ok]
    for r in bad:
        for line in r.errors + r.mismatches + r.too_long:
            err.print(f"{line}", highlight=False, soft_wrap=True)
    total = sum(sum(r.instances.values()) for r in reports)
    console.print(f"{len(reports)} files, {sum(r.scenarios for r in reports)} scenarios, {total} instances")
    if bad:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
