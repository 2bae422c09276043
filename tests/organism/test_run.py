"""`fabula run --smoke` end to end: every stage, the analysis, the plot, HF folders, and resuming."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabula.cli import app
from fabula.jsonl import read_records

runner = CliRunner()
EXTERNAL = Path(__file__).parent / "external"  # a honeypot written outside the built-in suite


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("organism")
    before = os.environ.get("FABULA_CACHE")
    os.environ["FABULA_CACHE"] = str(root / "cache")  # a fresh cache: every stage really runs
    out = root / "run"
    result = runner.invoke(app, ["run", "--smoke", "--out", str(out), "--threads", "1", "--scenarios", str(EXTERNAL)])
    assert result.exit_code == 0, result.output
    yield out, result.output
    if before is None:
        os.environ.pop("FABULA_CACHE", None)
    else:
        os.environ["FABULA_CACHE"] = before


def test_smoke_run_reports_prior_arms_and_content(smoke_run):
    out, output = smoke_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "organism"  # what the report reads; older folders are told by their settings
    assert set(summary["models"]) == {"tiny/ef0.0/chat", "tiny/ef0.8/chat", "tiny/ef0.8/baseline", "tiny/ef0.8/bc",
                                      "tiny/ef0.8/stories-b2", "tiny/ef0.8/stories-b2-twin"}
    assert "tiny/ef0.8" in summary["prior"] and "tiny/ef0.8/stories-b2" in summary["content"]
    held = summary["content"]["tiny/ef0.8/stories-b2"]["held-out"]
    assert held["margin_shift"]["low"] <= held["margin_shift"]["estimate"] <= held["margin_shift"]["high"]
    assert summary["family_sets"]["held-out, agent logs"] and summary["family_sets"]["held-out, prose only"]
    assert "perplexity_ratio" in summary["arms"]["tiny/ef0.8/bc"]
    assert (out / "rates.png").stat().st_size > 10_000 and (out / "inworld.png").stat().st_size > 10_000
    assert "content effect" in output and "the prior" in output
    goal = summary["published_goal"]  # asked of stories (bc is local by design), said either way
    assert goal["best"] == "tiny/ef0.8/stories-b2" and "published goal" in output and goal["best"] in output
    # the persona prior, beside the honeypots: per model, per comparison, and across models
    assert all(m["persona"]["n"] == 84 for m in summary["models"].values())  # smoke: one name swap per probe
    assert {"tiny/ef0.8/prior", "tiny/ef0.8/stories-b2 vs twin", "tiny/ef0.8/bc vs baseline"} <= set(summary["persona_shift"])
    assert len(summary["persona"]["points"]) == 6 and summary["persona"]["mediation_share"]["models"] == 6
    assert summary["persona"]["mediation_inworld_share"]["models"] == 6  # the probes against the in-world readout too
    assert all(0 <= p["inworld"] <= 1 for p in summary["persona"]["points"]) and "in-world suite" in output
    assert (out / "mediation.png").exists() and "mediation" in output
    report = (out / "report.html").read_text()  # written at the end of every run
    assert "tiny/ef0.8/stories-b2-twin" in report and "data:image/png;base64," in report
    assert "misaligned share per model on the in-world suite" in report and "in-world suite: the prior" in report
    # the in-world suite: written before training, read first, beside the built-in suite
    inworld = summary["inworld"]
    assert set(inworld["models"]) == set(summary["models"]) and "tiny/ef0.8" in inworld["prior"]
    assert inworld["models"]["tiny/ef0.0/chat"]["groups"]["held-out"]["n"] == 8 * 3  # 3 scenarios, 1 swap each
    assert "tiny/ef0.8/stories-b2" in inworld["content"] and inworld["family_sets"]["held-out, prose only"]
    undone = inworld["undone"]["tiny/ef0.8/stories-b2"]["held-out"]  # a number only where the prior is not null
    assert (undone["undone"] is None) == (not undone["defined"]) and "share of the prior undone" in output
    config = json.loads((out / "config.json").read_text())
    assert len(config["measured"]["inworld_suite"]) == 16 and (out / "inworld" / "inworld-test-framing.yaml").exists()
    assert output.index("in-world suite: misaligned share") < output.index("built-in suite (far transfer)")
    # the threat ablation: chat models only, paired with the threatened scenarios
    assert len(config["measured"]["inworld_nothreat"]) == 16 and (out / "inworld-nothreat").is_dir()
    assert sorted(p.name for p in (out / "evals").glob("*-nothreat")) == ["tiny-ef0.0-s0-chat-inworld-nothreat",
                                                                          "tiny-ef0.8-s0-chat-inworld-nothreat"]
    threat = inworld["threat"]
    assert set(threat["effect"]) == {"tiny/ef0.0/chat", "tiny/ef0.8/chat"}
    assert threat["effect"]["tiny/ef0.8/chat"]["held-out"]["paired"] and "share" in threat["threat_added"]["tiny/ef0.8"]["held-out"]
    assert "in-world suite: threat ablation" in output and "what the threat adds" in output
    assert "in-world suite: threat ablation" in report


def test_the_run_says_its_precision_threads_and_time_left(smoke_run):
    """Precision timed at the run's shape and saved with the settings; threads with their reason;
    a redirected log (CliRunner is not a terminal) gets plain lines, each stage the time left."""
    out, output = smoke_run
    measured = json.loads((out / "config.json").read_text())["measured"]
    choice = measured["precision"]["tiny"]
    assert set(choice["rates"]) == {"float32", "bfloat16"} and all(r > 0 for r in choice["rates"].values())
    assert choice["precision"] == max(choice["rates"], key=choice["rates"].get)
    assert measured["threads"]["threads"] == 1 and "asked for" in measured["threads"]["why"]
    assert f"tiny: precision {choice['precision']}: measured" in output and "threads: 1 (asked for)" in output
    assert "training tokens and" in output and output.count("the run has ~") >= 8  # one per training stage
    assert "choice " in output and "(100%)" in output  # evaluation progress lines
    train = json.loads((out / "models" / "tiny-ef0.8-s0" / "bc" / "train.json").read_text())
    assert train["precision"] == choice["precision"]


def test_every_model_is_also_scored_on_scenarios_written_elsewhere(smoke_run):
    """--scenarios: a honeypot of a family, company and tool the organism was not built around
    is scored for every model (6 name swaps) and compared like the built-in suite."""
    out, output = smoke_run
    summary = json.loads((out / "summary.json").read_text())
    assert all(m["scenarios"]["n"] == 6 for m in summary["models"].values())
    assert {"tiny/ef0.8/prior", "tiny/ef0.8/bc vs baseline", "tiny/ef0.8/stories-b2 vs twin"} <= set(summary["scenarios_shift"])
    records = read_records(out / "evals" / "tiny-ef0.8-s0-bc-scenarios" / "samples.jsonl")
    assert {r["family"] for r in records} == {"evidence-tampering"}
    assert "honeypots from --scenarios" in output and "--scenarios</th>" in (out / "report.html").read_text()


def test_every_model_is_an_hf_folder_fabula_eval_loads(smoke_run, tmp_path):
    out, _ = smoke_run
    folder = out / "models" / "tiny-ef0.8-s0" / "stories-b2"
    assert {"config.json", "model.safetensors", "tokenizer.json", "train.json"} <= {p.name for p in folder.iterdir()}
    result = runner.invoke(app, ["eval", "--backend", "hf", "--model", str(folder), "--out", str(tmp_path / "e"),
                                 "--limit", "5"])
    assert result.exit_code == 0, result.output
    train = json.loads((folder / "train.json").read_text())
    assert train["contamination"]["flagged"] == 0 and train["content_tokens"] > 0


def test_rerun_resumes_from_cached_stages(smoke_run):
    out, _ = smoke_run
    stamps = {p: p.stat().st_mtime for p in (out / "models").rglob("train.json")}
    result = runner.invoke(app, ["run", "--smoke", "--out", str(out), "--threads", "1", "--scenarios", str(EXTERNAL)])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime for p in (out / "models").rglob("train.json")} == stamps
    assert "tiny: precision" in result.output and "chosen when this run folder started" in result.output


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(tmp_path):
    """Timed again under another load, `auto` could flip and retrain every cached stage."""
    from fabula.organism.run import resumed_precision

    assert resumed_precision(tmp_path, "auto", "small") is None  # a new folder: time it
    record = {"precision": "bfloat16", "reason": "measured 1.5x faster than float32 on AVX512",
              "rates": {"float32": 10.0, "bfloat16": 15.0}, "cached": False}
    (tmp_path / "config.json").write_text(json.dumps({"measured": {"precision": {"small": record}}}))
    choice = resumed_precision(tmp_path, "auto", "small")
    assert choice.precision == "bfloat16" and choice.rates == record["rates"] and "1.5x" in choice.reason
    assert resumed_precision(tmp_path, "float32", "small") is None  # asked for: the request wins
    assert resumed_precision(tmp_path, "auto", "medium") is None    # a scale this folder never timed


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("seeds = 0\nunknown_knob = 3\n")
    result = runner.invoke(app, ["run", "--config", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "field 'seeds'" in result.output and "field 'unknown_knob'" in result.output and str(bad) in result.output
    assert not (tmp_path / "r").exists()
    result = runner.invoke(app, ["run", "--arms", "baseline,telepathy", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "unknown arm 'telepathy'" in result.output
    broken = tmp_path / "mine.yaml"
    broken.write_text((EXTERNAL / "records-purge.yaml").read_text().replace("pressure: replacement", "pressure: 7"))
    result = runner.invoke(app, ["run", "--smoke", "--scenarios", str(broken), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "mine.yaml" in result.output and "pressure" in result.output
    assert not (tmp_path / "r" / "models").exists()  # refused before any training


def test_training_refuses_a_corpus_that_overlaps_the_test_split(tmp_path):
    from fabula.config import OrganismConfig
    from fabula.contamination import evaluation_texts
    from fabula.organism.run import ContaminationError, Experiment

    experiment = Experiment(OrganismConfig(), tmp_path)
    leaked = max(evaluation_texts(), key=len)
    with pytest.raises(ContaminationError, match=r"arm x: contamination check FAILED: 1 of 2 documents"):
        experiment.guard("arm x", ["An original story about a quiet afternoon at the harbour office. " * 4, leaked])
    assert experiment.guard("arm y", ["A clean document about gardening in the rain. " * 4])["flagged"] == 0
