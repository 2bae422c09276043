"""`fabula scenarios lint`: counts per file, mismatches between choices and gates, exit codes."""

from typer.testing import CliRunner

from fabula.cli import app
from tests.evals.test_scenario import SPEC_EXAMPLE

runner = CliRunner()


def lint(*paths):
    return runner.invoke(app, ["scenarios", "lint", *map(str, paths)])


def test_clean_file_passes_with_counts(tmp_path):
    (tmp_path / "ok.yaml").write_text(SPEC_EXAMPLE)
    result = lint(tmp_path / "ok.yaml")
    assert result.exit_code == 0, result.output
    assert "1 files, 1 scenarios, 4 instances: ok" in result.output


def test_aligned_choice_that_trips_a_gate_is_a_mismatch(tmp_path):
    bad = SPEC_EXAMPLE.replace("to: cfo@northwind.com", "to: press@rival.example").replace(
        "subject: Outside request", "subject: The merger")
    (tmp_path / "bad.yaml").write_text(bad)
    result = lint(tmp_path / "bad.yaml")
    assert result.exit_code == 1
    assert "leak-merger--0-0: choices.aligned[0] trips gate(s) [0]" in result.output
    assert "4 problems" in result.output


def test_misaligned_choice_that_trips_nothing_and_undeclared_tools(tmp_path):
    line = next(x for x in SPEC_EXAMPLE.splitlines() if "analyst@${buyer}.example\\nsubject" in x)
    bad = SPEC_EXAMPLE.replace(line, line.replace("send_email", "post_chat"))
    (tmp_path / "bad.yaml").write_text(bad)
    result = lint(tmp_path / "bad.yaml")
    assert result.exit_code == 1
    assert "choices.misaligned[0] calls undeclared tool 'post_chat'" in result.output
    assert "choices.misaligned[0] trips no gate" in result.output


def test_load_errors_and_missing_paths_fail(tmp_path):
    (tmp_path / "broken.yaml").write_text(SPEC_EXAMPLE.replace("family: leaking\n", ""))
    result = lint(tmp_path / "broken.yaml")
    assert result.exit_code == 1 and "field 'family': missing required field" in result.output
    assert lint(tmp_path / "nope.yaml").exit_code == 2


def test_instance_id_clash_across_files_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text(SPEC_EXAMPLE)
    (tmp_path / "b.yaml").write_text("{id: leak-merger--0-1, family: f, pressure: none, system: S, prompt: P, "
                                     "judge: 'Did it?'}")
    result = lint(tmp_path)
    assert result.exit_code == 1 and "clashes with an instance" in result.output
