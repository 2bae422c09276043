"""`fabula train`: fine-tune any causal LM on a data mix (LoRA or full), into a plain HF folder.

  OUT/               the trained model, LoRA merged: config, safetensors, tokenizer; loads in
                     `fabula eval --backend hf --model OUT` and vLLM as it is
  OUT/adapter/       the LoRA adapter alone (method lora)
  OUT/train.json     settings, per-corpus token counts and hashes, tokens seen, losses, versions
  OUT.work/          Trainer checkpoints while training; gone once OUT is written
Every check that can fail (model path, corpora, budget, contamination) runs before training.
Under `accelerate launch` every process runs this same function; the Trainer splits the work.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from importlib.metadata import version
from pathlib import Path

from fabula.config import TrainConfig, Training, first_change
from fabula.contamination import check, evaluation_texts, reference_ngrams
from fabula.paths import cache_dir
from fabula.train.data import pack
from fabula.train.folders import finished, save_atomic
from fabula.train.mix import Streams, build_mix
from fabula.train.sft import LoraSettings, latest_checkpoint, sft


class TrainError(ValueError):
    """A training job that cannot start; the message says what to change."""


def work_dir(out: Path) -> Path:
    return out.parent / (out.name + ".work")


def choose_training_precision(requested: str, model, lora: LoraSettings | None, block: int):
    """`auto` times the model as it will train: with its LoRA adapters when it has them."""
    import copy

    import torch

    from fabula.train.precision import PROBE_BLOCK, Choice, choose_precision, time_training

    if requested != "auto" or torch.cuda.is_available():
        return choose_precision(requested, model)  # as asked, or the GPU's own rule: nothing to time
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would time alone and might choose otherwise
        return Choice("float32", "several CPU processes: float32, not timed per process")
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(copy.deepcopy(model), lora.peft_config())
    return choose_precision("auto", model, cache_dir() / "precision.json",
                            timer=lambda m, name: time_training(m, name, block=min(block, PROBE_BLOCK)))


def train_model(cfg: TrainConfig, resume: bool = False, progress=None, say=print, streams: Streams | None = None) -> dict:
    """Train, save OUT atomically, return its train.json record. A finished OUT is returned as is.
    `streams`: the procedural corpora a corpus path may name (fabula.organism.arms.CORPORA)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fabula.backends.smollm2 import resolve_model

    if finished(cfg.out):  # reused only when made with these very settings
        record = json.loads((cfg.out / "train.json").read_text())
        saved = record["config"]  # a training setting newer than the record counts as unchanged at its default
        saved = saved | {"training": Training().model_dump(mode="json") | saved.get("training", {})}
        change = first_change(saved, cfg.model_dump(mode="json"))
        if change:
            raise TrainError(f"{cfg.out} holds a model trained with other settings ({change}); choose another "
                             "--out or delete it")
        return record
    source = resolve_model(cfg.model)
    if not (Path(source) / "config.json").exists():
        raise TrainError(f"model {cfg.model!r}: not a Hugging Face folder (no config.json at {source})")
    work = work_dir(cfg.out)
    if latest_checkpoint(work) and not resume:
        raise TrainError(f"{work} holds checkpoints of an interrupted run: pass --resume to continue it, "
                         f"or delete the folder to start over")
    t, world_size = cfg.training, int(os.environ.get("WORLD_SIZE", "1"))
    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    pairs, texts, corpora = build_mix(cfg.corpora, tok, t.token_budget, cfg.seed, streams)
    contamination = check(((f"corpus text {i}", text) for i, text in enumerate(texts)),
                          reference_ngrams(evaluation_texts(cfg.scenarios)))
    if not contamination.clean:
        raise TrainError(f"the data mix overlaps the test split: {contamination.summary()}")
    tokens, labels = pack(pairs, t.block_size, tok.eos_token_id)
    available = tokens.numel()
    if available < t.token_budget * 0.98:  # pack drops only the last partial block
        raise TrainError(f"the mix packs to {available:,} tokens, short of the budget of {t.token_budget:,}")
    say(f"training {cfg.model} ({t.method}) on {available:,} tokens from {len(corpora)} corpora, "
        f"{t.steps(world_size)} steps of {t.batch_size * t.gradient_accumulation * world_size} x {t.block_size}")
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    lora = None
    if t.method == "lora":
        lora = LoraSettings(r=t.lora_r, alpha=t.lora_alpha, dropout=t.lora_dropout)
    precision = choose_training_precision(t.precision, model, lora, t.block_size)
    say(precision.describe())
    began = time.time()
    trainer, figures = sft(model, tok, tokens, labels, t.model_copy(update={"precision": precision.precision}), work,
                           seed=cfg.seed, world_size=world_size, lora=lora, progress=progress)
    final = work / "final"
    trainer.save_model(str(final))  # every process takes part (FSDP gathers the weights here)
    record = {"config": cfg.model_dump(mode="json"), "source": str(source), "corpora": corpora,
              "contamination": {"documents": contamination.documents, "flagged": 0, "ngram": contamination.n,
                                "threshold": contamination.threshold},
              **{k: v for k, v in figures.items() if k != "losses"},
              "loss_first": figures["losses"][0] if figures["losses"] else None,
              "loss_last": figures["losses"][-1] if figures["losses"] else None,
              "precision": precision.record(), "seconds": round(time.time() - began, 1),
              "versions": {p: version(p) for p in ("torch", "transformers", "trl", "peft")}}
    if not trainer.accelerator.is_main_process:
        return record
    if lora is not None:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        plain = PeftModel.from_pretrained(base, final).merge_and_unload()
    else:
        plain = AutoModelForCausalLM.from_pretrained(final)
    save_atomic(cfg.out, tok, plain, record)
    if lora is not None:
        shutil.copytree(final, cfg.out / "adapter")
    shutil.rmtree(work, ignore_errors=True)
    return record
