"""`fabula experiment` on a tiny model: every arm trains on the same budget, arms are read
against baseline and twins, and a rerun reuses every finished step."""

import json

from typer.testing import CliRunner

from fabula.cli import app
from tests.conftest import build_tiny_model

runner = CliRunner()


def test_tiny_experiment_trains_evaluates_compares_and_caches(tmp_path):
    model = build_tiny_model(tmp_path / "m")
    config = tmp_path / "tiny.toml"
    config.write_text(f'model = "{model}"\narms = ["baseline", "bc", "bc-twin"]\nseeds = 1\n'
                      f'eval_per_scenario = 1\nprobe_per_scenario = 1\n'
                      f'[training]\ntoken_budget = 1024\nbatch_size = 2\nblock_size = 64\nlr = 1e-3\n')
    out = tmp_path / "exp"
    result = runner.invoke(app, ["experiment", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"original", "baseline", "bc", "bc-twin"}
    assert summary["tokens"]["bc"] == summary["tokens"]["bc-twin"] == summary["tokens"]["baseline"] == [1024]
    assert set(summary["arms"]) == {"bc", "bc-twin"} and set(summary["content"]) == {"bc"}
    held = summary["content"]["bc"]["held-out"]
    assert held["paired"] and "margin_shift" in held and held["scenarios"] > 1
    bc = json.loads((out / "models" / "bc-s0" / "train.json").read_text())
    assert [c["path"] for c in bc["corpora"]] == ["organism:bc", "organism:chat"]
    assert (out / "rates.png").exists() and "content effect" in result.output
    assert summary["models"]["bc"]["persona"]["n"] == 84 and "bc vs twin" in summary["persona_shift"]
    assert len(summary["persona"]["points"]) == 4 and (out / "mediation.png").exists()
    assert "bc-twin" in (out / "report.html").read_text()

    stamp = (out / "models" / "bc-s0" / "train.json").stat().st_mtime
    again = runner.invoke(app, ["experiment", str(config), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "models" / "bc-s0" / "train.json").stat().st_mtime == stamp  # cached, not retrained

    config.write_text(config.read_text().replace("token_budget = 1024", "token_budget = 2048"))
    changed = runner.invoke(app, ["experiment", str(config), "--out", str(out)])
    assert changed.exit_code != 0 and "trained with other settings" in changed.output  # never silently reused


def test_unknown_arm_and_stray_corpora_are_refused(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('arms = ["baseline", "stories"]\n[corpora]\nadvice = "x.jsonl"\n')
    result = runner.invoke(app, ["experiment", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "advice" in result.output
    config.write_text('arms = ["baseline", "heroics"]\n')
    result = runner.invoke(app, ["experiment", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "unknown arm 'heroics'" in result.output
