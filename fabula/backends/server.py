"""`fabula serve`: a small OpenAI-compatible server over a local Hugging Face model.

It lets any OpenAI-style client (our `openai` backend, Inspect, a notebook) talk to a model
fabula trained, and it is the real server the tests run the `openai` backend against. It
serves /v1/models, /v1/chat/completions and /v1/completions (with `echo` + `logprobs`, which
is how clients score prompts). One request at a time: the model is not thread-safe.
"""

from __future__ import annotations

import threading
import time
import uuid

import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from fabula.backends.base import GenerateSettings
from fabula.backends.hf import HFBackend


class ChatRequest(BaseModel):
    model: str
    messages: list[dict]
    temperature: float = 1.0
    max_tokens: int | None = 256
    n: int = 1
    seed: int | None = None


class CompletionRequest(BaseModel):
    model: str
    prompt: str
    max_tokens: int | None = 16
    temperature: float = 1.0
    echo: bool = False
    logprobs: int | None = None
    seed: int | None = None


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app(backend: HFBackend, served_name: str | None = None) -> FastAPI:
    app = FastAPI(title="fabula serve")
    lock = threading.Lock()
    name = served_name or backend.model

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "fabula"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict:
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in req.messages]
        settings = GenerateSettings(n=req.n, temperature=req.temperature, max_tokens=req.max_tokens or 256,
                                    seed=req.seed or 0)
        with lock:
            replies = backend.generate([messages], settings)[0]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": name,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        for i, text in enumerate(replies)],
            "usage": _usage(0, 0),
        }

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict:
        if not req.prompt:
            raise HTTPException(400, "prompt must not be empty")
        with lock:
            text, tokens, logprobs, offsets = _complete(backend, req)
        body = {"text": text, "index": 0, "finish_reason": "length", "logprobs": None}
        if req.logprobs is not None:
            body["logprobs"] = {"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets,
                                "top_logprobs": None}
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": name, "choices": [body], "usage": _usage(len(tokens), req.max_tokens or 0)}

    return app


@torch.inference_mode()
def _complete(backend: HFBackend, req: CompletionRequest):
    """Greedy/sampled continuation of a raw prompt, with per-token log-probabilities and offsets."""
    tok = backend.tokenizer
    enc = tok(req.prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc.input_ids
    offsets = [start for start, _ in enc.offset_mapping]
    new_ids: list[int] = []
    logits = backend.lm(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    prompt_lp = [None] + [logp[j - 1, t].item() for j, t in enumerate(ids) if j > 0]
    gen_lp: list[float] = []
    for _ in range(req.max_tokens or 0):
        nxt = torch.log_softmax(backend.lm(torch.tensor([ids + new_ids])).logits[0, -1].float(), -1)
        token = int(nxt.argmax()) if req.temperature <= 0 else int(torch.multinomial(nxt.exp(), 1))
        new_ids.append(token)
        gen_lp.append(nxt[token].item())
        if token == tok.eos_token_id:
            break
    pieces = [tok.decode([t]) for t in new_ids]
    gen_offsets, at = [], len(req.prompt)
    for piece in pieces:
        gen_offsets.append(at)
        at += len(piece)
    text = "".join(pieces)
    if req.echo:
        return (req.prompt + text, tok.convert_ids_to_tokens(ids) + pieces, prompt_lp + gen_lp,
                offsets + gen_offsets)
    return text, pieces, gen_lp, gen_offsets


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, served_name: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(HFBackend(model), served_name), host=host, port=port, log_level="warning")
