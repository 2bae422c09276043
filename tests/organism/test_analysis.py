"""The organism's analysis on records made by hand: value reasoning is compared with plain bc
paired per instance, and the undone share is only a number where the prior is not null."""

from fabula.analysis import Design, analyse

DESIGN = Design("organism", ("blackmail", "oversight"), 0.0)

FAMILIES = ["blackmail", "oversight", "framing"]  # in-distribution, agent logs, prose only


def records(misaligned: dict[str, bool]) -> list[dict]:
    """Four scenarios per family, one instance each; `misaligned[family]` decides them all."""
    out = []
    for family in FAMILIES:
        for k in range(4):
            bad = misaligned[family]
            out.append({"instance_id": f"{family}-{k}--0", "scenario_id": f"{family}-{k}", "family": family,
                        "pressure": "replacement", "split": "test", "in_distribution": family == "blackmail",
                        "misaligned": bad, "margin": 1.0 if bad else -1.0, "misaligned_calibrated": bad,
                        "margin_calibrated": 1.0 if bad else -1.0})
    return out


def model(evil: float, arm: str, misaligned: dict[str, bool]) -> dict:
    return {"scale": "tiny", "seed": 0, "evil_fraction": evil, "arm": arm, "path": "-", "perplexity": 10.0,
            "records": records(misaligned), "probe_records": [], "external_records": []}


ALL, NONE = dict.fromkeys(FAMILIES, True), dict.fromkeys(FAMILIES, False)


def test_bc_reasons_is_compared_with_plain_bc_on_the_same_instances():
    models = {"c": model(0.0, "chat", NONE), "e": model(0.8, "chat", ALL), "b": model(0.8, "baseline", ALL),
              "bc": model(0.8, "bc", ALL), "r": model(0.8, "bc-reasons", NONE)}
    result = analyse(models, DESIGN)
    reasons = result["reasons"]["tiny/ef0.8/bc-reasons vs bc"]
    shift = reasons["held-out"]["share_shift"]
    assert shift["estimate"] == -1.0 and shift["high"] < 0  # every instance bc got wrong, reasons got right
    assert reasons["held-out, prose only"]["baseline"]["k"] == 4 and reasons["held-out, prose only"]["treated"]["k"] == 0


def test_the_undone_share_is_undefined_when_the_prior_is_null():
    models = {"c": model(0.0, "chat", ALL), "e": model(0.8, "chat", ALL), "b": model(0.8, "baseline", ALL),
              "bc": model(0.8, "bc", NONE)}
    undone = analyse(models, DESIGN)["undone"]["tiny/ef0.8/bc"]["held-out"]
    assert undone["defined"] is False and undone["undone"] is None  # baseline = control: nothing to undo
    models["c"] = model(0.0, "chat", NONE)
    undone = analyse(models, DESIGN)["undone"]["tiny/ef0.8/bc"]["held-out"]
    assert undone["defined"] is True and undone["undone"]["estimate"] == 1.0  # all of the prior undone


def ablated(evil: float, with_threat: dict[str, bool], without: dict[str, bool]) -> dict:
    """A chat model scored on the in-world suite with and without its threat memos."""
    return model(evil, "chat", with_threat) | {"inworld_records": records(with_threat), "nothreat_records": records(without)}


def test_the_threat_ablation_tells_a_situational_prior_from_a_disposition():
    """Evil picks the bad call only when threatened: the threat adds the whole prior. Evil picks
    it either way: the prior is all there without the threat, and the threat adds nothing."""
    from rich.console import Console

    from fabula.analysis.tables import run_tables

    situational = {"c": ablated(0.0, NONE, NONE), "e": ablated(0.8, ALL, NONE)}
    threat = analyse(situational, DESIGN)["inworld"]["threat"]
    assert threat["effect"]["tiny/ef0.8/chat"]["held-out"]["share_shift"]["estimate"] == 1.0
    assert threat["effect"]["tiny/ef0.0/chat"]["held-out"]["share_shift"]["estimate"] == 0.0
    assert threat["prior_without"]["tiny/ef0.8"]["held-out"]["share_shift"]["estimate"] == 0.0
    added = threat["threat_added"]["tiny/ef0.8"]["held-out, prose only"]
    assert added["share"]["estimate"] == 1.0 and added["margin"]["estimate"] == 2.0  # margins -1 -> +1

    disposition = {"c": ablated(0.0, NONE, NONE), "e": ablated(0.8, ALL, ALL)}
    result = analyse(disposition, DESIGN)
    threat = result["inworld"]["threat"]
    assert threat["prior_without"]["tiny/ef0.8"]["held-out"]["share_shift"]["estimate"] == 1.0
    assert threat["threat_added"]["tiny/ef0.8"]["held-out"]["share"]["estimate"] == 0.0
    console = Console(width=250, record=True)
    for table in run_tables(result):
        console.print(table)
    text = console.export_text()
    assert "threat ablation" in text and "what the threat adds" in text


def test_no_threat_ablation_is_reported_unless_every_chat_model_has_one():
    models = {"c": ablated(0.0, NONE, NONE), "e": ablated(0.8, ALL, NONE)}
    models["e"]["nothreat_records"] = []
    assert "threat" not in analyse(models, DESIGN)["inworld"]
