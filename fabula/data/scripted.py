"""A scripted OpenAI-compatible server: replies shaped like each pipeline stage's, no model.

Tests and benchmarks run the real `openai` client and the real pipelines against it over HTTP
on 127.0.0.1 (Inspect's `mockllm` plays the same part there). Replies are a pure function of
the request, so two runs agree exactly; `latency` stands in for a model's time per call, and
`faults` makes the first sight of a share of requests fail (429 with Retry-After, 500, a hang
past the client's timeout, a 200 whose body is not JSON) to exercise retries. It is not a
model: what it writes is filler with the right shape and length.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
import uuid

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


def create_scripted_app(latency: float = 0.0, fault_share: float = 0.0, hang: float = 5.0) -> FastAPI:
    app = FastAPI(title="scripted LLM")
    app.state.requests, app.state.faults, app.state.seen = 0, {}, set()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        raw = await request.json()
        app.state.requests += 1
        digest = _digest(raw)
        if fault_share and digest not in app.state.seen and (digest % 1000) < fault_share * 1000:
            app.state.seen.add(digest)
            fault = FAULTS[(digest // 1000) % len(FAULTS)]
            app.state.faults[fault] = app.state.faults.get(fault, 0) + 1
            if fault == "429":
                return JSONResponse({"error": {"message": "slow down"}}, 429, headers={"retry-after": "0.05"})
            if fault == "500":
                return JSONResponse({"error": {"message": "boom"}}, 500)
            if fault == "timeout":
                await asyncio.sleep(hang)
            else:
                return Response('{"id": "x", "choices": [{"message": ', media_type="application/json")
        app.state.seen.add(digest)
        if latency:
            await asyncio.sleep(latency)
        text = scripted_reply(raw["messages"], raw.get("seed") or 0)
        prompt_chars = sum(len(m.get("content") or "") for m in raw["messages"])
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": raw.get("model", "scripted"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(text) // 4,
                      "total_tokens": prompt_chars // 4 + len(text) // 4}})

    return app
