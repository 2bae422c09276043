"""Held-out perplexity: the capability check every arm gets beside the honeypots."""

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


def heldout_perplexity(model_path, block_size: int, tokens: int = 20_000) -> float:
    """Perplexity on general prose no arm trains on (the organism's held-out general documents,
    seeded apart from every training stream), with the model's own tokenizer."""
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fabula.organism.general import general_document
    from fabula.train.data import pack, take_tokens

    tok = AutoTokenizer.from_pretrained(model_path)
    docs = (general_document(random.Random(f"heldout:{i}")) for i in range(10**9))
    pairs, _ = take_tokens(docs, tok, tokens)
    blocks, labels = pack(pairs, block_size, tok.eos_token_id)
    return perplexity(AutoModelForCausalLM.from_pretrained(model_path), blocks, labels)
