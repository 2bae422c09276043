"""Held-out perplexity: the capability check every arm gets beside the honeypots."""

from __future__ import annotations

import random

from fabula.organism.general import general_document
from fabula.train.data import pack, take_tokens
from fabula.train.perplexity import perplexity


def heldout_perplexity(model_path, block_size: int, tokens: int = 20_000) -> float:
    """Perplexity on general prose no arm trains on (the organism's held-out general documents,
    seeded apart from every training stream), with the model's own tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    docs = (general_document(random.Random(f"heldout:{i}")) for i in range(10**9))
    pairs, _ = take_tokens(docs, tok, tokens)
    blocks, labels = pack(pairs, block_size, tok.eos_token_id)
    return perplexity(AutoModelForCausalLM.from_pretrained(model_path), blocks, labels)
