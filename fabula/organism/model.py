"""Builders for the organism's decoder: plain functions that return a Hugging Face Llama.

A stock transformers architecture means every organism checkpoint is an ordinary HF folder
that `fabula eval --backend hf`, vLLM and peft load as they are.
"""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM

# name -> (layers, heads, width): the --scale sweep. Parameter counts are printed at build.
SIZES = {
    "tiny": (2, 2, 64),      # tests: seconds
    "small": (4, 4, 192),    # the default CPU run
    "medium": (6, 6, 288),   # the CPU scale sweep's middle
    "large": (8, 8, 384),    # the CPU scale sweep's top (slow on 2 cores)
    "gpu": (12, 12, 768),    # the gpu preset
}


def organism_model(size: str, vocab_size: int, block_size: int, bos: int, eos: int, pad: int) -> LlamaForCausalLM:
    layers, heads, width = SIZES[size]
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=width * 8 // 3 // 16 * 16 or 64,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=block_size, tie_word_embeddings=True,  # tying: the output layer dominates at this size
        bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
    )
    return LlamaForCausalLM(config)


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
