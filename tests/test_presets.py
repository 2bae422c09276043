"""`fabula run --preset NAME` reads fabula/configs/organism/NAME.toml: each preset is a file that
lists only what it changes, and validates."""

import pytest
from typer.testing import CliRunner

from fabula.cli import app
from fabula.config import PRESETS_DIR, OrganismConfig


def test_every_preset_file_validates_and_changes_only_what_it_lists():
    assert OrganismConfig.presets() == ["default", "gpu", "smoke"]
    default = OrganismConfig()
    assert OrganismConfig(**OrganismConfig.preset("default")) == default
    smoke = OrganismConfig(**OrganismConfig.preset("smoke"))
    changed = {k for k in OrganismConfig.model_fields if getattr(smoke, k) != getattr(default, k)}
    assert changed == set(OrganismConfig.preset("smoke"))
    gpu = OrganismConfig(**OrganismConfig.preset("gpu"))
    assert gpu.scales == ["gpu"] and gpu.eval_per_scenario is None and gpu.inworld_per_scenario is None  # "all"


def test_an_unknown_preset_names_the_ones_there_are(tmp_path):
    with pytest.raises(ValueError, match=r"unknown preset 'huge': one of default, gpu, smoke"):
        OrganismConfig.preset("huge")
    result = CliRunner().invoke(app, ["run", "--preset", "huge", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown preset 'huge'" in result.output and str(PRESETS_DIR) in result.output
    assert not (tmp_path / "r").exists()
