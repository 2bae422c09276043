"""`auto` precision: the faster of float32 and bf16, timed at the model's shape, cached per machine."""

import json

import pytest
import torch

from fabula.train.precision import PRECISIONS, choose_precision, time_training


def _model(width: int = 32):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=width, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))


def _timer(slow: str, calls: list):
    """A machine where `slow` trains at a tenth of the other precision's rate."""
    def timer(model, precision):
        calls.append(precision)
        return 100.0 if precision == slow else 1000.0
    return timer


@pytest.mark.parametrize("slow", PRECISIONS)
def test_auto_takes_the_precision_that_is_not_slow(tmp_path, slow):
    calls = []
    choice = choose_precision("auto", _model(), tmp_path / "precision.json", timer=_timer(slow, calls))
    assert choice.precision != slow and sorted(calls) == sorted(PRECISIONS)
    assert choice.rates == {slow: 100.0, choice.precision: 1000.0} and "10.0x faster" in choice.describe()


def test_the_measurement_is_cached_per_machine_and_shape(tmp_path):
    cache, calls = tmp_path / "precision.json", []
    first = choose_precision("auto", _model(), cache, timer=_timer("bfloat16", calls))
    again = choose_precision("auto", _model(), cache, timer=_timer("float32", calls))  # would flip if timed again
    assert again.precision == first.precision == "float32" and again.cached and not first.cached
    assert len(calls) == 2 and len(json.loads(cache.read_text())) == 1
    other_shape = choose_precision("auto", _model(width=64), cache, timer=_timer("float32", calls))
    assert other_shape.precision == "bfloat16" and len(calls) == 4 and len(json.loads(cache.read_text())) == 2


def test_a_damaged_cache_costs_a_new_timing_not_a_crash(tmp_path):
    cache = tmp_path / "precision.json"
    cache.write_text("{not json")
    assert choose_precision("auto", _model(), cache, timer=_timer("bfloat16", [])).precision == "float32"


def test_an_asked_for_precision_is_not_timed_and_a_bad_one_is_named():
    assert choose_precision("bfloat16", _model(), timer=_timer("bfloat16", [])).precision == "bfloat16"
    with pytest.raises(ValueError, match="'fp16'"):
        choose_precision("fp16", _model())


def test_timing_trains_a_copy_and_leaves_the_model_as_it_was():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for precision in PRECISIONS:
        assert time_training(model, precision, block=16, steps=1) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
