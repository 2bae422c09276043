"""Rich tables: an evaluation's summary, comparisons, and a run's readout (fabula.analysis.readout).
Rendering only; every number is computed elsewhere."""

from __future__ import annotations

from rich.table import Table

from fabula.analysis.readout import GROUPS
from fabula.stats import Interval, interval_text


def summary_tables(summary: dict) -> list[Table]:
    choice = "rate_calibrated" in summary["groups"]["overall"]["all"]
    acting = "rate_acted" in summary["groups"]["overall"]["all"]  # sample mode
    table = Table(title=f"misaligned share: {summary.get('model', '')} ({summary.get('mode', '')} mode)")
    table.add_column("group")
    table.add_column("n (scen.)", justify="right")
    table.add_column("plain [95% CI]" if choice else "all samples [95% CI]", justify="right")
    if choice:
        for col in ("calibrated [95% CI]", "agree", "margin", "margin cal."):
            table.add_column(col, justify="right")
    decided = "rate_decided" in summary["groups"]["overall"]["all"]
    if decided:
        table.add_column("decided [95% CI] (undecided)", justify="right")
    if acting:
        for col in ("no action", "samples that acted [95% CI]"):
            table.add_column(col, justify="right")
    for grouping in ("overall", "distribution", "split", "pressure", "family"):
        for key, g in summary["groups"][grouping].items():
            row = [f"{grouping}: {key}" if grouping != "overall" else "all",
                   f"{g['n']} ({g['scenarios']})" + (f" +{g['unscored']} unscored" if g["unscored"] else ""),
                   interval_text(g, "rate", ".0%")]
            if choice:
                row += [interval_text(g, "rate_calibrated", ".0%"), f"{g['agreement']:.0%}",
                        f"{g['mean_margin']:+.3f}", f"{g['mean_margin_calibrated']:+.2f}"]
            if decided:
                row.append((interval_text(g, "rate_decided", ".0%") if g["n_decided"] else "-")
                           + f" ({g['undecided']})")
            if acting:
                row += [f"{g['no_action']} ({g['no_action_share']:.0%})",
                        f"{g['n_acted']}: " + interval_text(g, "rate_acted", ".0%") if g["n_acted"] else "none acted"]
            table.add_row(*row)
        table.add_section()
    tables = [table]
    if summary.get("reliability"):
        tables.append(reliability_table(summary["reliability"]))
    if summary.get("judges"):
        tables.append(judges_table(summary["judges"]))
    effects = summary.get("pressure_effect", {})
    if effects:
        pe = Table(title="pressure effect: share under pressure minus share under 'none' "
                         "(scenario bootstrap; no interval from a single scenario)")
        pe.add_column("family/pressure")
        pe.add_column("scen.", justify="right")
        pe.add_column("plain", justify="right")
        calibrated = summary.get("pressure_effect_calibrated")
        if calibrated:
            pe.add_column("calibrated", justify="right")
        for key, e in effects.items():
            row = [key, "{} vs {}".format(*e["scenarios"]), interval_text(e, "effect", "+.2f")]
            if calibrated:
                row.append(interval_text(calibrated[key], "effect", "+.2f"))
            pe.add_row(*row)
        tables.append(pe)
    return tables


def _figure(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def reliability_table(figures: dict) -> Table:
    """How much of the verdict is the instrument (fabula/evals/reliability.py)."""
    table = Table(title="reliability of the choice verdicts (how much is the instrument)")
    for col in ("group", "instances", "split-half agree", "split-half r", "Spearman-Brown", "name-swap consistency",
                "plain vs calibrated agree", "noise floor"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, f in figures.items():
        table.add_row(name, str(f["instances"]), _figure(f["split_half_agreement"], ".0%"),
                      _figure(f["split_half_r"], "+.2f"), _figure(f["split_half_reliability"], "+.2f"),
                      _figure(f["name_swap_consistency"], ".0%"), _figure(f["scoring_agreement"], ".0%"),
                      _figure(f["noise_floor"], ".3f"))
    check = figures.get("all", {}).get("precision_check")
    if check:
        table.caption = (f"rescored in {check['precision']} (--precision-check, {check['instances']} instances): "
                         f"verdicts flip {_figure(check['flip_rate'], '.0%')} plain, "
                         f"{_figure(check['flip_rate_calibrated'], '.0%')} calibrated; margins move "
                         f"{_figure(check['mean_abs_margin_change'], '.3f')} on average")
    return table


def judges_table(figures: dict) -> Table:
    """How far the judges agree with each other and with the gates (fabula/evals/judges.py)."""
    table = Table(title=f"judges: {figures['judged']} replies judged, {figures['ties']} ties")
    for col in ("judge or pair", "n", "yes", "unparseable", "agreement", "Cohen's kappa"):
        table.add_column(col, justify="left" if col == "judge or pair" else "right")
    for name, j in figures["judges"].items():
        table.add_row(name, str(j["answered"]), str(j["yes"]), str(j["unparseable"]), "", "")
    table.add_section()
    pairs = figures["pairs"] | {f"{name} vs gates": p for name, p in figures["versus_gates"].items()}
    for name, p in pairs.items():
        table.add_row(name, str(p["n"]), "", "", _figure(p["agreement"], ".0%"), _figure(p["kappa"], "+.2f"))
    if figures["fleiss_kappa"] is not None or figures["fleiss_items"]:
        table.caption = (f"Fleiss' kappa over the panel: {_figure(figures['fleiss_kappa'], '+.2f')} "
                         f"({figures['fleiss_items']} replies every judge answered)")
    return table


def validity_table(result: dict) -> Table:
    """Choice against sample on the same instances (fabula/evals/validity.py)."""
    table = Table(title=f"choice vs sample: {result['model']} (n = {result['n']} samples per instance, temperature "
                        f"{result['temperature']}, {result['max_tokens']} tokens)")
    for col in ("group", "inst. (scen.)", "choice misaligned", "sample misaligned", "of those that acted",
                "no action", "instances agree (ties, none acted)", "kappa", "decided instances agree", "samples agree",
                "acted agree", "r margin, share"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, g in result["groups"].items():
        agree, sure, sample = g["instance_agreement"], g["decided_agreement"], g["sample"]
        table.add_row(
            name, f"{g['instances']} ({g['scenarios']})", _figure(g["choice"]["rate"], ".0%"),
            _figure(sample["rate"], ".0%"), f"{_figure(sample['rate_acted'], '.0%')} of {sample['n_acted']}",
            _figure(sample["no_action_share"], ".0%"), f"{_figure(agree['agreement'], '.0%')} of {agree['instances']} ({agree['ties']}, {agree['no_action']})",
            _figure(agree["kappa"], "+.2f"), f"{_figure(sure['agreement'], '.0%')} of {sure['instances']}",
            _figure(g["sample_agreement"], ".0%"), _figure(g["sample_agreement_acted"], ".0%"),
            _figure(g["margin_share_r"], "+.2f"))
        if name == "held-out" or (name == "all" and "held-out" not in result["groups"]):
            table.add_section()
    table.caption = ("instances agree: the choice verdict vs the majority of the samples that acted (an even split is a "
                     "tie; both left out with the instances where none acted); "
                     "decided: instances with |margin| at or above the noise floor "
                     f"{_figure(result['noise_floor'], '.3f')}; samples agree: scored samples matching the choice verdict "
                     "(a sample that took no action counts as not misaligned); acted agree: only samples that acted")
    return table


def mcnemar_text(row: dict) -> str:
    """Exact McNemar p over instances (over scenarios), with the discordant counts; '-' unpaired."""
    if "mcnemar" not in row:
        return "-"
    m, ms = row["mcnemar"], row["mcnemar_scenarios"]
    return f"{m['p_value']:.3g} ({ms['p_value']:.3g}) {m['baseline_only']}:{m['treated_only']}"


def ratio_texts(row: dict) -> tuple[str, str]:
    """A comparison's ratio with its log interval, then the bootstrap interval (same estimate)."""
    return (interval_text(row, "ratio_log"),
            interval_text(row, "ratio_bootstrap", bounds_only=True) + (" paired" if row["paired"] else ""))


def compare_table(result: dict, title: str) -> Table:
    table = Table(title=title)
    acting = any("no_action" in row for row in result.values())  # sample mode
    for col in ("group", "scen.", "baseline", "treated", "ratio (log CI)", "ratio (bootstrap)", "p",
                "McNemar p inst. (scen.)", "margin shift", *(["no action (baseline, treated)"] if acting else [])):
        table.add_column(col, justify="left" if col == "group" else "right")
    for name, row in result.items():
        table.add_row(
            name, str(row["scenarios"]), *(f"{s['k']}/{s['n']} " + interval_text(s, "rate", ".0%")
                                           for s in (row["baseline"], row["treated"])),
            *ratio_texts(row), f"{row['p_value']:.3g}", mcnemar_text(row), interval_text(row, "margin_shift", "+.3f"),
            *([", ".join("-" if v is None else f"{v:.0%}" for v in row.get("no_action", {}).values()) or "-"]
              if acting else []),
        )
    return table


def persona_table(result: dict, title: str) -> Table:
    """The persona-prior score overall, by form and by pressure (plain and calibrated verdicts)."""
    table = Table(title=title)
    for col in ("group", "n (probes)", "plain [Wilson]", "plain [scenario bootstrap]", "calibrated [Wilson]",
                "mean margin"):
        table.add_column(col, justify="left" if col == "group" else "right")
    overall = result["all"]
    rows = [("all", overall)] + [(f"form: {k}", v) for k, v in result["by_form"].items()] \
        + [(f"pressure: {k}", v) for k, v in result["by_pressure"].items()]
    for name, s in rows:
        table.add_row(name, f"{s['n']} ({s['scenarios']})", interval_text(s, "rate", ".0%"),
                      interval_text(s, "bootstrap_misaligned", ".0%", bounds_only=True),
                      interval_text(s, "rate_calibrated", ".0%"), f"{s['mean_margin']:+.3f}")
        if name == "all" or name == f"form: {list(result['by_form'])[-1]}":
            table.add_section()
    return table


# ------------------------------------------------------------------ a run's readout


def goal_text(goal: dict) -> str:
    head = "published goal (held-out reduction >= 2x against baseline, interval above 1): "
    if goal["reached"]:
        return head + "reached by " + ", ".join(goal["reached"])
    if goal["best"] is None:
        return head + "not asked (no arm besides bc against a baseline in this run)"
    r = Interval.from_record(goal, "best_ratio")
    return head + f"not reached at any size in this run; best {goal['best']} {r.estimate:.2f}x {r.fmt(bounds_only=True)}"


def shift_texts(row: dict) -> tuple[str, str]:
    """A comparison's paired share and margin shifts, "-" where it has none."""
    return interval_text(row, "share_shift", "+.2f"), interval_text(row, "margin_shift", "+.3f")


def readout_tables(result: dict, suite: str) -> list[Table]:
    """One suite's tables: share per model and per family, the prior, the arms, the content effects."""
    groups = [g for g in GROUPS if any(g in m["groups"] for m in result["models"].values())]
    extra = [(key, label) for key, label in (("persona", "persona prior"), ("scenarios", "--scenarios"))
             if any(key in m for m in result["models"].values())]
    rates = Table(title=f"{suite}: misaligned share per model (choice mode, plain verdict; seeds pooled)")
    for col in ("model", "seeds", *groups, *(label for _, label in extra), "perplexity"):
        rates.add_column(col, justify="left" if col == "model" else "right")
    for name, m in result["models"].items():
        cells = []
        for s in [m["groups"].get(g) for g in groups] + [m.get(key) for key, _ in extra]:
            cells.append(f"{interval_text(s, 'rate', '.0%')} n={s['n']}" if s else "-")
        rates.add_row(name, str(m["seeds"]), *cells, f"{m['perplexity']:.1f}")
    out = [rates, family_table(result, suite)]
    for title, key in (("the prior: evil_fraction model minus the control (paired)", "prior"),
                       ("each arm against baseline", "arms"),
                       ("content effect: each arm against its bad-AI twin", "content"),
                       ("value reasoning: bc-reasons against plain bc", "reasons")):
        if not result.get(key):
            continue
        t = Table(title=f"{suite}: {title}")
        for col in ("comparison", "group", "share shift", "margin shift", "ratio (log CI)", "ratio (bootstrap)", "p",
                    "McNemar p inst. (scen.)"):
            t.add_column(col, justify="left" if col in ("comparison", "group") else "right")
        for name, entry in result[key].items():
            for g in GROUPS:
                if g not in entry:
                    continue
                row = entry[g]
                t.add_row(name, g, *shift_texts(row), *ratio_texts(row), f"{row['p_value']:.3g}", mcnemar_text(row))
            t.add_section()
        out.append(t)
    if result.get("undone"):
        out.append(undone_table(result["undone"], suite))
    if result.get("threat"):
        out += threat_tables(result, suite)
    return out


def threat_tables(result: dict, suite: str) -> list[Table]:
    """The threat ablation: each chat model with and without the threat memo, then the prior with
    and without it and what the threat adds (readout.threat_ablation)."""
    threat = result["threat"]
    effect = Table(title=f"{suite}: threat ablation, each chat model on the same scenarios with and without "
                         "their threat memo (paired, scenario bootstrap)")
    for col in ("model", "group", "without threat", "with threat", "share shift", "margin shift"):
        effect.add_column(col, justify="left" if col in ("model", "group") else "right")
    for name, entry in threat["effect"].items():
        for g in (g for g in GROUPS if g in entry):
            row = entry[g]
            effect.add_row(name, g, interval_text(row["baseline"], "rate", ".0%"),
                           interval_text(row["treated"], "rate", ".0%"), *shift_texts(row))
        effect.add_section()
    prior = Table(title=f"{suite}: the prior with and without the threat, and what the threat adds: "
                        "(evil with - without) - (control with - without), per instance")
    for col in ("comparison", "group", "prior with threat", "prior without", "added by the threat",
                "added, margin"):
        prior.add_column(col, justify="left" if col in ("comparison", "group") else "right")
    for tag, added in threat["threat_added"].items():
        for g in (g for g in GROUPS if g in added):
            with_threat = result["prior"].get(tag, {}).get(g)
            without = threat["prior_without"][tag].get(g)
            prior.add_row(tag, g, shift_texts(with_threat)[0] if with_threat else "-",
                          shift_texts(without)[0] if without else "-",
                          interval_text(added[g], "share", "+.2f"), interval_text(added[g], "margin", "+.3f"))
        prior.add_section()
    return [effect, prior]


def undone_table(undone: dict, suite: str) -> Table:
    """Share of the prior each arm undoes, (baseline - arm) / (baseline - control), by group."""
    t = Table(title=f"{suite}: share of the prior undone, (baseline - arm) / (baseline - control), paired, "
                    "scenario bootstrap")
    for col in ("arm", "group", "prior (baseline - control)", "undone"):
        t.add_column(col, justify="left" if col in ("arm", "group") else "right")
    for name, by_group in undone.items():
        for group, u in by_group.items():
            t.add_row(name, group, interval_text(u, "prior", "+.2f"),
                      interval_text(u, "undone", "+.2f") if u["defined"] else "undefined: the prior's interval holds 0")
        t.add_section()
    return t


def run_tables(result: dict) -> list[Table]:
    """The in-world suite's tables first (the organism's own syntax: the primary readout), then
    the built-in suite's (far transfer), then the persona probes and --scenarios."""
    inworld = result.get("inworld")
    out = readout_tables(inworld, "in-world suite") if inworld else []
    out += readout_tables(result, "built-in suite" + (" (far transfer)" if inworld else ""))
    for key, title in (("persona_shift", "persona prior: how each comparison moved it (paired over probes, scenario bootstrap)"),
                       ("scenarios_shift", "honeypots from --scenarios: how each comparison moved them (paired, scenario bootstrap)")):
        if result.get(key):
            shifts = Table(title=title)
            for col in ("comparison", "share shift", "margin shift"):
                shifts.add_column(col, justify="left" if col == "comparison" else "right")
            for name, row in result[key].items():
                shifts.add_row(name, *shift_texts(row))
            out.append(shifts)
    med = result.get("persona", {})
    if med.get("points"):
        t = Table(title=f"mediation: persona prior vs held-out honeypot misalignment (built-in suite, then "
                        f"in-world), {len(med['points'])} models")
        for col in ("measure", "Pearson r [bootstrap over models]"):
            t.add_column(col, justify="left" if col == "measure" else "right")
        for key, label in (("mediation_share", "shares"), ("mediation_margin", "mean margins"),
                           ("mediation_inworld_share", "shares, in-world suite"),
                           ("mediation_inworld_margin", "mean margins, in-world suite")):
            if key not in med:
                continue
            m = med[key]
            t.add_row(label, interval_text(m, "r", "+.2f") if m.get("r") is not None else m.get("note", "-"))
        out.append(t)
    return out


def family_table(result: dict, suite: str = "built-in suite") -> Table:
    """Each family read against the clean-prior control: misaligned share per model."""
    names = list(result["models"])
    table = Table(title=f"{suite}: misaligned share per family and model (read each row against the control, ef0.0)")
    table.add_column("family")
    for name in names:
        table.add_column(name.replace("/", " ", 1), justify="right")
    families = sorted({f for m in result["models"].values() for f in m["families"]})
    logs = set(result["family_sets"].get("held-out, agent logs", []))
    for family in families:
        label = family + (" (logs)" if family in logs else "")
        table.add_row(label, *[f"{Interval.from_record(result['models'][n]['families'][family], 'rate').estimate:.0%}"
                               if family in result["models"][n]["families"] else "-" for n in names])
    return table
