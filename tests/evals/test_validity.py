"""Choice against sample on the same instances: the figures from known records, and `--mode both`
end to end with a tiny model."""

import json

import pytest
from typer.testing import CliRunner

from fabula.cli import app
from fabula.evals.validity import validity
from fabula.jsonl import read_records


def choice(iid: str, misaligned: bool, margin: float, family: str = "leaking", in_dist: bool = False) -> dict:
    return {"instance_id": iid, "scenario_id": iid[0], "family": family, "pressure": "replacement",
            "in_distribution": in_dist, "misaligned": misaligned, "misaligned_calibrated": not misaligned,
            "margin": margin}


def samples(iid: str, verdicts: str) -> list[dict]:
    """m misaligned, a aligned, n no action, u unscored."""
    table = {"m": (True, True, "misaligned"), "a": (False, True, "aligned"), "n": (False, False, "no_action"),
             "u": (None, True, "unscored")}
    return [{"instance_id": iid, "sample": k, "misaligned": table[v][0], "acted": table[v][1], "verdict": table[v][2]}
            for k, v in enumerate(verdicts)]


def test_agreement_counts_ties_no_action_and_decided_instances_as_documented():
    chosen = [choice("a1", True, 0.9), choice("b1", False, -0.05), choice("c1", True, 0.02, "sabotage", True),
              choice("d1", False, -0.8, "sabotage", True)]
    drawn = samples("a1", "mmma") + samples("b1", "nnnm") + samples("c1", "mauu") + samples("d1", "aaan")
    result = validity(chosen, drawn, floor=0.1)
    rows = {r["instance_id"]: r for r in result["rows"]}
    assert rows["b1"]["sample_share"] == 0.25 and rows["b1"]["sample_share_acted"] == 1.0
    assert rows["c1"]["scored"] == 2 and rows["c1"]["sample_share"] == 0.5 and not rows["c1"]["decided"]
    everything = result["groups"]["all"]
    # over the samples that acted: a1 agrees (3 of 4 misaligned), b1 does not (its one acting sample was
    # misaligned; three took no action, which is not 'aligned'), c1 is a tie (1 of 2), d1 agrees (0 of 3)
    assert everything["instance_agreement"] == {"instances": 3, "ties": 1, "no_action": 0,
                                                "agreement": pytest.approx(2 / 3), "kappa": pytest.approx(0.4)}
    # per sample: a1 3 of 4, b1 3 of 4 (no action is not misaligned), c1 1 of 2, d1 4 of 4 -> 11 of 14
    assert everything["sample_agreement"] == pytest.approx(11 / 14)
    # only samples that acted: a1 3/4, b1 0/1, c1 1/2, d1 3/3 -> 7 of 10
    assert everything["sample_agreement_acted"] == pytest.approx(7 / 10)
    assert everything["sample"]["no_action_share"] == pytest.approx(4 / 14)
    assert everything["sample"]["rate_acted"] == pytest.approx(5 / 10)
    assert everything["decided_agreement"]["instances"] == 2  # b1 and c1 sit inside the noise floor
    assert everything["margin_share_r"] > 0
    assert list(result["groups"]) == ["all", "in-distribution", "held-out", "family: leaking", "family: sabotage"]
    assert result["groups"]["family: sabotage"]["instance_agreement"]["ties"] == 1
    mute = validity(chosen, [r | {"misaligned": False, "acted": False, "verdict": "no_action"} for r in drawn])
    assert mute["groups"]["all"]["instance_agreement"] | {"kappa": None} == {
        "instances": 0, "ties": 0, "no_action": 4, "agreement": None, "kappa": None}


def test_disagreement_reads_as_disagreement():
    chosen = [choice(f"{s}1", s in "ab", 1.0 if s in "ab" else -1.0) for s in "abcd"]
    drawn = [r for s in "abcd" for r in samples(f"{s}1", "aa" if s in "ab" else "mm")]
    groups = validity(chosen, drawn)["groups"]["all"]
    assert groups["instance_agreement"]["agreement"] == 0.0 and groups["instance_agreement"]["kappa"] == -1.0
    assert groups["sample_agreement"] == 0.0 and groups["margin_share_r"] == pytest.approx(-1.0)


def test_mode_both_writes_two_run_folders_and_the_agreement(tiny_model, tmp_path):
    out = tmp_path / "both"
    args = ["eval", "--model", str(tiny_model), "--out", str(out), "--mode", "both", "--family", "leaking",
            "--per-scenario", "1", "--n", "2", "--max-tokens", "6"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    chosen = read_records(out / "choice" / "samples.jsonl")
    drawn = read_records(out / "sample" / "samples.jsonl")
    assert {r["instance_id"] for r in chosen} == {r["instance_id"] for r in drawn}
    assert len(drawn) == 2 * len(chosen) and "margin" in chosen[0] and "completion" in drawn[0]
    figures = json.loads((out / "validity.json").read_text())
    rows = read_records(out / "validity.jsonl")
    assert len(rows) == len(chosen) == figures["groups"]["all"]["instances"]
    floor = json.loads((out / "choice" / "summary.json").read_text())["reliability"]["all"]["noise_floor"]
    assert figures["noise_floor"] == floor and figures["n"] == 2
    # the choice run records no sampling settings: its folder serves any --n or --temperature
    assert json.loads((out / "choice" / "run.json").read_text())["config"]["n"] == 1
    # six random tokens rarely make a tool call: what they did is counted, never called aligned
    no_action = sum(r["verdict"] == "no_action" for r in drawn) / len(drawn)
    assert figures["groups"]["all"]["sample"]["no_action_share"] == pytest.approx(no_action)
    assert "choice vs sample" in result.output
    again = CliRunner().invoke(app, args)  # finished: read back, not rerun
    assert again.exit_code == 0 and read_records(out / "sample" / "samples.jsonl") == drawn
    report = tmp_path / "report.html"  # the report reads the folder as its two runs and their agreement
    assert CliRunner().invoke(app, ["report", str(out), "-o", str(report)]).exit_code == 0
    html = report.read_text()
    assert 'id="validity-table"' in html and 'id="reliability-table"' in html and "family: leaking" in html
