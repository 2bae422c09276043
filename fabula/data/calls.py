"""Every model call of a generation run goes through one `Caller`: cache, pace, retry, account.

- cache: a call already made (same request, same seed) is read back from SQLite and costs nothing;
  two items asking the same thing at once share one call;
- pace: at most `concurrency` calls in flight and at most `rpm` started per minute;
- retry: transient failures back off exponentially with jitter (or as long as the server's
  Retry-After asks), up to `max_retries`;
- account: tokens and dollars spent, and a `max_cost` past which no new call starts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from fabula.backends.base import BackendError, GenerateSettings
from fabula.data.cache import CallCache, call_key
from fabula.data.clients import Completion, Transient


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


# List prices as published in 2025 (USD per million input / output tokens), matched by prefix,
# longest first. Prices change: --price-in / --price-out override them.
PRICES = {
    "claude-opus-4": Prices(15.0, 75.0), "claude-sonnet-4": Prices(3.0, 15.0),
    "claude-haiku-4": Prices(1.0, 5.0), "claude-3-5-haiku": Prices(0.8, 4.0),
    "claude-3-7-sonnet": Prices(3.0, 15.0), "claude-3-5-sonnet": Prices(3.0, 15.0),
    "gpt-4o-mini": Prices(0.15, 0.6), "gpt-4o": Prices(2.5, 10.0),
    "gpt-4.1-nano": Prices(0.1, 0.4), "gpt-4.1-mini": Prices(0.4, 1.6), "gpt-4.1": Prices(2.0, 8.0),
}


def known_prices(model: str) -> Prices | None:
    for prefix in sorted(PRICES, key=len, reverse=True):
        if model.startswith(prefix):
            return PRICES[prefix]
    return None


class BudgetExhausted(Exception):
    """`max_cost` is spent: the run stops starting calls and keeps everything already paid for."""


class Unparseable(Exception):
    """A stage's parser rejected every attempt; `text` is the last reply."""

    def __init__(self, text: str):
        super().__init__(text[:200])
        self.text = text


class Caller:
    def __init__(self, client, cache: CallCache, *, concurrency: int = 8, rpm: float | None = None,
                 max_retries: int = 6, retry_base: float = 1.0, retry_cap: float = 60.0,
                 prices: Prices | None = None, max_cost: float | None = None):
        self.client, self.cache = client, cache
        self.slots = asyncio.Semaphore(concurrency)
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_start = 0.0
        self.pace_lock = asyncio.Lock()
        self.max_retries, self.retry_base, self.retry_cap = max_retries, retry_base, retry_cap
        self.prices, self.max_cost = prices, max_cost
        self.spent = 0.0
        self.counts: Counter = Counter()  # calls, cached, retries, input_tokens, output_tokens
        self.inflight: dict[str, asyncio.Future] = {}
        self.jitter = random.Random(0)

    def request(self, messages: list[dict], settings: GenerateSettings, attempt: int) -> dict:
        return {"backend": self.client.backend, "model": self.client.model, "messages": messages,
                "temperature": settings.temperature, "max_tokens": settings.max_tokens,
                "seed": settings.seed, "attempt": attempt}

    async def __call__(self, messages: list[dict], settings: GenerateSettings,
                       parse: Callable[[str], object] | None = None, attempts: int = 3):
        """The reply (parsed by `parse`, which raises ValueError on a malformed reply; a malformed
        reply is asked again, sampled with another seed, up to `attempts` times, then Unparseable).
        Greedy decoding would only repeat the malformed reply, so re-asks use temperature >= 0.7."""
        for attempt in range(attempts if parse else 1):
            temperature = settings.temperature if attempt == 0 else max(settings.temperature, 0.7)
            asked = GenerateSettings(n=1, temperature=temperature, max_tokens=settings.max_tokens,
                                     seed=settings.seed + 7919 * attempt)
            text = await self._once(self.request(messages, asked, attempt), messages, asked)
            if parse is None:
                return text
            try:
                return parse(text)
            except ValueError:
                self.counts["unparseable"] += 1
        raise Unparseable(text)

    async def _once(self, request: dict, messages: list[dict], settings: GenerateSettings) -> str:
        key = call_key(request)
        hit = self.cache.get(key)
        if hit is not None:
            self.counts["cached"] += 1
            return hit[0]
        if key in self.inflight:  # another item is paying for this exact call right now
            return await asyncio.shield(self.inflight[key])
        future = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            done = await self._call(messages, settings)
            self.cache.put(key, done.text, done.input_tokens, done.output_tokens, self.client.model)
            future.set_result(done.text)
            return done.text
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self.inflight[key]

    async def _call(self, messages: list[dict], settings: GenerateSettings) -> Completion:
        for attempt in range(self.max_retries + 1):
            if self.max_cost is not None and self.spent >= self.max_cost:
                raise BudgetExhausted(f"${self.spent:.2f} spent, max_cost ${self.max_cost:.2f}")
            await self._pace()
            try:
                async with self.slots:
                    self.counts["calls"] += 1
                    done = await self.client.complete(messages, settings)
            except Transient as exc:
                if attempt == self.max_retries:
                    raise BackendError(f"{exc}; gave up after {self.max_retries} retries") from None
                self.counts["retries"] += 1
                backoff = min(self.retry_cap, self.retry_base * 2 ** attempt) * self.jitter.uniform(0.5, 1.5)
                await asyncio.sleep(max(backoff, exc.retry_after or 0.0))
                continue
            self.counts["input_tokens"] += done.input_tokens
            self.counts["output_tokens"] += done.output_tokens
            if self.prices:
                self.spent += self.prices.cost(done.input_tokens, done.output_tokens)
            return done
        raise AssertionError("unreachable")

    async def _pace(self) -> None:
        if not self.interval:
            return
        async with self.pace_lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        await asyncio.sleep(start - now)
