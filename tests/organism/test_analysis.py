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
