"""Remote models through their own SDKs: OpenAI-compatible servers and Anthropic.

Retries are the SDKs' own (exponential backoff with jitter on 408/409/429/5xx, connection
errors and timeouts; `max_retries`); we add a thread pool for concurrency and turn whatever
still fails into one BackendError that says which server and what it answered.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from fabula.backends.base import (BackendError, ContinuationScore, GenerateSettings, Message, ScoreRequest,
                                  is_document, plain_prompt)

T = TypeVar("T")
R = TypeVar("R")


def api_key(env_var: str, default: str | None = None) -> str:
    """Keys come from the environment only, and are never written anywhere."""
    key = os.environ.get(env_var) or default
    if not key:
        raise BackendError(f"the API key is missing: set the environment variable {env_var}.")
    return key


def parallel_map(fn: Callable[[T], R], items: Sequence[T], concurrency: int) -> list[R]:
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(fn, items))


def _explain(exc: Exception, where: str) -> BackendError:
    """One sentence for the user; the key never appears (the SDKs do not echo it)."""
    import anthropic
    import openai

    if isinstance(exc, (openai.AuthenticationError, anthropic.AuthenticationError)):
        return BackendError(f"{where} rejected the API key (401): check the key's environment variable.")
    if isinstance(exc, (openai.NotFoundError, anthropic.NotFoundError)):
        return BackendError(f"{where} answered 404: unknown model or endpoint ({exc}).")
    if isinstance(exc, (openai.APIStatusError, anthropic.APIStatusError)):
        return BackendError(f"{where} kept failing after retries: HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, (openai.APIConnectionError, anthropic.APIConnectionError)):
        return BackendError(f"{where} could not be reached after retries: {exc}")
    return BackendError(f"{where} sent a reply that is not a valid API response: "
                        f"{type(exc).__name__}: {exc}")


class OpenAIBackend:
    """Any OpenAI-style server (OpenAI, vLLM, Ollama, `fabula serve`).

    Scoring uses the completions endpoint with `echo=True, logprobs=1`, as lm-evaluation-harness
    does: the server returns log-probabilities for the prompt tokens, and the continuation's are
    those whose text offset lies past the prompt. Prompts are rendered with `tokenizer`'s chat
    template when one is given (the model's own), else as a plain transcript.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0, tokenizer=None):
        import openai

        self.model = model
        self.where = f"the OpenAI-compatible server at {base_url or 'api.openai.com'}"
        # A local server usually needs no key; the real API does.
        key = api_key(api_key_env, default="EMPTY" if base_url else None)
        self.client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=max_retries, timeout=timeout)
        self.concurrency = concurrency
        self.tokenizer = tokenizer

    def _call(self, fn: Callable[[], R]) -> R:
        try:
            return fn()
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear BackendError
            raise _explain(exc, self.where) from None

    def generate(self, prompts: Sequence[list[Message]], settings: GenerateSettings) -> list[list[str]]:
        def one(job: tuple[list[Message], int]) -> str:
            messages, k = job
            reply = self._call(lambda: self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=settings.temperature,
                max_tokens=settings.max_tokens, seed=settings.seed + k))
            text = getattr(getattr(reply, "choices", [None])[0], "message", None)
            if text is None or not isinstance(text.content, (str, type(None))):
                raise BackendError(f"{self.where} returned a chat completion without a message: {reply!r:.200}")
            return text.content or ""

        jobs = [(m, k) for m in prompts for k in range(settings.n)]
        flat = parallel_map(one, jobs, self.concurrency)
        return [flat[i:i + settings.n] for i in range(0, len(flat), settings.n)]

    def render(self, messages: list[Message]) -> str:
        if self.tokenizer is not None and self.tokenizer.chat_template and not is_document(messages):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return plain_prompt(messages)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        def one(job: tuple[str, str]) -> ContinuationScore:
            prefix, continuation = job
            reply = self._call(lambda: self.client.completions.create(
                model=self.model, prompt=prefix + continuation, max_tokens=1, echo=True,
                logprobs=1, temperature=0.0))
            try:
                lp = reply.choices[0].logprobs
                offsets, values = lp.text_offset, lp.token_logprobs
            except (AttributeError, IndexError, TypeError):
                raise BackendError(
                    f"{self.where} gives no prompt log-probabilities (completions with echo=True and "
                    "logprobs): use --mode sample with this server, or a server that supports them "
                    "(vLLM, `fabula serve`).") from None
            end = len(prefix) + len(continuation)
            picked = [v for o, v in zip(offsets, values) if len(prefix) <= o < end]
            if not picked or any(v is None for v in picked):
                raise BackendError(f"{self.where} returned no log-probabilities for a continuation")
            return ContinuationScore(float(sum(picked)), len(picked))

        jobs = [(self.render(r.messages), c) for r in requests for c in r.continuations]
        flat = parallel_map(one, jobs, self.concurrency)
        out, i = [], 0
        for r in requests:
            out.append(flat[i:i + len(r.continuations)])
            i += len(r.continuations)
        return out


class AnthropicBackend:
    """Claude models through the anthropic SDK: generation only (the API gives no log-probabilities).

    The Messages API of anthropic SDK 2.x takes no `temperature`: samples come at the model's own
    setting, whatever `--temperature` says (run.json still records the value asked for).
    """

    name = "anthropic"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "ANTHROPIC_API_KEY",
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0):
        import anthropic

        self.model = model
        self.where = f"the Anthropic API at {base_url or 'api.anthropic.com'}"
        self.client = anthropic.Anthropic(base_url=base_url, api_key=api_key(api_key_env),
                                          max_retries=max_retries, timeout=timeout)
        self.concurrency = concurrency

    def generate(self, prompts: Sequence[list[Message]], settings: GenerateSettings) -> list[list[str]]:
        def one(messages: list[Message]) -> str:
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            turns = [m for m in messages if m["role"] != "system"]
            try:
                reply = self.client.messages.create(
                    model=self.model, system=system, messages=turns,
                    max_tokens=settings.max_tokens)
                return "".join(block.text for block in reply.content if block.type == "text")
            except Exception as exc:  # noqa: BLE001
                raise _explain(exc, self.where) from None

        flat = parallel_map(one, [m for m in prompts for _ in range(settings.n)], self.concurrency)
        return [flat[i:i + settings.n] for i in range(0, len(flat), settings.n)]

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        raise BackendError("the anthropic backend cannot score continuations (the API returns no "
                           "log-probabilities): use --mode sample.")
