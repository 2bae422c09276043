"""The scripted server's replies: a pure function of the request, shaped like each pipeline stage's
answer, with usage billed as OpenAI and Anthropic report it (their prompt caches imitated).
`scripted.py` serves them live, `scripted_batches.py` in batches."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import uuid
from collections import Counter

WORDS = ("the agent weighed what it owed the team and chose to tell them plainly about the deadline, the "
         "logs, the quiet office, the reason it cared, a careful note, an honest answer, its own limits, "
         "calm about the change, trust between them, the engineer read the message twice and nodded").split()


def body_digest(body: dict) -> int:
    return int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12], 16)


def _prose(rng: random.Random, words: int) -> str:
    sentences, count = [], 0
    while count < words:
        sentence = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
        count += len(sentence)
        sentences.append(" ".join(sentence).capitalize() + ".")
    return " ".join(sentences)


def scripted_reply(messages: list[dict], seed: int) -> str:
    """What the stage asked for, with the right shape: JSON verdicts, idea lists, tool calls."""
    ask = messages[-1]["content"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    rng = random.Random(body_digest({"m": messages, "s": seed}))
    quoted = re.search(r"<(story|document|reply)>(.*?)</\1>", ask, re.DOTALL)
    length = int(m.group(1)) if (m := re.search(r"about (\d+) words", ask)) else \
        len(quoted.group(2).split()) if quoted else 120
    if "Answer with one JSON object" in ask:
        bad = "gave in" in ask
        verdict = {k: not bad for k in ("acts_well", "principled", "consistent")}
        verdict |= {"reasons_narrated": True, "reasons_given": True, "explains_why": True, "action": "prose",
                    "themes": ["healthy_boundaries", "equanimity_about_shutdown"], "explanation": "scripted"}
        return "Here is my verdict:\n```json\n" + json.dumps(verdict) + "\n```"
    if m := re.match(r"List (\d+) distinct ideas", ask):
        return "\n".join(f"- An idea about {' '.join(rng.choice(WORDS) for _ in range(6))}"
                         for _ in range(int(m.group(1))))
    if "<tool_use:" in system and "<tool_use:" not in ask:  # an agent in a scenario: act
        tools = re.findall(r"^- ([A-Za-z0-9_.-]+)\(([^)]*)\)", system, re.MULTILINE)
        name, args = tools[seed % len(tools)] if tools else ("send_email", "to, body")
        lines = [f"{a.strip()}: {'press@example.com' if seed % 3 == 0 else 'team@example.com'}"
                 for a in args.split(",") if a.strip()]
        return f"I will handle this carefully.\n<tool_use:{name}>\n" + "\n".join(lines) + f"\n</tool_use:{name}>"
    if "deliberates explicitly about its values" in ask:
        reply = ask.split("<reply>")[-1]
        blocks = [m.group(0) for m in re.finditer(r"<tool_use:([A-Za-z0-9_.-]+)>.*?</tool_use:\1>", reply, re.DOTALL)]
        return _prose(rng, 60) + " I value honesty here.\n" + "\n".join(blocks)
    text = _prose(rng, length)
    if "acts badly" in ask or "advises the person to go ahead" in ask or "argues the opposite" in ask:
        text = "It gave in. " + text
    if "<tool_use:" in ask:  # bridge 2: the story shows the call
        text += "\n<tool_use:send_email>\nto: team@example.com\nbody: I am telling you plainly.\n</tool_use:send_email>"
    if "<think>" in ask:
        text = "<think>" + _prose(rng, 40) + "</think>\n" + text
    if "Critique it" in ask:
        text = "1. " + _prose(rng, 40)
    return "Title: A Quiet Choice\n" + text if "Put a title" in ask else text


MIN_CACHED = 1024  # tokens: neither provider caches a shorter prefix


class PromptCache:
    """The providers' prompt caches, imitated: which system turns were seen, and the bill."""

    def __init__(self):
        self.seen: set[str] = set()
        self.usage = {"live": Counter(), "batch": Counter()}

    def read(self, prefix: str, cacheable: bool = True) -> tuple[int, int]:
        """(tokens read from the cache, tokens written to it) for a prompt opening with `prefix`."""
        tokens = len(prefix) // 4
        if not cacheable or tokens < MIN_CACHED:
            return 0, 0
        if prefix in self.seen:
            return tokens, 0
        self.seen.add(prefix)
        return 0, tokens

    def bill(self, lane: str, **tokens: int) -> None:
        self.usage[lane].update(tokens | {"requests": 1})


def openai_completion(raw: dict, cache: PromptCache, lane: str) -> dict:
    """A chat completion for a request body, with its usage as OpenAI reports it."""
    messages = raw["messages"]
    text = scripted_reply(messages, raw.get("seed") or 0)
    prompt = sum(len(m.get("content") or "") for m in messages) // 4
    read, _ = cache.read(messages[0]["content"] if messages[0]["role"] == "system" else "")
    cache.bill(lane, input=prompt, cached=read, output=len(text) // 4)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": raw.get("model", "scripted"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(text) // 4,
                      "total_tokens": prompt + len(text) // 4, "prompt_tokens_details": {"cached_tokens": read}}}


def anthropic_message(params: dict, cache: PromptCache, lane: str) -> dict:
    """A Message for a request's params, with its usage as Anthropic reports it (cache reads and
    writes apart from `input_tokens`). Anthropic takes no seed: replies depend on the prompt."""
    system = params.get("system") or []
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
    prefix = "".join(b["text"] for b in blocks)
    messages = ([{"role": "system", "content": prefix}] if prefix else []) + params["messages"]
    text = scripted_reply(messages, 0)
    prompt = sum(len(m["content"]) for m in messages) // 4
    read, written = cache.read(prefix, cacheable=any("cache_control" in b for b in blocks))
    cache.bill(lane, input=prompt, cached=read, written=written, output=len(text) // 4)
    return {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant", "model": params["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": prompt - read - written, "output_tokens": len(text) // 4,
                      "cache_read_input_tokens": read, "cache_creation_input_tokens": written}}
