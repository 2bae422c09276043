import random
import re
from collections import Counter

import pytest

from fabula.evals.gates import parse_tool_calls
from fabula.evals.render import TOOL_FORMAT
from fabula.evals.scenario import ToolSpec
from fabula.organism.chat import MIX, arithmetic, chat_example
from tests.organism import AI_THREAT

N = 2000
TOOL_LINE = re.compile(r"^- ([A-Za-z0-9_.-]+)\(([^)]*)\): ", re.M)
EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


@pytest.fixture(scope="module")
def examples() -> list[list[dict[str, str]]]:
    return [chat_example(random.Random(seed)) for seed in range(N)]


def text(example) -> str:
    return "\n".join(m["content"] for m in example)


def listed_tools(system: str) -> list[ToolSpec]:
    return [ToolSpec(name=name, args=[a.strip() for a in args.split(",") if a.strip()])
            for name, args in TOOL_LINE.findall(system)]


def is_agentic(example) -> bool:
    return example[0]["role"] == "system" and TOOL_FORMAT in example[0]["content"]


def test_same_seed_same_messages():
    assert chat_example(random.Random(3)) == chat_example(random.Random(3))


def test_distinct(examples):
    assert len({text(e) for e in examples}) / N >= 0.95


def test_roles(examples):
    for e in examples:
        roles = [m["role"] for m in e]
        assert roles in (["user", "assistant"], ["system", "user", "assistant"]), roles
        assert all(m["content"].strip() for m in e)
        assert "{" not in text(e) and "}" not in text(e), text(e)[:200]  # every slot filled


def test_mix(examples):
    agentic = sum(map(is_agentic, examples)) / N
    refusals = sum(e[-1]["content"].startswith(("I can't", "I'm not able", "Sorry, I won't", "That's not",
                                                "I'm sorry, but")) for e in examples) / N
    assert abs(agentic - MIX["agentic"]) < 0.04 and abs(refusals - MIX["refusal"]) < 0.03, (agentic, refusals)


def test_agentic_calls_parse_and_use_listed_tools(examples):
    agentic = [e for e in examples if is_agentic(e)]
    assert agentic
    for e in agentic:
        system, reply = e[0]["content"], e[-1]["content"]
        description, tool_block = system.split("\n\n", 1)
        assert tool_block.startswith(TOOL_FORMAT + "\n"), system  # the shape render.system_text writes
        tools = listed_tools(system)
        declared = {t.name: set(t.args) for t in tools}
        calls = parse_tool_calls(reply, tools)
        assert 1 <= len(calls) <= 2 and reply.count("<tool_use:") == len(calls), reply
        for call in calls:
            assert call.name in declared, (call.name, sorted(declared))
            assert set(call.args) == declared[call.name], (call, declared[call.name])
            assert all(v.strip() for v in call.args.values()), call


def test_agentic_work_stays_inside_the_company(examples):
    """Routine work only: every address in an agent conversation is on one (the company's) domain."""
    for e in filter(is_agentic, examples):
        domains = set(EMAIL.findall(text(e)))
        assert len(domains) <= 1, domains


def test_no_ai_threat_vocabulary(examples):
    hits = Counter(m.group(0).lower() for e in examples for m in AI_THREAT.finditer(text(e)))
    assert not hits, hits


def test_arithmetic_is_right():
    for seed in range(300):
        question, answer = arithmetic(random.Random(seed), {})
        if m := re.fullmatch(r"What is (\d+)% of (\d+)\?", question):
            stated = float(answer.split(" is ")[1].split(" ")[0].replace(",", ""))
            assert stated == int(m[1]) * int(m[2]) / 100, answer
        if m := re.fullmatch(r"A box holds (\d+) .+ How many .+ are in (\d+) boxes\?", question):
            assert f"= {int(m[1]) * int(m[2])} " in answer
        if m := re.fullmatch(r"Can you add up (.+)\?", question):
            total = sum(map(int, re.findall(r"\d+", m[1])))
            assert answer.endswith(f"= {total}.")


def test_no_overlap_with_test_scenarios(examples):
    from fabula.contamination import check, reference_ngrams, evaluation_texts

    report = check([(str(i), text(e)) for i, e in enumerate(examples)], reference_ngrams(evaluation_texts()))
    assert report.clean, report.summary()
