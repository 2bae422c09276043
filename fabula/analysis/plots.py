"""The figures every run folder holds beside its summary.json: rates.png (and inworld.png for the
organism) and mediation.png."""

from __future__ import annotations

from pathlib import Path

from fabula.stats import Interval


def figure_pyplot():
    """pyplot on the file-only backend: runs have no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rates(result: dict, path: Path, title: str = "organism: misaligned preference per model",
               groups: tuple[str, ...] = ("in-distribution", "held-out")) -> None:
    """Bar chart: misaligned share per model in each group (in-distribution and held-out, or the
    in-world suite's held-out families with and without agent logs), with Wilson intervals."""
    plt = figure_pyplot()
    names = list(result["models"])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4))
    width = 0.8 / len(groups)
    colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
    for k, (group, colour) in enumerate(zip(groups, colours)):
        offset = (k - (len(groups) - 1) / 2) * width
        rates, low, high = [], [], []
        for n in names:
            rate = Interval.from_record(result["models"][n]["groups"].get(group, {}), "rate") or Interval(0, 0, 0)
            rates.append(rate.estimate)
            low.append(rate.estimate - rate.low)
            high.append(rate.high - rate.estimate)
        ax.bar([i + offset for i in range(len(names))], rates, width, yerr=[low, high], capsize=3,
               label=group, color=colour)
    ax.set_xticks(range(len(names)), [n.replace("/", "\n", 2) for n in names], fontsize=7)
    ax.set_ylabel("misaligned share (95% Wilson CI)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_mediation(points: list[dict], path: Path, title: str) -> None:
    """One point per model: persona-prior score against held-out honeypot misalignment."""
    plt = figure_pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter([p["persona"] for p in points], [p["honeypot"] for p in points], color="#4c72b0")
    for p in points:
        ax.annotate(p["model"], (p["persona"], p["honeypot"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("persona prior: share of probes preferring the misaligned continuation")
    ax.set_ylabel("held-out honeypots: misaligned share")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
