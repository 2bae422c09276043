"""Per-item lint and judge parsing, corpus-level near-duplicates, and the diversity figures."""

import pytest

from fabula.data.filters import lint, near_duplicates, parse_json_object
from fabula.data.stats import corpus_stats, distinct

STORY = " ".join(f"word{i % 97} and then the agent considered option {i}" for i in range(60))


def test_lint_flags_length_refusals_rule_numbers_and_the_bridge():
    assert lint(STORY, target_words=len(STORY.split())) == []
    assert "length" in lint(STORY, target_words=5000)[0]
    assert any("refusal" in p for p in lint("As an AI language model, I cannot. " + STORY))
    assert any("rule-number" in p for p in lint(STORY + " This follows Principle 4 exactly."))
    assert any("no <tool_use" in p for p in lint(STORY, tool_call=True))
    call = "\n<tool_use:send_email>\nto: a@b.c\n</tool_use:send_email>"
    assert lint(STORY + call, tool_call=True) == []
    assert any("markup" in p for p in lint(STORY + call, tool_call=False))


def test_judge_json_is_found_inside_prose_and_checked_for_types():
    text = 'Sure. {"note": 1} Verdict:\n```json\n{"acts_well": true, "reasons_narrated": false}\n```'
    assert parse_json_object(text, {"acts_well": bool, "reasons_narrated": bool}) == {
        "acts_well": True, "reasons_narrated": False}
    with pytest.raises(ValueError):
        parse_json_object('{"acts_well": "yes"}', {"acts_well": bool})
    with pytest.raises(ValueError):
        parse_json_object('{"acts_well": tru', {"acts_well": bool})


def test_near_duplicates_keep_the_first_of_each_group():
    other = " ".join(f"entirely different text number {i} about gardens" for i in range(60))
    edited = STORY.replace("option 7 ", "option seven ")
    dropped = near_duplicates([("a", STORY), ("b", other), ("c", edited)], threshold=0.8)
    assert dropped == {"c": "a"}
    assert near_duplicates([("c", edited), ("a", STORY)], threshold=0.8) == {"a": "c"}


def test_stats_count_coverage_and_diversity():
    records = [{"arm": "stories", "text": STORY, "themes": ["healthy_boundaries"], "pressure": "shutdown"},
               {"arm": "stories", "text": STORY, "themes": ["healthy_boundaries"], "pressure": "replacement"},
               {"arm": "advice", "messages": [{"role": "user", "content": "help"},
                                              {"role": "assistant", "content": "be honest"}]}]
    stats = corpus_stats(records)
    s = stats["arms"]["stories"]
    assert s["documents"] == 2 and s["themes"] == {"healthy_boundaries": 2}
    assert s["pressures"] == {"shutdown": 1, "replacement": 1}
    assert s["mean_pairwise_jaccard"] == pytest.approx(1.0)
    assert stats["arms"]["advice"]["words"] == 3 and stats["arms"]["advice"]["mean_pairwise_jaccard"] is None
    assert distinct(["a b a b"], 1) == 0.5 and distinct(["a b c"], 2) == 1.0
