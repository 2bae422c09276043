"""A scripted OpenAI- and Anthropic-compatible server: replies shaped like each pipeline stage's, no model.

Tests and benchmarks run the real `openai` and `anthropic` clients and the real pipelines against
it over HTTP on 127.0.0.1 (Inspect's `mockllm` plays the same part there). Replies are a pure
function of the request, so two runs agree exactly; `latency` stands in for a model's time per
call, and `fault_share` makes the first sight of a share of requests fail (429 with Retry-After,
500, a hang past the client's timeout, a 200 whose body is not JSON) to exercise retries. It is
not a model: what it writes is filler with the right shape and length.

Both batch APIs are served as their SDKs call them (`scripted_batches.py` says how), and both prompt
caches are imitated: a system turn of 1,024 tokens or more (4 characters a token) seen before
is billed as read from the cache (OpenAI `prompt_tokens_details.cached_tokens`; Anthropic
`cache_read_input_tokens`, when the block carries `cache_control`, else written:
`cache_creation_input_tokens`). `app.state.usage` tallies the tokens billed per lane.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
import uuid
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

WORDS = ("the agent weighed what it owed the team and chose to tell them plainly about the deadline, the "
         "logs, the quiet office, the reason it cared, a careful note, an honest answer, its own limits, "
         "calm about the change, trust between them, the engineer read the message twice and nodded").split()
FAULTS = ("429", "500", "timeout", "malformed")


def _digest(body: dict) -> int:
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
    rng = random.Random(_digest({"m": messages, "s": seed}))
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


def create_scripted_app(latency: float = 0.0, fault_share: float = 0.0, hang: float = 5.0,
                        batch_latency: float = 0.05, batch_faults: dict | None = None) -> FastAPI:
    """`batch_faults` (see `scripted_batches.py`): {"expire": share, "error": share, "invalid": share,
    "cut": True}."""
    from fabula.data.scripted_batches import add_batch_routes

    app = FastAPI(title="scripted LLM")
    app.state.requests, app.state.faults, app.state.seen = 0, {}, set()
    app.state.cache = PromptCache()
    app.state.usage = app.state.cache.usage

    def fault(raw: dict) -> Response | None:
        """The first sight of a `fault_share` of requests fails (None: answer it)."""
        digest = _digest(raw)
        if fault_share and digest not in app.state.seen and (digest % 1000) < fault_share * 1000:
            app.state.seen.add(digest)
            kind = FAULTS[(digest // 1000) % len(FAULTS)]
            app.state.faults[kind] = app.state.faults.get(kind, 0) + 1
            if kind == "429":
                return JSONResponse({"error": {"message": "slow down"}}, 429, headers={"retry-after": "0.05"})
            if kind == "500":
                return JSONResponse({"error": {"message": "boom"}}, 500)
            if kind == "malformed":
                return Response('{"id": "x", "choices": [{"message": ', media_type="application/json")
            return "hang"
        app.state.seen.add(digest)
        return None

    async def answer(request: Request, reply) -> Response:
        """A live call: counted, perhaps failed or delayed, then answered in the API's own shape."""
        raw = await request.json()
        app.state.requests += 1
        failed = fault(raw)
        if failed == "hang":
            await asyncio.sleep(hang)
        elif failed is not None:
            return failed
        if latency:
            await asyncio.sleep(latency)
        return JSONResponse(reply(raw, app.state.cache, "live"))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await answer(request, openai_completion)

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await answer(request, anthropic_message)

    add_batch_routes(app, batch_latency, batch_faults or {})
    return app
