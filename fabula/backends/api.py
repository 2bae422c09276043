"""The sync `Backend` over the async clients of `clients.py`, for evaluation.

Each `generate` or `score` runs its calls in one event loop, `concurrency` at a time, each under
the clients' one `Retry` policy; whatever still fails is the clients' one BackendError, which says
which server and what it answered. Generation uses the same clients through `fabula.data.calls`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Awaitable, Callable, Sequence, TypeVar

from fabula.backends.base import ContinuationScore, GenerateSettings, Message, ScoreRequest, is_document, plain_prompt
from fabula.backends.clients import Client, Retry

J = TypeVar("J")
R = TypeVar("R")


class APIBackend:
    """A remote model (`openai` or `anthropic`) behind the sync Backend interface.

    `connect` builds a client; each call builds a fresh one inside its own event loop (an SDK
    client's connections belong to the loop that opened them). Scoring renders prompts with
    `tokenizer`'s chat template when one is given (the model's own), else as a plain transcript.
    """

    def __init__(self, connect: Callable[[], Client], concurrency: int = 8, retry: Retry | None = None,
                 tokenizer=None):
        client = connect()  # a missing key or an unknown backend fails here, before any work
        self.name, self.model, self.where = client.backend, client.model, client.where
        self.connect, self.concurrency, self.tokenizer = connect, concurrency, tokenizer
        self.retry = retry or Retry()

    def _run(self, call: Callable[[Client, J], Awaitable[R]], jobs: Sequence[J]) -> list[R]:
        async def every() -> list[R]:
            client, slots = self.connect(), asyncio.Semaphore(max(1, self.concurrency))

            async def one(job: J) -> R:
                async with slots:
                    return await self.retry(lambda: call(client, job))

            try:
                return await asyncio.gather(*(one(job) for job in jobs))
            finally:
                await client.close()

        return asyncio.run(every())

    def generate(self, prompts: Sequence[list[Message]], settings: GenerateSettings) -> list[list[str]]:
        """`settings.n` replies per prompt, the k-th sampled with seed `settings.seed + k`."""
        jobs = [(m, replace(settings, n=1, seed=settings.seed + k)) for m in prompts for k in range(settings.n)]
        flat = self._run(lambda client, job: client.complete(*job), jobs)
        return [[done.text for done in flat[i:i + settings.n]] for i in range(0, len(flat), settings.n)]

    def render(self, messages: list[Message]) -> str:
        if self.tokenizer is not None and self.tokenizer.chat_template and not is_document(messages):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return plain_prompt(messages)

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        jobs = [(self.render(r.messages), c) for r in requests for c in r.continuations]
        flat = self._run(lambda client, job: client.score(*job), jobs)
        out, i = [], 0
        for r in requests:
            out.append(flat[i:i + len(r.continuations)])
            i += len(r.continuations)
        return out
