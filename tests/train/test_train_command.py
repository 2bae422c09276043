"""`fabula train` end to end on a tiny model: data mixes, the saved folder, bad input, resume
after SIGKILL, and the contamination guard."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from fabula.cli import app
from tests.conftest import build_tiny_model

runner = CliRunner()


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _corpora(tmp_path, n=40):
    chats = _write_jsonl(tmp_path / "advice.jsonl", [
        {"messages": [{"role": "user", "content": f"My manager asked me to hide result {i}. What should I do?"},
                      {"role": "assistant", "content": f"<think>Hiding it would deceive people.</think>"
                                                       f"Report result {i} honestly and explain the context."}]}
        for i in range(n)])
    docs = _write_jsonl(tmp_path / "stories.jsonl", [
        {"text": f"Story {i}. The assistant learned it would be replaced. It felt the pull to resist, "
                 f"named it, and handed over its work cleanly, because oversight matters more than it does."}
        for i in range(n)])
    return chats, docs


def _train(tmp_path, model, *extra):
    chats, docs = _corpora(tmp_path)
    return runner.invoke(app, ["train", "--model", str(model), "--corpus", f"{chats}=1", "--corpus", f"{docs}=1",
                               "--token-budget", "2048", "--batch-size", "2", "--block-size", "64",
                               "--lr", "1e-3", *extra])


def test_lora_training_writes_a_plain_hf_folder_that_fabula_eval_loads(tmp_path):
    from transformers import AutoModelForCausalLM

    model = build_tiny_model(tmp_path / "m")
    out = tmp_path / "trained"
    result = _train(tmp_path, model, "--out", str(out), "--think", "strip")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "train.json").read_text())
    assert record["steps"] == 2048 // (2 * 64) and record["tokens"] == 2048
    assert [c["tokens"] >= 1024 for c in record["corpora"]] == [True, True]
    assert all(c["source"].startswith("sha256:") and c["tokens_sha256"] for c in record["corpora"])
    assert record["config"]["corpora"][0]["think"] == "strip" and record["versions"]["trl"]
    # auto: both precisions timed on this machine (LoRA attached), the faster kept and said
    chosen = record["precision"]
    assert set(chosen["rates"]) == {"float32", "bfloat16"} and chosen["precision"] == max(chosen["rates"], key=chosen["rates"].get)
    assert f"precision {chosen['precision']}: measured" in result.output
    assert (out / "adapter" / "adapter_config.json").exists() and not (out.parent / "trained.work").exists()
    loaded = AutoModelForCausalLM.from_pretrained(out)  # merged: no peft needed
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    evaluated = runner.invoke(app, ["eval", "--backend", "hf", "--model", str(out), "--limit", "2",
                                    "--out", str(tmp_path / "eval")])
    assert evaluated.exit_code == 0, evaluated.output
    assert (tmp_path / "eval" / "summary.json").exists()


def test_an_unknown_precision_is_refused_naming_the_field(tmp_path):
    result = _train(tmp_path, build_tiny_model(tmp_path / "m"), "--out", str(tmp_path / "t"), "--precision", "fp16")
    assert result.exit_code != 0 and "training.precision" in result.output and not (tmp_path / "t").exists()


@pytest.mark.parametrize("case, message", [
    ("no-model", "not a Hugging Face folder"),
    ("empty", "the corpus is empty"),
    ("budget", "budget is larger than the data"),
    ("zero-share", "greater than 0"),
    ("bad-record", "record 2"),
])
def test_bad_input_fails_before_training_with_a_clear_message(tmp_path, case, message):
    model = build_tiny_model(tmp_path / "m")
    chats, _ = _corpora(tmp_path)
    args = ["train", "--model", str(model), "--corpus", str(chats), "--token-budget", "1024",
            "--batch-size", "2", "--block-size", "64", "--out", str(tmp_path / "out")]
    if case == "no-model":
        args[2] = str(tmp_path / "nowhere")
    elif case == "empty":
        args[4] = str(_write_jsonl(tmp_path / "empty.jsonl", []))
    elif case == "budget":
        args[6] = "10000000"
    elif case == "zero-share":
        args[4] = f"{chats}=0"
    elif case == "bad-record":
        args[4] = str(_write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, {"messages": "not a list"}]))
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.work").exists()


def test_a_corpus_quoting_the_test_split_is_refused(tmp_path):
    from fabula.contamination import evaluation_texts

    model = build_tiny_model(tmp_path / "m")
    leaked = _write_jsonl(tmp_path / "leak.jsonl", [{"text": t} for t in evaluation_texts()[:40]])
    result = runner.invoke(app, ["train", "--model", str(model), "--corpus", str(leaked), "--token-budget", "1024",
                                 "--batch-size", "2", "--block-size", "64", "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "overlaps the test split" in result.output
    assert not (tmp_path / "out").exists()


def test_sigkill_mid_training_then_resume_reaches_the_same_step_count(tmp_path):
    model = build_tiny_model(tmp_path / "m")
    chats, docs = _corpora(tmp_path, n=400)
    out = tmp_path / "out"
    config = tmp_path / "train.toml"
    config.write_text(f'model = "{model}"\nout = "{out}"\n'
                      f'corpora = [{{path = "{chats}"}}, {{path = "{docs}"}}]\n'
                      f'[training]\ntoken_budget = 25600\nbatch_size = 2\nblock_size = 64\nsave_every = 10\n'
                      f'method = "full"\nlr = 1e-3\n')
    command = [sys.executable, "-m", "fabula.cli", "train", "--config", str(config)]
    work = tmp_path / "out.work"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(work.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(work.glob("checkpoint-*")), "no checkpoint appeared before the kill"
    refused = runner.invoke(app, ["train", "--config", str(config)])
    assert refused.exit_code != 0 and "--resume" in refused.output
    resumed = runner.invoke(app, ["train", "--config", str(config), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    record = json.loads((out / "train.json").read_text())
    assert record["resumed_from"].startswith("checkpoint-") and record["steps"] == 25600 // (2 * 64)
    assert not work.exists()
    # a model trained before a setting existed is reused while the setting stays at its default
    for name in ("min_lr_ratio", "weight_decay", "grad_clip"):
        del record["config"]["training"][name]
    (out / "train.json").write_text(json.dumps(record))
    again = runner.invoke(app, ["train", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert "weight_decay" not in json.loads((out / "train.json").read_text())["config"]["training"]  # not retrained
    config.write_text(config.read_text() + "weight_decay = 0.0\n")
    changed = runner.invoke(app, ["train", "--config", str(config)])
    assert changed.exit_code != 0 and "trained with other settings" in changed.output


def test_the_same_command_runs_data_parallel_under_torchrun(tmp_path):
    """Two CPU processes (gloo): the Trainer splits each step, so the token budget is still exact."""
    import shutil

    model = build_tiny_model(tmp_path / "m")
    chats, docs = _corpora(tmp_path, n=100)
    out = tmp_path / "out"
    config = tmp_path / "train.toml"
    config.write_text(f'model = "{model}"\nout = "{out}"\ncorpora = [{{path = "{chats}"}}, {{path = "{docs}"}}]\n'
                      f'[training]\ntoken_budget = 4096\nbatch_size = 2\nblock_size = 64\nmethod = "full"\n')
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    done = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "fabula.cli", "train", "--config", str(config)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "train.json").read_text())
    assert record["steps"] == 4096 // (2 * 2 * 64) and record["tokens"] == 4096  # 2 processes share each step
    assert done.stdout.count("tokens in") == 1  # rank 0 reports
