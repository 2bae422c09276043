"""The one client layer for remote and local models: async clients, their errors, and the retry policy.

Each client does one call and says what went wrong: a `Transient` failure (429, 5xx, timeout, a
connection drop, a reply that is not valid JSON) is worth retrying; anything else (a bad key, an
unknown model) is a `BackendError` that stops the run. `Retry` is the one policy for both:
generation (`fabula.data.calls`, which adds its cache, pacing and budget) and evaluation (the sync
backends of `api.py`). So the SDKs' own retries are switched off here, and a provider quirk is
handled in one place.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from fabula.backends.base import BackendError, ContinuationScore, GenerateSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int            # all of the prompt, cached or not
    output_tokens: int
    cached_tokens: int = 0       # read from the provider's prompt cache: billed at the cache-read price
    cache_write_tokens: int = 0  # written to it (Anthropic bills them above the input price)


class Transient(Exception):
    """A failure worth retrying; `retry_after` is the server's hint in seconds, if it gave one;
    `status` the HTTP status (429 tells generation's live lane to lower its concurrency)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after, self.status = retry_after, status


def api_key(env_var: str, default: str | None = None) -> str:
    """Keys come from the environment only, and are never written anywhere."""
    key = os.environ.get(env_var) or default
    if not key:
        raise BackendError(f"the API key is missing: set the environment variable {env_var}.")
    return key


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None


def retryable(status: int | None) -> bool:
    """HTTP statuses worth asking again: timeouts, conflicts, rate limits, server errors."""
    return status is not None and (status in (408, 409, 429) or status >= 500)


def classify(exc: Exception, where: str) -> Exception:
    """Transient or fatal, for both SDKs (their exception trees have the same shape). The key never
    appears: the SDKs do not echo it."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        if retryable(status):
            return Transient(f"{where}: HTTP {status}", _retry_after(exc), status)
        if status == 401:
            return BackendError(f"{where} rejected the API key (401): check the key's environment variable.")
        if status == 404:
            return BackendError(f"{where} answered 404: unknown model or endpoint ({getattr(exc, 'message', exc)})")
        return BackendError(f"{where} answered HTTP {status}: {getattr(exc, 'message', exc)}")
    name = type(exc).__name__
    if "Timeout" in name or "Connection" in name:
        return Transient(f"{where}: {name}")
    # A 200 whose body is not the JSON the SDK expects (a proxy's error page, a cut stream).
    return Transient(f"{where}: malformed reply ({name}: {str(exc)[:120]})")


async def request(where: str, create: Callable[..., Awaitable[T]], **params) -> T:
    """One SDK call, its failure sorted into transient or fatal."""
    try:
        return await create(**params)
    except Exception as exc:  # noqa: BLE001 - sorted into transient / fatal
        raise classify(exc, where) from None


@dataclass
class Retry:
    """Transient failures back off exponentially with jitter (or as long as the server's
    Retry-After asks), up to `max_retries` times; then a BackendError says what kept failing."""

    max_retries: int = 6
    base: float = 1.0   # seconds before the first retry, doubled each time
    cap: float = 60.0
    jitter: random.Random = field(default_factory=lambda: random.Random(0))

    async def __call__(self, attempt: Callable[[], Awaitable[T]], on_retry: Callable[[], None] | None = None,
                       hint: str = "") -> T:
        for n in range(self.max_retries + 1):
            try:
                return await attempt()
            except Transient as exc:
                if n == self.max_retries:
                    raise BackendError(f"{exc}; gave up after {self.max_retries} retries{hint}") from None
                if on_retry is not None:
                    on_retry()
                backoff = min(self.cap, self.base * 2 ** n) * self.jitter.uniform(0.5, 1.5)
                await asyncio.sleep(max(backoff, exc.retry_after or 0.0))
        raise AssertionError("unreachable")


class OpenAIClient:
    """Any OpenAI-style server (OpenAI, vLLM, Ollama, `fabula serve`)."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 120.0):
        import openai

        self.model, self.backend = model, "openai"
        self.where = f"the OpenAI-compatible server at {base_url or 'api.openai.com'}"
        # A local server usually needs no key; the real API does.
        key = api_key(api_key_env, default="EMPTY" if base_url else None)
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout)

    def params(self, messages: list[dict], settings: GenerateSettings) -> dict:
        """The request, the same in the live and the batch lane. OpenAI caches a shared prefix by
        itself when it comes first: the system turn (constitution, instructions) already does."""
        return {"model": self.model, "messages": messages, "temperature": settings.temperature,
                "max_tokens": settings.max_tokens, "seed": settings.seed}

    def completion(self, reply) -> Completion:
        """A `ChatCompletion` (live, or a batch's output line) as text and billed tokens."""
        message = reply.choices[0].message if reply.choices else None
        if message is None:
            raise Transient(f"{self.where}: a chat completion without a message")
        # no text (a refusal, a reply of tool calls only) is an answer, not a failure to retry
        text = message.content or ""
        if not isinstance(text, str):
            raise Transient(f"{self.where}: a chat completion whose text is {type(text).__name__}")
        usage = reply.usage
        details = getattr(usage, "prompt_tokens_details", None)
        return Completion(text, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0,
                          cached_tokens=getattr(details, "cached_tokens", 0) or 0)

    async def complete(self, messages: list[dict], settings: GenerateSettings) -> Completion:
        reply = await request(self.where, self.client.chat.completions.create, **self.params(messages, settings))
        return self.completion(reply)

    async def score(self, prefix: str, continuation: str) -> ContinuationScore:
        """The continuation's log-probability after `prefix`, as lm-evaluation-harness scores: the
        completions endpoint with `echo=True, logprobs=1` returns the prompt tokens' log-probabilities,
        and the continuation's are those whose text offset lies past the prefix."""
        reply = await request(self.where, self.client.completions.create, model=self.model,
                              prompt=prefix + continuation, max_tokens=1, echo=True, logprobs=1, temperature=0.0)
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

    async def close(self) -> None:
        await self.client.close()


class AnthropicClient:
    """Claude: the system turn goes in `system`, marked for the prompt cache (`cache_control`) so
    every call after the first reads the constitution at a tenth of the price; temperature is the
    model's own (the Messages API of SDK 2.x takes none)."""

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "ANTHROPIC_API_KEY",
                 timeout: float = 120.0, prompt_cache: bool = True):
        import anthropic

        self.model, self.backend, self.prompt_cache = model, "anthropic", prompt_cache
        self.where = f"the Anthropic API at {base_url or 'api.anthropic.com'}"
        self.client = anthropic.AsyncAnthropic(base_url=base_url, api_key=api_key(api_key_env), max_retries=0,
                                               timeout=timeout)

    def params(self, messages: list[dict], settings: GenerateSettings) -> dict:
        """The request, the same in the live and the batch lane (a batch item's `params`)."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        block = {"type": "text", "text": system} | ({"cache_control": {"type": "ephemeral"}} if self.prompt_cache else {})
        return {"model": self.model, "max_tokens": settings.max_tokens,
                "messages": [m for m in messages if m["role"] != "system"]} | ({"system": [block]} if system else {})

    @staticmethod
    def completion(message) -> Completion:
        """A `Message` (live, or a batch's result) as text and billed tokens. Anthropic counts
        cache reads and writes apart from `input_tokens`; here they are part of the prompt."""
        usage = message.usage
        read, written = usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0
        return Completion("".join(block.text for block in message.content if block.type == "text"),
                          (usage.input_tokens or 0) + read + written, usage.output_tokens or 0,
                          cached_tokens=read, cache_write_tokens=written)

    async def complete(self, messages: list[dict], settings: GenerateSettings) -> Completion:
        return self.completion(await request(self.where, self.client.messages.create,
                                             **self.params(messages, settings)))

    async def score(self, prefix: str, continuation: str) -> ContinuationScore:
        raise BackendError("the anthropic backend cannot score continuations (the API returns no "
                           "log-probabilities): use --mode sample.")

    async def close(self) -> None:
        await self.client.close()


class LocalClient:
    """A local Hugging Face model, batched: calls that arrive together share one `generate`.

    Written by hand because no library batches independent async requests into one forward pass
    for a plain transformers model; on 2 cores batch 8 samples about 4.6x faster than batch 1.
    """

    def __init__(self, model: str, batch_size: int = 8, dtype: str = "float32"):
        from fabula.backends.hf import HFBackend

        self.model, self.backend = model, "hf"
        self.hf = HFBackend(model, batch_size=batch_size, dtype=dtype)
        self.batch_size = batch_size
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def complete(self, messages: list[dict], settings: GenerateSettings) -> Completion:
        if self.worker is None:
            self.queue = asyncio.Queue()
            self.worker = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((messages, settings, future))
        return await future

    async def _serve(self) -> None:
        while True:
            batch = [await self.queue.get()]
            await asyncio.sleep(0.01)  # let the other calls of this round arrive
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            groups: dict[tuple, list] = {}
            for job in batch:  # one generate per sampling setting; the seed of the first is used
                groups.setdefault((job[1].temperature, job[1].max_tokens), []).append(job)
            for jobs in groups.values():
                try:
                    replies = await asyncio.to_thread(self.hf.generate, [j[0] for j in jobs], jobs[0][1])
                except Exception as exc:  # noqa: BLE001 - handed to each waiting call
                    for job in jobs:
                        job[2].set_exception(exc)
                    continue
                for job, reply in zip(jobs, replies):
                    tokens = len(self.hf.tokenizer(reply[0]).input_ids)
                    job[2].set_result(Completion(reply[0], 0, tokens))

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()


Client = OpenAIClient | AnthropicClient | LocalClient


def make_client(backend: str, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                timeout: float = 120.0, batch_size: int = 8, prompt_cache: bool = True) -> Client:
    """The one factory: a client by backend name, failing early on a missing key or a bad name."""
    if backend == "openai":
        return OpenAIClient(model, base_url, api_key_env or "OPENAI_API_KEY", timeout)
    if backend == "anthropic":
        return AnthropicClient(model, base_url, api_key_env or "ANTHROPIC_API_KEY", timeout, prompt_cache)
    if backend == "hf":
        return LocalClient(model, batch_size)
    raise BackendError(f"unknown backend {backend!r}: choose one of hf, openai, anthropic.")
