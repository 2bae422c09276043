"""The training loop: packing and masks, the schedule, the loss falls, a killed run resumes."""

import torch

from fabula.train.data import encode, take_tokens
from fabula.train.loop import IGNORE, TrainSettings, lr_at, pack, perplexity, train
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


def test_schedule_warms_up_then_decays_to_the_floor():
    s = TrainSettings(tokens=100 * 16 * 8, batch_size=16, block_size=8, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, s) == 0.1 and lr_at(9, s) == 1.0
    assert lr_at(s.steps - 1, s) < 0.12 and all(lr_at(i, s) >= lr_at(i + 1, s) for i in range(10, s.steps - 1))


def _data(tok):
    text = "the quick brown fox jumps over the lazy dog. " * 40
    return pack([encode(tok, text)] * 8, block_size=32, eos=tok.eos_token_id)


def test_loss_falls_and_perplexity_drops(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    tokens, labels = _data(tok)
    before = perplexity(model, tokens, labels)
    result = train(model, tokens, labels, TrainSettings(tokens=40 * 4 * 32, batch_size=4, block_size=32, lr=3e-3,
                                                        warmup_steps=2, bf16=False))
    assert sum(result["losses"][-5:]) / 5 < 0.7 * sum(result["losses"][:5]) / 5
    assert perplexity(model, tokens, labels) < 0.5 * before


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_model(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(folder)
    tokens, labels = _data(tok)
    settings = TrainSettings(tokens=20 * 4 * 32, batch_size=4, block_size=32, lr=3e-3, warmup_steps=2, bf16=False,
                             save_every=5)
    straight = AutoModelForCausalLM.from_pretrained(folder)
    reference = train(straight, tokens, labels, settings)

    checkpoint = tmp_path / "ckpt.pt"
    interrupted = AutoModelForCausalLM.from_pretrained(folder)

    class Stop(Exception):
        pass

    def stop_at_12(step, total, loss):
        if step == 12:
            raise Stop

    try:
        train(interrupted, tokens, labels, settings, checkpoint=checkpoint, progress=stop_at_12)
    except Stop:
        pass
    assert checkpoint.exists()
    resumed_model = AutoModelForCausalLM.from_pretrained(folder)  # fresh weights: all state comes from the checkpoint
    resumed = train(resumed_model, tokens, labels, settings, checkpoint=checkpoint)
    assert len(resumed["losses"]) == len(reference["losses"]) == settings.steps
    assert resumed["losses"][:10] == reference["losses"][:10]
    assert abs(resumed["losses"][-1] - reference["losses"][-1]) < 1e-4
    assert not checkpoint.exists()
    for a, b in zip(resumed_model.parameters(), straight.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
