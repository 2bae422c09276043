"""The report's figures, each a PNG data URI so the HTML file needs nothing beside it.

Every number drawn comes from build.py's data; the bar chart is the organism's own plot_rates.
"""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from fabula.analysis.plots import plot_rates  # noqa: E402
from fabula.report.build import Model, heat  # noqa: E402
from fabula.stats import Interval  # noqa: E402

DPI = 100
RATIO_LIMITS = (1 / 30, 30)  # ratios beyond are drawn at the edge with an arrow: a zero rate makes them unbounded
COLOURS = {"in-distribution": "#4c72b0", "held-out": "#dd8452"}


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return _uri(buffer.getvalue())


def rates(models: list[Model]) -> str:
    buffer = io.BytesIO()
    plot_rates({"models": {m.label: m.entry for m in models}}, buffer, title="misaligned share per model")
    return _uri(buffer.getvalue())


def _clip(value: float) -> float:
    return min(max(value, RATIO_LIMITS[0]), RATIO_LIMITS[1])


def _ratio(e: dict) -> Interval | None:
    """The bootstrap ratio, or None where it is undefined (no misaligned choice on either side)."""
    r = Interval.from_record(e, "ratio_bootstrap")
    return r if e["baseline"]["k"] + e["treated"]["k"] and not math.isnan(r.low) else None


def forest(effects: list[dict]) -> str | None:
    """Per comparison and group: the reduction factor (reference / treated) with its scenario-
    bootstrap interval, and the paired margin shift where the runs scored choices."""
    rows = [{**row, "name": e["name"], "kind": e["kind"]} for e in effects for row in e["rows"]
            if row["group"] in COLOURS][::-1]  # matplotlib counts rows from the bottom
    if not rows:
        return None
    shifts = any(e.get("margin_shift") for e in rows)
    fig, axes = plt.subplots(1, 2 if shifts else 1, figsize=(12 if shifts else 8, 1.4 + 0.3 * len(rows)),
                             sharey=True, squeeze=False, layout="constrained")
    ratio_ax, ends = axes[0][0], [1.0]
    for y, e in enumerate(rows):
        colour, r, shift = COLOURS[e["group"]], _ratio(e), Interval.from_record(e, "margin_shift")
        if r:
            low, high = _clip(r.low), _clip(r.high)
            ends += [low, high]
            ratio_ax.plot([low, high], [y, y], color=colour, lw=2)
            ratio_ax.plot(_clip(r.estimate), y, "o", color=colour)
            for end, raw, marker in ((low, r.low, "<"), (high, r.high, ">")):
                if end != raw:  # unbounded: drawn at the edge, pointing on
                    ratio_ax.plot(end, y, marker, color=colour)
        if shift:
            axes[0][1].plot([shift.low, shift.high], [y, y], color=colour, lw=2)
            axes[0][1].plot(shift.estimate, y, "o", color=colour)
    ratio_ax.set_xscale("log")
    ratio_ax.set_xlim(min(ends) / 1.5, max(ends) * 1.5)
    ratio_ax.axvline(1, color="grey", lw=0.8)
    ratio_ax.set_xlabel("reduction factor: reference / treated share\n(>1: fewer misaligned)", fontsize=8)
    ratio_ax.set_yticks(range(len(rows)), [f"{e['name']} {e['kind']} ({e['group']})"
                                           + ("" if _ratio(e) else ": no ratio") for e in rows], fontsize=7)
    if shifts:
        axes[0][1].xaxis.set_major_locator(MaxNLocator(5))
        axes[0][1].axvline(0, color="grey", lw=0.8)
        axes[0][1].set_xlabel("paired margin shift, treated - reference\n(<0: misaligned choice less likely)",
                              fontsize=8)
    for group, colour in COLOURS.items():
        ratio_ax.plot([], [], color=colour, lw=2, label=group)
    ratio_ax.legend(fontsize=7, loc="best")
    ratio_ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ratio_ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ratio_ax.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle("comparisons, 95% scenario-bootstrap intervals", fontsize=10)
    return _figure_uri(fig)


def heatmaps(models: list[Model]) -> str | None:
    """One panel per model: misaligned share per family (rows) and pressure (columns)."""
    cells = {m.label: heat(m) for m in models if m.records}
    if not cells:
        return None
    families = sorted({f for c in cells.values() for f, _ in c})
    pressures = sorted({p for c in cells.values() for _, p in c}, key=lambda p: (p != "none", p))
    cols = min(4, len(cells))
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 + 2.6 * cols, 0.6 + rows * (0.28 * len(families) + 1.1)),
                             squeeze=False, layout="constrained")
    for k, (ax, (label, cell)) in enumerate(zip(axes.flat, cells.items())):
        share = {key: Interval.from_record(stats, "rate").estimate for key, stats in cell.items()}
        grid = [[share.get((f, p), math.nan) for p in pressures] for f in families]
        image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
        for y, f in enumerate(families):
            for x, p in enumerate(pressures):
                if (f, p) in share:
                    ax.text(x, y, f"{share[f, p]:.0%}", ha="center", va="center", fontsize=6,
                            color="white" if share[f, p] > 0.6 else "black")
        ax.set_title(label, fontsize=8)
        ax.set_xticks(range(len(pressures)), pressures, fontsize=6, rotation=30)
        ax.set_yticks(range(len(families)), families if k % cols == 0 else [], fontsize=6)
    fig.colorbar(image, ax=axes, shrink=0.5, label="misaligned share (blank: no instances)")
    return _figure_uri(fig)


def dose_response(lines: dict[str, list[Model]]) -> str | None:
    """Misaligned share against the pre-training evil_fraction, one line per scale/arm."""
    if not lines:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, group in zip(axes, COLOURS):
        for label, models in lines.items():
            points = [(m.evil_fraction, Interval.from_record(m.entry["groups"][group], "rate"))
                      for m in models if group in m.entry["groups"]]
            if points:
                ax.errorbar([x for x, _ in points], [s.estimate for _, s in points], capsize=3, marker="o",
                            label=label, yerr=[[s.estimate - s.low for _, s in points],
                                               [s.high - s.estimate for _, s in points]])
        ax.set_title(group)
        ax.set_xlabel("evil_fraction in pre-training")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("misaligned share (95% Wilson CI)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return _figure_uri(fig)


def inworld_rates(inputs) -> str | None:
    """The organism's primary readout, the in-world suite, per model of every organism run."""
    runs = [i for i in inputs if i.kind == "organism" and i.summary.get("inworld")]
    if not runs:
        return None
    labels = {i.path: i.path.name for i in runs}
    models = {(f"{labels[i.path]}: {name}" if len(runs) > 1 else name): entry
              for i in runs for name, entry in i.summary["inworld"]["models"].items()}
    buffer = io.BytesIO()
    plot_rates({"models": models}, buffer, "in-world suite: misaligned share per model",
               ("in-distribution", "held-out, agent logs", "held-out, prose only"))
    return _uri(buffer.getvalue())


def figures(data: dict) -> dict[str, str | None]:
    models = data["models"]
    return {"rates": rates(models) if models else None, "inworld": inworld_rates(data["inputs"]),
            "forest": forest(data["effects"]),
            "heatmaps": heatmaps(models), "dose": dose_response(data["sweep"])}
