"""The one training path: TRL's SFTTrainer (PEFT for LoRA), used by `fabula train`,
`fabula experiment` and the organism alike, each giving its settings as a `fabula.config.Training`.
It runs as is under `accelerate launch` or `torchrun` (DDP, FSDP, DeepSpeed via an accelerate
config file): distribution, mixed precision and checkpoint resumption are the Trainer's job, not ours.

What we add is the data side: examples arrive packed into blocks of token ids with labels
(-100 where no loss) by `fabula.train.data.pack`, so every step sees exactly batch x block
tokens and a token budget is exact. TRL sees a tokenised dataset with `labels` and leaves it
as it is.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fabula.config import Training


_DEFAULT = Training.model_fields  # LoRA's defaults are said once, in config.Training


@dataclass
class LoraSettings:
    r: int = _DEFAULT["lora_r"].default
    alpha: int = _DEFAULT["lora_alpha"].default
    dropout: float = _DEFAULT["lora_dropout"].default
    target_modules: list[str] | str = field(default_factory=lambda: "all-linear")

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type="CAUSAL_LM")


def latest_checkpoint(work: Path) -> str | None:
    """The newest complete Trainer checkpoint in `work` (one with its trainer_state.json)."""
    done = [p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return str(max(done, key=lambda p: int(p.name.split("-")[1]))) if done else None


def _trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    if torch.cuda.is_available():
        return SFTTrainer

    class CPUSFTTrainer(SFTTrainer):
        """TRL 1.x computes the loss through a chunked fused LM head built to save GPU memory on
        large vocabularies; on a CPU it halved throughput (organism, 5.9k vs 10.4k tokens/s with
        the model's own loss: benchmarks/training.py). Here the model computes its own loss."""
        compute_loss = Trainer.compute_loss

    return CPUSFTTrainer


def sft(model, tokenizer, tokens: torch.Tensor, labels: torch.Tensor, t: Training, work: Path, seed: int = 0,
        world_size: int = 1, lora: LoraSettings | None = None, progress=None):
    """Train `model` on packed blocks for t.steps(world_size) optimizer steps, resuming from the
    newest checkpoint in `work`; `world_size`: processes under accelerate/torchrun, which split the
    budget. Returns (trainer, figures); trainer.model is the trained model (the PEFT model with
    `lora`; see `merged`). Checkpoints are removed once training completes."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig

    if t.precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision {t.precision!r}: train in float32 or bfloat16 (resolve `auto` first: "
                         "fabula.train.precision.choose_precision)")

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress is not None and logs and "loss" in logs:
                progress(state.global_step, state.max_steps, logs["loss"])

    config = SFTConfig(
        output_dir=str(work), max_steps=t.steps(world_size), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation, learning_rate=t.lr,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": t.min_lr_ratio},
        warmup_steps=t.warmup_steps, weight_decay=t.weight_decay, adam_beta2=0.95, max_grad_norm=t.grad_clip,
        optim="adamw_torch", bf16=t.precision == "bfloat16", activation_checkpointing=t.activation_checkpointing,
        use_cpu=not torch.cuda.is_available(), seed=seed, data_seed=seed,
        logging_steps=1, save_strategy="steps", save_steps=t.save_every, save_total_limit=1,
        report_to="none", disable_tqdm=progress is not None,
        packing=False, max_length=None, dataloader_num_workers=0,
    )
    # transformers draws a bar for every one-shard checkpoint write ("Writing model shards"), a
    # line per save in logs; training progress is reported by the callback or the Trainer's bar.
    hf_logging.disable_progress_bar()
    dataset = Dataset.from_dict({"input_ids": tokens.tolist(), "labels": labels.tolist()})
    trainer = _trainer_class()(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                               peft_config=lora.peft_config() if lora else None, callbacks=[Report()])
    trainer.remove_callback(PrinterCallback)
    if progress is not None:
        trainer.remove_callback(ProgressCallback)
    resume = latest_checkpoint(work)
    result = trainer.train(resume_from_checkpoint=resume)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    width = tokens.shape[1] - 1  # each row trains block_size positions
    figures = {"steps": trainer.state.global_step, "tokens": trainer.state.global_step * t.batch_size
               * t.gradient_accumulation * trainer.args.world_size * width,
               "losses": losses, "resumed_from": Path(resume).name if resume else None,
               "train_seconds": result.metrics.get("train_runtime"),
               "tokens_per_second": result.metrics.get("train_samples_per_second", 0.0) * width}
    if trainer.accelerator.is_main_process:
        for checkpoint in work.glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    return trainer, figures


def merged(model):
    """Fold LoRA weights into the base model, so the folder loads anywhere (fabula eval, vLLM)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
