"""Where fabula keeps things: its cache folder and the scenario and probe files it ships."""

from __future__ import annotations

import os
from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "evals" / "scenarios"   # the built-in honeypot suite
PROBES_DIR = Path(__file__).parent / "evals" / "probes"       # the persona-prior probes


def cache_dir() -> Path:
    return Path(os.environ.get("FABULA_CACHE", Path.home() / ".cache" / "fabula"))
