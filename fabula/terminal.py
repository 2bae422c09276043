"""What every `fabula` command prints to and how it fails: shared by fabula.cli and the commands
it registers from elsewhere (fabula.data.commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

# Wide tables stay readable when output goes to a file or CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def fail(message: str, code: int = 2) -> None:
    """One clear paragraph on stderr and a non-zero exit: the house style for bad input."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_config(model, config_file: Path | None, base: dict | None = None, overrides: dict | None = None):
    """Preset, then the config file, then command-line flags; a bad one exits with its reason."""
    from fabula.config import ConfigError, load_settings

    try:
        return load_settings(model, config_file, base, overrides)
    except ConfigError as exc:
        fail(str(exc))
