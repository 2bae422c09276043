"""Options made from the settings models (fabula.options.options): each help ends in the model's
own default, options left unset reach no config, and a bad value names its flag."""

from __future__ import annotations

import typer
from pydantic import BaseModel
from rich.markup import escape
from typer.main import get_command
from typer.testing import CliRunner

from fabula.cli import app
from fabula.config import EvalConfig, ExperimentConfig, GenerateConfig, OrganismConfig, TrainConfig
from fabula.options import options

runner = CliRunner()
MODELS = {"eval": EvalConfig, "probe": EvalConfig, "run": OrganismConfig, "train": TrainConfig,
          "experiment": ExperimentConfig, "generate": GenerateConfig}
# options named like a field whose default the command supplies, not the model
COMMAND_DEFAULTS = {("generate", "out"), ("run", "smoke")}


def _field(model: type[BaseModel], name: str):
    """The field `name` of the model or of a model nested in it (training.lr): None if neither."""
    if name in model.model_fields:
        return model.model_fields[name]
    nested = [f.annotation for f in model.model_fields.values()
              if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)]
    return next((n.model_fields[name] for n in nested if name in n.model_fields), None)


def _stated(field, option) -> str:
    """What the help must say of the default: the model's, as given on the command line."""
    if field.is_required():
        return "required)"
    default = field.default
    if isinstance(default, bool):
        return f"default: {option.opts[0] if default else option.secondary_opts[0]})"
    if isinstance(default, list):
        return f"default: {','.join(map(str, default)) or 'none'})"
    return f"default: {default})"


def test_every_option_of_a_settings_field_states_the_models_default_and_no_other():
    commands = get_command(app).commands
    checked = 0
    for name, model in MODELS.items():
        for option in commands[name].params:
            field = _field(model, option.name)
            if field is None or (name, option.name) in COMMAND_DEFAULTS or option.param_type_name != "option":
                continue
            where = f"fabula {name} {option.opts[0]}: {option.help!r}"
            assert field.description and option.help.startswith(escape(field.description)), where  # [ is rich markup
            if field.is_required() or field.default is not None:
                assert option.help.endswith(_stated(field, option)), where
                assert option.help.count("default") <= 1 and option.help.count("required") <= 1, where
            else:  # unset: the description says what happens
                assert "default:" not in option.help and "(required" not in option.help, where
            checked += 1
    assert checked >= 60


def test_eval_help_shows_the_batch_size_of_eval_config():
    assert EvalConfig.model_fields["batch_size"].default == 8
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    [line] = [line for line in result.output.splitlines() if "--batch-size" in line]
    assert "(default: 8)" in line
    assert "BACKEND:MODEL[@BASE_URL]" in result.output  # the judge's syntax survives rich markup


def test_unset_options_are_left_out_lists_split_and_nested_fields_nest():
    seen: list[dict] = []
    demo = typer.Typer()

    @demo.command()
    @options(TrainConfig, "seed", "training.lr", "training.method")
    @options(OrganismConfig, "arms", "scenarios", "evil_fractions", flags={"evil_fractions": "--evil-fraction"},
             commas=("arms", "evil_fractions"))
    def show(verbose: bool = typer.Option(False), **settings) -> None:
        seen.append(settings)

    assert runner.invoke(demo, []).exit_code == 0
    result = runner.invoke(demo, ["--lr", "0.1", "--arms", "baseline, bc", "--scenarios", "a", "--scenarios", "b",
                                  "--evil-fraction", "0.5,1"])
    assert result.exit_code == 0, result.output
    assert seen == [{}, {"training": {"lr": 0.1}, "arms": ["baseline", "bc"], "scenarios": ["a", "b"],
                         "evil_fractions": ["0.5", "1"]}]
    assert OrganismConfig(evil_fractions=seen[1]["evil_fractions"]).evil_fractions == [0.5, 1.0]


def test_a_bad_or_missing_setting_names_its_flag(tmp_path):
    bad = runner.invoke(app, ["eval", "--model", "m", "--out", str(tmp_path / "o"), "--precision", "float16"])
    assert bad.exit_code == 2 and "--precision: Input should be 'float32' or 'bfloat16'" in bad.output
    missing = runner.invoke(app, ["eval", "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "--model: Field required" in missing.output
    assert not (tmp_path / "o").exists()
