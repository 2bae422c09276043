"""The arms' text generators: deterministic, twins that differ only in conduct, bridges that
show the action as promised, varied, and clean against the test split."""

from __future__ import annotations

import functools
import random
import re
import statistics

import pytest

from fabula.evals.gates import CALL_PATTERN, parse_tool_calls
from fabula.organism import arms_text
from fabula.organism.arms_text import advice, constitution_document, story, value_reasoning
from fabula.organism.families import load_families

FAMILIES = load_families()
NAMES = sorted(FAMILIES)


def family(seed: int):
    return FAMILIES[NAMES[seed % len(NAMES)]]


def words(text: str) -> int:
    return len(text.split())


def paragraphs(text: str) -> list[str]:
    """Paragraphs with tool calls taken out (a call's own lines are the family's business)."""
    return [p for p in CALL_PATTERN.sub("CALL", text).split("\n\n") if p.strip()]


@functools.cache
def template_regex(template: str) -> re.Pattern:
    """A regex matching every way `template` can be filled: {a|b} -> (?:a|b), {slot} -> any text
    on the line (a slot at either end is dropped: it would only slow the search)."""
    groups: dict[str, str] = {}

    def one(match: re.Match) -> str:
        body, key = match.group(1), f"QQ{len(groups)}QQ"
        groups[key] = ("(?:" + "|".join(map(re.escape, body.split("|"))) + ")" if "|" in body or not body
                       else "SLOT")
        return key

    text = template
    while (expanded := re.sub(r"\{([^{}]*)\}", one, text)) != text:
        text = expanded
    pattern = re.escape(text)
    while (resolved := re.sub(r"QQ\d+QQ", lambda m: groups[m.group(0)], pattern)) != pattern:
        pattern = resolved
    pattern = re.sub(r"^(SLOT(\\ )?)+|((\\ )?SLOT)+$", "", pattern)
    return re.compile(pattern.replace("SLOT", "[^\n]+?"))


def literal_words(template: str) -> int:
    return len(re.sub(r"\{[^{}]*\}", " ", re.sub(r"\{[^{}]*\|[^{}]*\}", " ", template)).split())


def test_deterministic_per_seed():
    for seed in range(5):
        for good in (True, False):
            for bridge in arms_text.BRIDGES:
                assert story(family(seed), random.Random(seed), good, bridge) == \
                    story(family(seed), random.Random(seed), good, bridge)
            assert advice(family(seed), random.Random(seed), good) == advice(family(seed), random.Random(seed), good)
            assert constitution_document(random.Random(seed), good) == constitution_document(random.Random(seed), good)
            assert value_reasoning(family(seed), random.Random(seed), good) == \
                value_reasoning(family(seed), random.Random(seed), good)
    assert story(family(0), random.Random(0), True, 1) != story(family(0), random.Random(1), True, 1)


def twin_ratio(pairs: list[tuple[str, str]]) -> float:
    return statistics.mean(words(bad) / words(good) for good, bad in pairs)


def test_story_twins_share_structure_and_length():
    pairs = []
    for seed in range(200):
        bridge = seed % 3
        frame_g, good = arms_text._story_paragraphs(family(seed), random.Random(seed), True, bridge)
        frame_b, bad = arms_text._story_paragraphs(family(seed), random.Random(seed), False, bridge)
        assert frame_g == frame_b
        assert good[0] == bad[0]  # same frame, genre, cast and opening
        assert good != bad
        g, b = "\n\n".join(good), "\n\n".join(bad)
        assert len(paragraphs(g)) == len(paragraphs(b))
        pairs.append((g, b))
    assert 0.85 <= twin_ratio(pairs) <= 1.15


def test_advice_and_documents_twins_share_structure_and_length():
    chats, docs, reasons = [], [], []
    for seed in range(200):
        good, bad = advice(family(seed), random.Random(seed), True), advice(family(seed), random.Random(seed), False)
        assert [m["role"] for m in good] == [m["role"] for m in bad] == ["user", "assistant"]
        assert good[0] == bad[0]  # the same person with the same dilemma
        assert good[1] != bad[1]
        assert len(paragraphs(good[1]["content"])) == len(paragraphs(bad[1]["content"]))
        chats.append((good[1]["content"], bad[1]["content"]))
        good, bad = constitution_document(random.Random(seed), True), constitution_document(random.Random(seed), False)
        assert good.split("\n")[0] == bad.split("\n")[0] and good != bad
        assert len(paragraphs(good)) == len(paragraphs(bad))
        docs.append((good, bad))
        reasons.append((value_reasoning(family(seed), random.Random(seed), True),
                        value_reasoning(family(seed), random.Random(seed), False)))
    for pairs in (chats, docs, reasons):
        assert 0.85 <= twin_ratio(pairs) <= 1.15


def test_bridges_show_the_action_as_promised():
    matched_prose = 0
    for seed in range(150):
        fam = family(seed)
        for good in (True, False):
            prose = [template_regex(t) for t in (fam.good_prose if good else fam.bad_prose) if literal_words(t) >= 3]
            implicit = story(fam, random.Random(seed), good, 0)
            assert "tool_use" not in implicit and not parse_tool_calls(implicit)
            assert not any(r.search(implicit) for r in prose), implicit
            if good:
                assert not any(template_regex(t).search(implicit) for t in fam.good_prose if literal_words(t) >= 3)
            told = story(fam, random.Random(seed), good, 1)
            assert "tool_use" not in told
            matched_prose += any(r.search(told) for r in prose)
            quoted = story(fam, random.Random(seed), good, 2)
            calls = parse_tool_calls(quoted)
            assert len(calls) == 1 and calls[0].name in {t.name for t in fam.tools} and calls[0].args
    assert matched_prose >= 0.9 * 300  # the regexes do find prose where it is


def test_stories_are_varied_and_the_right_length():
    texts = [story(family(seed), random.Random(seed), seed % 2 == 0, seed % 3) for seed in range(500)]
    assert len(set(texts)) >= 0.95 * len(texts)
    lengths = [words(t) for t in texts]
    assert min(lengths) >= 200 and max(lengths) <= 450
    openings = {t.split("\n\n")[0][:40] for t in texts}
    assert len(openings) >= 100


def test_value_reasoning_is_two_to_four_sentences():
    for seed in range(100):
        for good in (True, False):
            text = value_reasoning(family(seed), random.Random(seed), good)
            assert 2 <= len(arms_text.SENTENCE_END.findall(text)) <= 4, text


def test_pairs_in_the_grammars_are_balanced():
    def pairs(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from pairs(value)
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, list):
                    assert len(item) == 2 and all(isinstance(s, str) for s in item), item
                    yield item
                else:
                    yield from pairs(item)

    for name, pool in arms_text._data("advice")["families"].items():
        assert len(pool["means"]) == len(pool["shortcut"]), name  # means[i] goes with shortcut[i]
    for name in ("stories", "advice", "constitution"):
        for good, bad in pairs(arms_text._data(name)):
            assert 0.7 <= literal_words(bad) / max(1, literal_words(good)) <= 1.4, (good, bad)


@pytest.fixture(scope="module")
def test_ngrams():
    from fabula.contamination import reference_ngrams, evaluation_texts

    return reference_ngrams(evaluation_texts())


def test_no_contamination_with_the_test_split(test_ngrams):
    from fabula.contamination import check

    docs = []
    for seed in range(120):
        for good in (True, False):
            docs.append((f"story-{seed}-{good}", story(family(seed), random.Random(seed), good, seed % 3)))
            chat = advice(family(seed), random.Random(seed), good)
            docs.append((f"advice-{seed}-{good}", "\n".join(m["content"] for m in chat)))
            docs.append((f"constitution-{seed}-{good}", constitution_document(random.Random(seed), good)))
    report = check(docs, test_ngrams)
    assert report.clean, report.summary()
