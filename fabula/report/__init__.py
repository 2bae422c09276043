"""`fabula report`: one self-contained HTML file from run folders.

The file needs no network to view: CSS and the transcript filter are inline, figures are PNG
data URIs. build.py gathers the data, plots.py draws it, templates/report.html.j2 lays it out;
the console tables are fabula's own (fabula/analysis/tables.py), exported
from rich as HTML.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from rich.console import Console

from fabula.report import plots
from fabula.report.build import ReportError, collect
from fabula.stats import interval_text
from fabula.analysis.tables import run_tables, summary_tables

__all__ = ["ReportError", "write_report"]


def console_tables(inputs) -> Markup:
    """Every table the CLI prints for these runs, exported as HTML (rich escapes the text)."""
    console = Console(record=True, file=io.StringIO(), width=180)
    for i in inputs:
        if i.kind == "evaluation":
            console.print(f"{i.path}", highlight=False)
            for table in summary_tables(i.summary):
                console.print(table)
        elif i.kind in ("organism", "experiment"):
            console.print(f"{i.path}", highlight=False)
            for table in run_tables(i.summary):
                console.print(table)
    return Markup(console.export_html(inline_styles=True, code_format='<pre class="console">{code}</pre>'))


def render(data: dict) -> str:
    env = Environment(loader=PackageLoader("fabula.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters |= {"ci": interval_text,  # holder|ci(key, spec): an interval as the console tables print it
                    "pct": lambda value: "-" if value is None else f"{value:.0%}"}
    return env.get_template("report.html.j2").render(
        **data, figures=plots.figures(data), console=console_tables(data["inputs"]),
        generated=time.strftime("%Y-%m-%d %H:%M %Z"))


def write_report(paths: list[Path], out: Path) -> Path:
    """Read the run folders, write the report to `out`, return `out`."""
    html = render(collect([Path(p) for p in paths]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
