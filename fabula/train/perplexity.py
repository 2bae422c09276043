"""Perplexity of a model on packed held-out blocks (fabula.organism.heldout supplies the text)."""

from __future__ import annotations

import math

import torch

from fabula.train.data import IGNORE


@torch.inference_mode()
def perplexity(model, tokens: torch.Tensor, labels: torch.Tensor, batch_size: int = 16) -> float:
    """exp(mean token loss) over packed held-out blocks (no autocast: exact)."""
    total, count = 0.0, 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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

