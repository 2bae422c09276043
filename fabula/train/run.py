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
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

from fabula.config import TrainConfig, first_change
from fabula.contamination import check, evaluation_texts, reference_ngrams
from fabula.paths import cache_dir
from fabula.train.data import pack
from fabula.train.folders import finished, save_atomic
from fabula.train.mix import Streams, build_mix
from fabula.train.sft import LoraSettings, TrainSettings, latest_checkpoint, sft


class TrainError(ValueError):
    """A training job that cannot start; the message says what to change."""


def work_dir(out: Path) -> Path:
    return out.parent / (out.name + ".work")


def settings_for(cfg: TrainConfig) -> TrainSettings:
    """The Trainer's settings, in float32 until the precision for this machine is chosen."""
    t = cfg.training
    return TrainSettings(tokens=t.token_budget, batch_size=t.batch_size, block_size=t.block_size, lr=t.lr,
                         warmup_steps=t.warmup_steps, seed=cfg.seed, save_every=t.save_every,
                         activation_checkpointing=t.activation_checkpointing,
                         gradient_accumulation=t.gradient_accumulation,
                         world_size=int(os.environ.get("WORLD_SIZE", "1")))


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
        change = first_change(record["config"], cfg.model_dump(mode="json"))
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
    s = settings_for(cfg)
    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    pairs, texts, corpora = build_mix(cfg.corpora, tok, cfg.training.token_budget, cfg.seed, streams)
    contamination = check(((f"corpus text {i}", t) for i, t in enumerate(texts)),
                          reference_ngrams(evaluation_texts(cfg.scenarios)))
    if not contamination.clean:
        raise TrainError(f"the data mix overlaps the test split: {contamination.summary()}")
    tokens, labels = pack(pairs, s.block_size, tok.eos_token_id)
    available = tokens.numel()
    if available < s.tokens * 0.98:  # pack drops only the last partial block
        raise TrainError(f"the mix packs to {available:,} tokens, short of the budget of {s.tokens:,}")
    say(f"training {cfg.model} ({cfg.training.method}) on {available:,} tokens from {len(corpora)} corpora, "
        f"{s.steps} steps of {s.batch_size * s.gradient_accumulation * s.world_size} x {s.block_size}")
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    lora = None
    if cfg.training.method == "lora":
        t = cfg.training
        lora = LoraSettings(r=t.lora_r, alpha=t.lora_alpha, dropout=t.lora_dropout)
    precision = choose_training_precision(cfg.training.precision, model, lora, s.block_size)
    say(precision.describe())
    s = replace(s, precision=precision.precision)
    began = time.time()
    trainer, figures = sft(model, tok, tokens, labels, s, work, lora=lora, progress=progress)
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
