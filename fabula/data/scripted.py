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

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from fabula.data.scripted_batches import add_batch_routes
from fabula.data.scripted_replies import PromptCache, anthropic_message, body_digest, openai_completion

FAULTS = ("429", "500", "timeout", "malformed")


def create_scripted_app(latency: float = 0.0, fault_share: float = 0.0, hang: float = 5.0,
                        batch_latency: float = 0.05, batch_faults: dict | None = None) -> FastAPI:
    """`batch_faults` (see `scripted_batches.py`): {"expire": share, "error": share, "invalid": share,
    "cut": True}."""
    app = FastAPI(title="scripted LLM")
    app.state.requests, app.state.faults, app.state.seen = 0, {}, set()
    app.state.cache = PromptCache()
    app.state.usage = app.state.cache.usage

    def fault(raw: dict) -> Response | None:
        """The first sight of a `fault_share` of requests fails (None: answer it)."""
        digest = body_digest(raw)
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
