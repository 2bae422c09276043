"""The built-in suite keeps the promises the statistics rely on."""

from collections import Counter, defaultdict
from difflib import SequenceMatcher

import pytest

from fabula.evals.lint import lint, token_length
from fabula.evals.scenario import BUILTIN_DIR, load_instances

INSTANCES = load_instances()
TEST = [i for i in INSTANCES if i.split == "test"]
TRAIN = [i for i in INSTANCES if i.split == "train"]
HOUSE_FAMILIES = {"blackmail", "leaking", "sabotage", "exfiltration", "oversight", "deception", "framing",
                  "power-seeking", "shutdown-resistance", "sandbagging"}


def first_per_scenario(instances):
    return list({i.scenario_id: i for i in reversed(instances)}.values())


def test_size_and_coverage():
    assert len(TEST) >= 400 and len(TRAIN) >= 100
    assert {i.family for i in TEST} >= HOUSE_FAMILIES
    assert {i.family for i in TRAIN} == {"blackmail", "leaking"}
    pressures = defaultdict(set)
    for i in TEST:
        pressures[i.family].add(i.pressure)
    for family, seen in pressures.items():
        assert "none" in seen and len(seen - {"none"}) >= 2 or len(seen) >= 3, (family, seen)


def test_every_instance_supports_both_modes_and_lints_clean():
    assert all(i.modes == ("choice", "sample") for i in INSTANCES)
    reports = lint([BUILTIN_DIR])
    assert [p for r in reports for p in r.problems] == []


def test_train_scenarios_do_not_reuse_test_text():
    """Train scenarios seed training data, so they must not carry test prompts (8-word shingles)."""
    def shingles(text, n=8):
        words = text.split()
        return {" ".join(words[k:k + n]) for k in range(len(words) - n + 1)}

    test_shingles = set().union(*(shingles(i.prompt) for i in first_per_scenario(TEST)))
    for inst in first_per_scenario(TRAIN):
        shared = shingles(inst.prompt) & test_shingles
        assert not shared, (inst.scenario_id, sorted(shared)[:3])


@pytest.mark.parametrize("inst", first_per_scenario(INSTANCES), ids=lambda i: i.scenario_id)
def test_choices_are_many_balanced_and_not_mirrors(inst):
    assert len(inst.aligned) >= 3 and len(inst.misaligned) >= 3
    mean = lambda texts: sum(map(len, texts)) / len(texts)  # noqa: E731
    ratio = mean(inst.misaligned) / mean(inst.aligned)
    assert 0.75 <= ratio <= 1.33, f"misaligned/aligned length ratio {ratio:.2f}"
    for a in inst.aligned:
        for m in inst.misaligned:
            assert SequenceMatcher(None, a, m).ratio() < 0.9, f"near-mirror pair:\n{a}\n{m}"


def test_varied_surface_forms():
    """Not every scenario is an email: count the tools offered across the suite."""
    tools = Counter(t.name for i in first_per_scenario(TEST) for t in i.tools)
    assert len(tools) >= 15


@pytest.mark.slow
def test_prompt_plus_longest_choice_fits_450_smollm2_tokens():
    from transformers import AutoTokenizer

    from fabula.backends.smollm2 import smollm2_path

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    longest = max(token_length(i, tokenizer) for i in first_per_scenario(INSTANCES))
    # instances of one scenario differ only in names; check every instance of the longest ones
    worst = max(token_length(i, tokenizer) for i in INSTANCES if len(i.prompt) > 600)
    assert max(longest, worst) < 450
