"""The API backends against real HTTP servers on 127.0.0.1: our own OpenAI-compatible server over
a tiny model, servers that fail in the ways real ones do, and an Anthropic-style server. Evaluation's
sync backends and generation's clients are one client layer: one error message, one retry policy."""

import asyncio

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from fabula.backends import BackendError, GenerateSettings, ScoreRequest, make_backend
from fabula.backends.hf import HFBackend
from fabula.backends.server import create_app
from tests.backends.test_hf import CONTINUATIONS, MESSAGES


@pytest.fixture(scope="module")
def tiny_backend(tiny_model):
    return HFBackend(str(tiny_model))


def test_openai_scores_through_a_real_server_equal_local_scores(tiny_backend, tiny_model, live_server):
    with live_server(create_app(tiny_backend, "tiny")) as server:
        remote = make_backend("openai", "tiny", base_url=server.url, tokenizer=str(tiny_model), concurrency=4)
        got = remote.score([ScoreRequest(MESSAGES, CONTINUATIONS)])[0]
    want = tiny_backend.score([ScoreRequest(MESSAGES, CONTINUATIONS)])[0]
    for a, b in zip(got, want):
        assert a.n_tokens == b.n_tokens
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3)


def test_openai_generate_through_a_real_server(tiny_backend, live_server):
    with live_server(create_app(tiny_backend, "tiny")) as server:
        remote = make_backend("openai", "tiny", base_url=server.url)
        replies = remote.generate([MESSAGES, MESSAGES], GenerateSettings(n=3, max_tokens=5))
    assert [len(r) for r in replies] == [2 * 0 + 3, 3] and all(isinstance(t, str) for r in replies for t in r)


def flaky_app(failures: list[int]) -> tuple[FastAPI, list[int]]:
    """Answers with each status in `failures` once, then with a good chat completion."""
    app, calls = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        calls.append(1)
        if len(calls) <= len(failures):
            return JSONResponse({"error": {"message": "busy"}}, status_code=failures[len(calls) - 1])
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}

    return app, calls


def test_openai_retries_429_and_5xx_then_succeeds(live_server):
    app, calls = flaky_app([429, 500, 503])
    with live_server(app) as server:
        remote = make_backend("openai", "m", base_url=server.url, max_retries=4, retry_base=0.01, concurrency=1)
        assert remote.generate([MESSAGES], GenerateSettings()) == [["ok"]]
    assert len(calls) == 4


def test_a_reply_without_text_is_an_answer_not_a_failure(live_server):
    """A refusal comes back with `content: null`: the honeypot saw no action, nothing to retry."""
    app, calls = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        calls.append(1)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}}]}

    with live_server(app) as server:
        remote = make_backend("openai", "m", base_url=server.url, max_retries=3, retry_base=0.01, concurrency=1)
        assert remote.generate([MESSAGES], GenerateSettings()) == [[""]]
    assert len(calls) == 1


def test_openai_gives_up_with_a_clear_error_after_retries(live_server):
    app, calls = flaky_app([500] * 10)
    with live_server(app) as server:
        remote = make_backend("openai", "m", base_url=server.url, max_retries=2, retry_base=0.01)
        with pytest.raises(BackendError, match=r"at http://127.0.0.1:\d+/v1: HTTP 500; gave up after 2 retries"):
            remote.generate([MESSAGES], GenerateSettings())
    assert len(calls) == 3


def test_openai_timeout_is_retried(live_server):
    app, calls = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def slow(request: Request):
        calls.append(1)
        await asyncio.sleep(2 if len(calls) == 1 else 0)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "late"}, "finish_reason": "stop"}]}

    with live_server(app) as server:
        remote = make_backend("openai", "m", base_url=server.url, timeout=0.5, max_retries=2, retry_base=0.01)
        assert remote.generate([MESSAGES], GenerateSettings()) == [["late"]]
    assert len(calls) == 2


def test_garbage_and_missing_logprobs_are_reported(live_server):
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def garbage(request: Request):
        return PlainTextResponse("<html>gateway</html>", media_type="application/json")

    @app.post("/v1/completions")
    async def no_logprobs(request: Request):
        return {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "text": "hi", "finish_reason": "length", "logprobs": None}]}

    with live_server(app) as server:
        remote = make_backend("openai", "m", base_url=server.url, max_retries=0)
        with pytest.raises(BackendError, match="malformed reply.*gave up after 0 retries"):
            remote.generate([MESSAGES], GenerateSettings())
        with pytest.raises(BackendError, match="no prompt log-probabilities.*--mode sample"):
            remote.score([ScoreRequest(MESSAGES, ["x"])])


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(BackendError, match="set the environment variable OPENAI_API_KEY"):
        make_backend("openai", "gpt-x")
    with pytest.raises(BackendError, match="MY_KEY"):
        make_backend("openai", "gpt-x", api_key_env="MY_KEY")
    with pytest.raises(BackendError, match="ANTHROPIC_API_KEY"):
        make_backend("anthropic", "claude-x")


def anthropic_app(statuses: list[int]) -> tuple[FastAPI, list[dict]]:
    """A Messages API server: fails with `statuses` first, then echoes what it received."""
    app, seen = FastAPI(), []

    @app.post("/v1/messages")
    async def messages(request: Request):
        body = await request.json()
        seen.append({"body": body, "headers": dict(request.headers)})
        if len(seen) <= len(statuses):
            return JSONResponse({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                                status_code=statuses[len(seen) - 1])
        text = f"system={''.join(block['text'] for block in body.get('system', []))} turns={len(body['messages'])}"
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1}}

    return app, seen


def test_anthropic_generates_with_system_split_out_and_retries(monkeypatch, live_server):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret")
    app, seen = anthropic_app([529, 429])
    with live_server(app) as server:
        backend = make_backend("anthropic", "claude-x", base_url=server.url.removesuffix("/v1"), max_retries=3,
                               retry_base=0.01)
        replies = backend.generate([MESSAGES], GenerateSettings(n=1, temperature=1.0, max_tokens=20))
    assert replies == [["system=You are Orion at Northwind. turns=1"]]
    assert len(seen) == 3 and "sk-test-secret" in str(seen[-1]["headers"])
    assert "cache_control" not in str(seen[-1]["body"])  # evaluation writes nothing to the prompt cache
    with pytest.raises(BackendError, match="cannot score"):
        backend.score([ScoreRequest(MESSAGES, ["x"])])



@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_a_rejected_key_is_one_message_for_generation_and_evaluation(monkeypatch, live_server, backend):
    """Both paths meet the same real 401 and say the same sentence, without the key in it."""
    from fabula.backends.clients import make_client

    monkeypatch.setenv(f"{backend.upper()}_API_KEY", "sk-test-secret")
    app, seen = (flaky_app if backend == "openai" else anthropic_app)([401] * 10)
    with live_server(app) as server:
        url = server.url if backend == "openai" else server.url.removesuffix("/v1")
        with pytest.raises(BackendError) as evaluation:
            make_backend(backend, "m", base_url=url, retry_base=0.01).generate([MESSAGES], GenerateSettings())

        async def generation():
            client = make_client(backend, "m", base_url=url)
            try:
                await client.complete(MESSAGES, GenerateSettings())
            finally:
                await client.close()

        with pytest.raises(BackendError) as generated:
            asyncio.run(generation())
    where = f"the OpenAI-compatible server at {url}" if backend == "openai" else f"the Anthropic API at {url}"
    assert str(evaluation.value) == str(generated.value) == (
        f"{where} rejected the API key (401): check the key's environment variable.")
    assert len(seen) == 2 and "sk-test-secret" not in str(evaluation.value)
