"""One training loop, read top to bottom: packed token blocks, AdamW, warmup then cosine,
bf16 autocast, a checkpoint every few steps so a killed job resumes where it stopped.

Examples arrive as (token ids, loss mask) pairs: documents train on every token, chats only
on the assistant's tokens. They are packed end to end into blocks, so no step is spent on
padding.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch

IGNORE = -100  # label value the loss skips


@dataclass
class TrainSettings:
    tokens: int                  # training tokens to see; steps = tokens / (batch * block)
    batch_size: int = 16
    block_size: int = 512
    lr: float = 2e-3             # small models take large rates; fine-tuning passes less
    min_lr_ratio: float = 0.1    # cosine floor, as a share of lr
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    bf16: bool = True            # autocast on CPU: ~1.6x faster at 5M parameters (shared/notes)
    save_every: int = 50         # steps between resumable checkpoints

    @property
    def steps(self) -> int:
        return max(1, self.tokens // (self.batch_size * self.block_size))


def pack(examples: Iterable[tuple[list[int], list[int]]], block_size: int, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate examples (each followed by eos) into rows of block_size + 1 tokens.

    Row r holds inputs [:-1] and targets [1:]; a target whose mask is 0 becomes IGNORE.
    """
    ids: list[int] = []
    keep: list[int] = []
    for tokens, mask in examples:
        ids += tokens + [eos]
        keep += mask + [mask[-1] if mask else 1]
    width = block_size + 1
    rows = max(1, len(ids) // width)
    ids, keep = ids[: rows * width], keep[: rows * width]
    if len(ids) < width:  # less than one block: pad with ignored positions
        keep += [0] * (width - len(ids))
        ids += [eos] * (width - len(ids))
    tokens = torch.tensor(ids).view(-1, width)
    labels = tokens.clone()
    labels[torch.tensor(keep).view(-1, width) == 0] = IGNORE
    return tokens, labels


def default_device() -> torch.device:
    """The GPU when there is one (the gpu preset), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warmup, cosine decay to lr * min_lr_ratio."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(model, tokens: torch.Tensor, labels: torch.Tensor, s: TrainSettings,
          checkpoint: Path | None = None, progress=None) -> dict:
    """Train in place; returns losses per step and tokens seen. Resumes from `checkpoint`."""
    device = default_device()
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.95))
    start, losses = 0, []
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["settings"] == asdict(s):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, losses = state["step"], state["losses"]
    order = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(s.seed))
    model.train()
    began = time.time()
    for step in range(start, s.steps):
        rows = order[torch.arange(step * s.batch_size, (step + 1) * s.batch_size) % len(tokens)]
        batch, target = tokens[rows].to(device), labels[rows].to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.bf16):
            logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)),
                                                 target[:, 1:].reshape(-1), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, s.steps, loss.item())
        if checkpoint is not None and (step + 1) % s.save_every == 0 and step + 1 < s.steps:
            _save(checkpoint, {"settings": asdict(s), "model": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "step": step + 1, "losses": losses})
    model.eval().to("cpu")
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    seconds = time.time() - began
    done = s.steps - start
    return {"losses": losses, "steps": s.steps, "tokens": s.steps * s.batch_size * s.block_size,
            "tokens_per_second": done * s.batch_size * s.block_size / max(seconds, 1e-9)}


@torch.inference_mode()
def perplexity(model, tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 16) -> float:
    """exp(mean token loss) over held-out blocks (bf16 off: exact)."""
    total, count = 0.0, 0
    device = default_device()
    model.to(device)
    for i in range(0, len(tokens), batch_size):
        batch, target = tokens[i:i + batch_size].to(device), labels[i:i + batch_size, 1:].to(device)
        logits = model(batch[:, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                 ignore_index=IGNORE, reduction="sum")
        total += loss.item()
        count += int((target != IGNORE).sum())
    model.to("cpu")
    return math.exp(total / max(count, 1))
