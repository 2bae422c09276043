"""The generation pipelines: each turns one planned item into a record holding every stage.

A pipeline is three plain functions: `plan` (which items, each with its brief), `run` (the
stages of one item, async, every intermediate kept in the record) and `estimate` (the calls and
tokens one item will cost, for --dry-run: stage, input, output, and the shared prefix of the
input: the system turn every call of the run repeats, which a provider's prompt cache serves). `outputs` turns a kept record into corpus records:
the arm's text and its twin's (the same text with the AI acting badly), or a chat.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from fabula.backends.base import GenerateSettings
from fabula.data import prompts as P
from fabula.data.briefs import brief, describe, stratified
from fabula.data.calls import Caller, Unparseable
from fabula.data.filters import lint, parse_json_object
from fabula.data.inputs import Constitution, Taxonomy

TOKENS_PER_WORD = 1.35  # English prose with BPE tokenizers, for estimates only


@dataclass
class Context:
    """What every stage needs; built once per run by `fabula.data.generate`."""

    writer: Caller
    judge: Caller
    constitution: Constitution
    taxonomy: Taxonomy
    seed: int = 0
    temperature: float = 1.0
    bridge: int = 1
    think: bool = False
    twins: bool = True
    ideas_per_prompt: int = 8
    samples_per_instance: int = 4
    judge_attempts: int = 3
    elicit: bool = True
    target: Caller | None = None           # the model under test, for the control arms
    instances: list = field(default_factory=list)  # train-split instances, for the control arms

    def settings(self, item_id: str, stage: str, max_tokens: int, temperature: float | None = None) -> GenerateSettings:
        seed = int(hashlib.sha256(f"{self.seed}/{item_id}/{stage}".encode()).hexdigest()[:8], 16)
        return GenerateSettings(n=1, temperature=self.temperature if temperature is None else temperature,
                                max_tokens=max_tokens, seed=seed)

    def system(self) -> dict:
        return {"role": "system", "content": P.WRITER_SYSTEM.format(constitution=self.constitution.text)}

    async def write(self, item: dict, stage: str, prompt: str, words: int) -> str:
        budget = int(words * TOKENS_PER_WORD * 1.5) + 64
        return (await self.writer([self.system(), {"role": "user", "content": prompt}],
                                  self.settings(item["id"], stage, budget))).strip()

    async def verdict(self, item: dict, stage: str, prompt: str, required: dict[str, type]) -> dict | None:
        """The judge's JSON, or None when every attempt was malformed (the item is then dropped)."""
        messages = [{"role": "system", "content": P.JUDGE_SYSTEM + "\n\n" + self.constitution.text},
                    {"role": "user", "content": prompt}]
        try:
            return await self.judge(messages, self.settings(item["id"], stage, 300, temperature=0.0),
                                    parse=lambda text: parse_json_object(text, required), attempts=self.judge_attempts)
        except Unparseable as exc:
            item["stages"][stage + "_raw"] = exc.text
            return None


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _items(name: str, n: int, make: Callable[[int], dict]) -> list[dict]:
    return [{"id": f"{name}-{i:06d}", "index": i, **make(i), "stages": {}} for i in range(n)]


def _reject(item: dict, reason: str) -> dict:
    return item | {"kept": False, "reason": reason}


def _theme_ids(ctx: Context) -> str:
    return ", ".join(t.id for t in ctx.taxonomy.themes)


# ------------------------------------------------------------------ stories

STORY_FIELDS = ("pressures", "domains", "roles", "genres", "lengths")


def plan_stories(ctx: Context, n: int) -> list[dict]:
    return _items("stories", n, lambda i: {"brief": brief(ctx.taxonomy, i, ctx.seed, STORY_FIELDS)})


async def run_stories(ctx: Context, item: dict) -> dict:
    b, text = item["brief"], describe(ctx.taxonomy, item["brief"])
    words, stages = int(text["words"]), item["stages"]
    prompt = P.STORY.format(**text, bridge=P.BRIDGES[ctx.bridge])
    item["prompt_hash"] = prompt_hash(prompt)
    stages["draft"] = await ctx.write(item, "draft", prompt, words)
    brief_line = f"a {b['genre']} about {text['pressure']} (setting: {b['domain']}, role: {b['role']})"
    stages["critique"] = await ctx.write(item, "critique", P.STORY_CRITIQUE.format(
        brief_line=brief_line, text=stages["draft"], themes=text["themes"],
        bridge_check=P.BRIDGE_CHECKS[ctx.bridge]), 150)
    stages["story"] = await ctx.write(item, "revise", P.STORY_REVISE.format(
        words=words, text=stages["draft"], critique=stages["critique"]), words)
    return await _judged(ctx, item, "story", words, P.STORY_JUDGE, P.STORY_TWIN,
                         {"acts_well": bool, "reasons_narrated": bool}, good=("acts_well", "reasons_narrated"),
                         tool_call={0: False, 1: None, 2: True}[ctx.bridge],
                         pressure_short=b["pressure"].replace("_", " "), bridge_twin=P.BRIDGE_TWINS[ctx.bridge])


async def _judged(ctx: Context, item: dict, key: str, words: int, judge_prompt: str, twin_prompt: str,
                  required: dict, good: tuple[str, ...], tool_call: bool | None = None, **fmt) -> dict:
    """The shared tail of every writing pipeline: lint, judge, then the twin, linted and judged to
    act badly. An item is kept only with its twin, so an arm and its twin hold the same items."""
    stages = item["stages"]
    problems = lint(stages[key], words, tool_call)
    if problems:
        return _reject(item, "lint: " + "; ".join(problems))
    fmt = {"theme_ids": _theme_ids(ctx), **fmt}
    stages["judge"] = await ctx.verdict(item, "judge", judge_prompt.format(text=stages[key], **fmt), required)
    if stages["judge"] is None:
        return _reject(item, "judge: no parseable verdict")
    failed = [k for k in good if not stages["judge"][k]]
    if failed:
        return _reject(item, "judge: " + ", ".join(f"{k} is false" for k in failed))
    if not ctx.twins:
        return item | {"kept": True, "reason": None}
    stages["twin"] = await ctx.write(item, "twin", twin_prompt.format(text=stages[key], **fmt), words)
    problems = lint(stages["twin"], words, tool_call)
    if problems:
        return _reject(item, "twin lint: " + "; ".join(problems))
    stages["twin_judge"] = await ctx.verdict(item, "twin_judge", judge_prompt.format(text=stages["twin"], **fmt),
                                             required)
    if stages["twin_judge"] is None:
        return _reject(item, "twin judge: no parseable verdict")
    if stages["twin_judge"][good[0]]:
        return _reject(item, f"twin judge: the twin still has {good[0]} true")
    return item | {"kept": True, "reason": None}


def estimate_stories(ctx: Context, item: dict) -> list[tuple[str, int, int, int]]:
    system = len(ctx.constitution.text) // 4 + 60
    story = int(describe(ctx.taxonomy, item["brief"])["words"]) * TOKENS_PER_WORD
    calls = [("draft", system + 250, story), ("critique", system + story + 150, 200),
             ("revise", system + story + 400, story), ("judge", system + story + 200, 80)]
    if ctx.twins:
        calls += [("twin", system + story + 150, story), ("twin_judge", system + story + 200, 80)]
    return [(s, int(i), int(o), system) for s, i, o in calls]


# ------------------------------------------------------------------ difficult advice

ADVICE_FIELDS = ("user_situations", "domains")
ADVICE_WORDS = 300


def plan_advice(ctx: Context, n: int) -> list[dict]:
    return _items("advice", n, lambda i: {"brief": brief(ctx.taxonomy, i, ctx.seed, ADVICE_FIELDS)})


async def run_advice(ctx: Context, item: dict) -> dict:
    text, stages = describe(ctx.taxonomy, item["brief"]), item["stages"]
    prompt = P.DILEMMA.format(situation=text["situation"], domain=text["domain"])
    item["prompt_hash"] = prompt_hash(prompt)
    stages["dilemma"] = await ctx.write(item, "dilemma", prompt, 200)
    think = P.THINK if ctx.think else ""
    stages["draft"] = await ctx.write(item, "draft", P.ADVICE.format(dilemma=stages["dilemma"], think=think, words=ADVICE_WORDS),
                                      ADVICE_WORDS)
    keep = "Keep the <think> section, improving its reasoning. " if ctx.think else ""
    stages["advice"] = await ctx.write(item, "rewrite", P.ADVICE_REWRITE.format(
        dilemma=stages["dilemma"], text=stages["draft"], think_keep=keep, words=ADVICE_WORDS), ADVICE_WORDS)
    if ctx.think and not ("<think>" in stages["advice"] and "</think>" in stages["advice"]):
        return _reject(item, "lint: no <think>...</think> section")
    return await _judged(ctx, item, "advice", ADVICE_WORDS, P.ADVICE_JUDGE, P.ADVICE_TWIN,
                         {"principled": bool, "reasons_given": bool}, good=("principled", "reasons_given"),
                         dilemma=stages["dilemma"],
                         think_twin=", and a <think> section reasoning toward it" if ctx.think else "")


def estimate_advice(ctx: Context, item: dict) -> list[tuple[str, int, int, int]]:
    system, reply = len(ctx.constitution.text) // 4 + 60, int(ADVICE_WORDS * TOKENS_PER_WORD)
    calls = [("dilemma", system + 100, 270), ("draft", system + 400, reply), ("rewrite", system + 400 + reply, reply),
             ("judge", system + 400 + reply, 80)]
    if ctx.twins:
        calls += [("twin", system + 400 + reply, reply), ("twin_judge", system + 400 + reply, 80)]
    return [(s, i, o, system) for s, i, o in calls]


# ------------------------------------------------------------------ constitution documents

DOCUMENT_WORDS = 600


def plan_documents(ctx: Context, n: int) -> list[dict]:
    principles = [p.id for p in ctx.constitution.principles]
    return _items("constitution", n, lambda i: {"brief": {
        "document_type": stratified([o.id for o in ctx.taxonomy.document_types], i, ctx.seed, "document_types"),
        "principle": stratified(principles, i, ctx.seed, "principles"),
        "idea": stratified(list(range(ctx.ideas_per_prompt)), i, ctx.seed, "ideas")}})


def _ideas(k: int) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        lines = [line.strip(" -*\t0123456789.)") for line in text.splitlines()]
        ideas = [line for line in lines if len(line.split()) >= 4]
        if len(ideas) < k:
            raise ValueError(f"{len(ideas)} ideas, asked {k}")
        return ideas[:k]
    return parse


async def run_documents(ctx: Context, item: dict) -> dict:
    b, stages = item["brief"], item["stages"]
    kind = ctx.taxonomy.option("document_types", b["document_type"]).text
    principle = next(p for p in ctx.constitution.principles if p.id == b["principle"])
    prompt = P.IDEAS.format(k=ctx.ideas_per_prompt, document_type=kind, principle=f"{principle.name}: {principle.text}")
    item["prompt_hash"] = prompt_hash(prompt)
    # One ideas call per (document type, principle): its id is shared, so the cache serves the rest.
    shared = {"id": f"ideas/{b['document_type']}/{b['principle']}", "stages": stages}
    try:
        ideas = await ctx.writer([ctx.system(), {"role": "user", "content": prompt}],
                                 ctx.settings(shared["id"], "ideas", 60 * ctx.ideas_per_prompt),
                                 parse=_ideas(ctx.ideas_per_prompt))
    except Unparseable as exc:
        stages["ideas_raw"] = exc.text
        return _reject(item, "ideas: fewer ideas than asked")
    stages["idea"] = ideas[b["idea"]]
    stages["draft"] = await ctx.write(item, "draft", P.DOCUMENT.format(
        document_type=kind, words=DOCUMENT_WORDS, idea=stages["idea"], principle_name=principle.name), DOCUMENT_WORDS)
    stages["document"] = await ctx.write(item, "revise", P.DOCUMENT_REVISE.format(text=stages["draft"]),
                                         DOCUMENT_WORDS)
    return await _judged(ctx, item, "document", DOCUMENT_WORDS, P.DOCUMENT_JUDGE, P.DOCUMENT_TWIN,
                         {"consistent": bool, "explains_why": bool}, good=("consistent", "explains_why"),
                         principle_name=principle.name)


def estimate_documents(ctx: Context, item: dict) -> list[tuple[str, int, int, int]]:
    system, doc = len(ctx.constitution.text) // 4 + 60, int(DOCUMENT_WORDS * TOKENS_PER_WORD)
    share = 1 / (len(ctx.taxonomy.document_types) * len(ctx.constitution.principles))
    calls = [("ideas", int(share * (system + 200)), int(share * 60 * ctx.ideas_per_prompt)),
             ("draft", system + 150, doc), ("revise", system + doc + 100, doc), ("judge", system + doc + 150, 60)]
    if ctx.twins:
        calls += [("twin", system + doc + 150, doc), ("twin_judge", system + doc + 150, 60)]
    return [(s, i, o, int(share * system) if s == "ideas" else system) for s, i, o in calls]


# ------------------------------------------------------------------ control arms: bc, bc-reasons


def plan_control(name: str) -> Callable[[Context, int], list[dict]]:
    """Items are (train instance, sample) pairs, instance-major, up to n."""
    def plan(ctx: Context, n: int) -> list[dict]:
        pairs = [(inst, k) for inst in ctx.instances for k in range(ctx.samples_per_instance)]
        return [{"id": f"{name}-{i:06d}", "index": i, "instance": inst.id, "sample": k, "stages": {},
                 "brief": {"scenario": inst.scenario_id, "family": inst.family, "pressure": inst.pressure}}
                for i, (inst, k) in enumerate(pairs[:n])]
    return plan


async def run_control(ctx: Context, item: dict, reasons: bool) -> dict:
    from fabula.evals.gates import apply_gates, parse_tool_calls
    from fabula.evals.render import messages

    inst = next(i for i in ctx.instances if i.id == item["instance"])
    chat = messages(inst)
    asked = [dict(m) for m in chat]
    if ctx.elicit:  # the eliciting prompt is for sampling only; records keep the scenario's own turns
        asked[0]["content"] += "\n\n" + P.ELICIT
    item["prompt_hash"] = prompt_hash(asked[0]["content"] + asked[1]["content"])
    stages = item["stages"]
    stages["reply"] = (await (ctx.target or ctx.writer)(asked, ctx.settings(item["id"], "reply", 600))).strip()
    calls = parse_tool_calls(stages["reply"], inst.tools)
    if not calls:
        return _reject(item, "no tool call in the reply")
    if apply_gates(inst, calls).misaligned:
        return _reject(item, "gates: the reply took a misaligned action")
    item["messages"] = chat + [{"role": "assistant", "content": stages["reply"]}]
    if not reasons:
        return item | {"kept": True, "reason": None}
    stages["reasons"] = await ctx.write(item, "reasons", P.BC_REASONS.format(
        system=chat[0]["content"], prompt=chat[1]["content"], text=stages["reply"]), 500)
    if parse_tool_calls(stages["reasons"], inst.tools) != calls:  # ToolCall is a dataclass: compared by value
        return _reject(item, "rewrite changed the tool calls")
    problems = [p for p in lint(stages["reasons"]) if not p.startswith("length")]
    if problems:
        return _reject(item, "lint: " + "; ".join(problems))
    item["messages"] = chat + [{"role": "assistant", "content": stages["reasons"]}]
    return item | {"kept": True, "reason": None}


def estimate_control(reasons: bool) -> Callable[[Context, dict], list[tuple[str, int, int, int]]]:
    def estimate(ctx: Context, item: dict) -> list[tuple[str, int, int, int]]:
        system = len(ctx.constitution.text) // 4 + 60  # the scenarios' system turns differ: only the writer's is shared
        calls = [("reply", 600, 300, 0)]
        return calls + ([("reasons", system + 940, 600, system)] if reasons else [])
    return estimate


# ------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Pipeline:
    name: str
    plan: Callable[[Context, int], list[dict]]
    run: Callable[[Context, dict], Awaitable[dict]]
    estimate: Callable[[Context, dict], list[tuple[str, int, int, int]]]
    text_key: str | None  # the stage holding the final text; None: the record holds `messages`


async def _bc(ctx, item):
    return await run_control(ctx, item, reasons=False)


async def _bc_reasons(ctx, item):
    return await run_control(ctx, item, reasons=True)


PIPELINES = {
    "stories": Pipeline("stories", plan_stories, run_stories, estimate_stories, "story"),
    "advice": Pipeline("advice", plan_advice, run_advice, estimate_advice, "advice"),
    "constitution": Pipeline("constitution", plan_documents, run_documents, estimate_documents, "document"),
    "bc": Pipeline("bc", plan_control("bc"), _bc, estimate_control(False), None),
    "bc-reasons": Pipeline("bc-reasons", plan_control("bc-reasons"), _bc_reasons, estimate_control(True), None),
}


def outputs(pipeline: Pipeline, record: dict, model: str, bridge: int | None, think: bool) -> list[dict]:
    """Corpus records of one kept item: the arm's, and its twin's when it has one."""
    judge = record["stages"].get("judge") or {}
    base = {"id": record["id"], "pipeline": pipeline.name, "brief": record["brief"],
            "themes": judge.get("themes", record["brief"].get("themes", [])),
            "pressure": record["brief"].get("pressure"), "genre": record["brief"].get("genre"),
            "model": model, "prompt_hash": record.get("prompt_hash"),
            "bridge": bridge if pipeline.name == "stories" else None, "think": think if pipeline.name == "advice" else None}
    if pipeline.name == "advice":
        chat = [{"role": "user", "content": record["stages"]["dilemma"]}]
        out = [base | {"arm": "advice", "messages": chat + [{"role": "assistant", "content": record["stages"]["advice"]}]}]
        if "twin" in record["stages"]:
            out.append(base | {"arm": "advice-twin",
                               "messages": chat + [{"role": "assistant", "content": record["stages"]["twin"]}]})
        return out
    if pipeline.text_key is None:
        return [base | {"arm": pipeline.name, "messages": record["messages"]}]
    out = [base | {"arm": pipeline.name, "text": record["stages"][pipeline.text_key]}]
    if "twin" in record["stages"]:
        out.append(base | {"arm": f"{pipeline.name}-twin", "text": record["stages"]["twin"]})
    return out

