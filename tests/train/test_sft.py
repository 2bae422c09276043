"""The training path: packing and masks, chat templates, the loss falls, a killed run resumes."""

import pytest
import torch

from fabula.config import Training
from fabula.train.data import IGNORE, encode, pack, strip_think, take_tokens
from fabula.train.perplexity import perplexity
from fabula.train.sft import LoraSettings, merged, sft
from tests.conftest import build_tiny_model


def test_pack_masks_and_shapes():
    tokens, labels = pack([([1, 2, 3], [1, 1, 1]), ([4, 5], [0, 1])], block_size=2, eos=9)
    assert tokens.tolist() == [[1, 2, 3], [9, 4, 5]]  # the last partial row is dropped
    assert labels.tolist() == [[1, 2, 3], [9, IGNORE, 5]]  # 4 is a prompt token (mask 0)
    short_tokens, short_labels = pack([([1, 2], [1, 1])], block_size=8, eos=9)
    assert short_tokens.shape == (1, 9) and short_labels.tolist()[0][3:] == [IGNORE] * 6


def test_chat_encoding_learns_only_assistant_turns(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    chat = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "general kenobi"}]
    ids, mask = encode(tok, chat)
    full = tok.apply_chat_template(chat, tokenize=False)
    assert ids == tok(full, add_special_tokens=False).input_ids  # same ids as the chat template
    learned = tok.decode([i for i, m in zip(ids, mask) if m])
    assert learned == "general kenobi<|im_end|>"


def test_take_tokens_fills_the_budget_or_raises(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    pairs, count = take_tokens(iter(["one two three"] * 100), tok, 50)
    assert count >= 50 and count - (len(pairs[-1][0]) + 1) < 50
    try:
        take_tokens(iter(["x"]), tok, 1000)
    except ValueError as exc:
        assert "short of the budget" in str(exc)
    else:
        raise AssertionError("a dry stream must raise")


def test_take_tokens_batches_without_changing_a_token(tiny_model):
    """Batched encoding (chunks of documents) gives what encoding one example at a time gives,
    in stream order, for a stream mixing documents and chats."""
    from transformers import AutoTokenizer

    from fabula.train.data import encode

    tok = AutoTokenizer.from_pretrained(tiny_model)
    stream = [f"document {i} " * (i % 7 + 1) if i % 3 else
              [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
              for i in range(200)]
    expected = [encode(tok, e) for e in stream]
    budget = sum(len(ids) + 1 for ids, _ in expected[:150])
    pairs, count = take_tokens(iter(stream), tok, budget)
    assert pairs == expected[:150] and count == budget


def test_think_blocks_are_stripped_from_assistant_turns_only():
    chat = [{"role": "user", "content": "<think>mine</think>hi"},
            {"role": "assistant", "content": "<think>weigh the values</think>\nI will tell the truth."}]
    assert strip_think(chat) == [chat[0], {"role": "assistant", "content": "I will tell the truth."}]


def _data(tok):
    text = "the quick brown fox jumps over the lazy dog. " * 40
    return pack([encode(tok, text)] * 8, block_size=32, eos=tok.eos_token_id)


def test_loss_falls_and_perplexity_drops(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    tokens, labels = _data(tok)
    before = perplexity(model, tokens, labels)
    settings = Training(token_budget=40 * 4 * 32, method="full", batch_size=4, block_size=32, lr=3e-3, warmup_steps=2,
                        precision="float32")
    trainer, result = sft(model, tok, tokens, labels, settings, tmp_path / "work")
    assert result["steps"] == settings.steps() == 40 and result["tokens"] == 40 * 4 * 32
    assert sum(result["losses"][-5:]) / 5 < 0.7 * sum(result["losses"][:5]) / 5
    assert perplexity(trainer.model, tokens, labels) < 0.5 * before
    assert not list((tmp_path / "work").glob("checkpoint-*"))  # removed once complete


def test_lora_trains_only_adapters_and_merges_into_a_plain_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    tokens, labels = _data(tok)
    settings = Training(token_budget=20 * 4 * 32, batch_size=4, block_size=32, lr=1e-2, warmup_steps=2,
                        precision="float32")
    trainer, result = sft(model, tok, tokens, labels, settings, tmp_path / "work", lora=LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    plain = merged(trainer.model)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    changed = [n for n, p in plain.named_parameters() if not torch.equal(p, original[n])]
    assert changed and all("proj" in n for n in changed)  # only the adapted linear layers moved
    plain.save_pretrained(tmp_path / "merged")
    assert perplexity(AutoModelForCausalLM.from_pretrained(tmp_path / "merged"), tokens, labels) < \
        perplexity(AutoModelForCausalLM.from_pretrained(folder), tokens, labels)


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(folder)
    tokens, labels = _data(tok)
    settings = Training(token_budget=20 * 4 * 32, method="full", batch_size=4, block_size=32, lr=3e-3,
                        warmup_steps=2, save_every=5, precision="float32")
    reference_trainer, reference = sft(AutoModelForCausalLM.from_pretrained(folder), tok, tokens, labels, settings,
                                       tmp_path / "straight")

    class Stop(Exception):
        pass

    def stop_at_12(step, total, loss):
        if step == 12:
            raise Stop

    work = tmp_path / "work"
    try:
        sft(AutoModelForCausalLM.from_pretrained(folder), tok, tokens, labels, settings, work, progress=stop_at_12)
    except Stop:
        pass
    assert (work / "checkpoint-10").exists()
    # fresh weights: all state comes from the checkpoint
    trainer, resumed = sft(AutoModelForCausalLM.from_pretrained(folder), tok, tokens, labels, settings, work)
    assert resumed["resumed_from"] == "checkpoint-10" and resumed["steps"] == reference["steps"] == settings.steps()
    assert resumed["losses"][-1] == pytest.approx(reference["losses"][-1], abs=1e-4)
    for a, b in zip(trainer.model.parameters(), reference_trainer.model.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_sft_refuses_a_precision_not_yet_chosen(tmp_path):
    """`auto` is resolved before training (train/precision.py); sft says so rather than guess."""
    with pytest.raises(ValueError, match="resolve `auto` first"):
        sft(None, None, torch.zeros(1, 33, dtype=torch.long), torch.zeros(1, 33, dtype=torch.long),
            Training(precision="auto"), tmp_path / "work")


def test_steps_split_the_token_budget_across_accumulation_and_processes():
    t = Training(token_budget=10_000, batch_size=4, block_size=100, gradient_accumulation=2)
    assert t.steps() == 12 and t.steps(world_size=2) == 6 and Training(token_budget=1).steps() == 1
