"""Every model call of a generation run goes through one `Caller`: cache, pace, retry, account.

- cache: a call already made (same request, same seed) is read back from SQLite and costs nothing;
  two items asking the same thing at once share one call;
- pace: at most `concurrency` calls in flight (fewer while the provider answers 429: `limit.py`)
  and at most `rpm` started per minute;
- retry: the clients' one `Retry` policy (`fabula.backends.clients`), which evaluation uses too;
- account: tokens and dollars spent, and a `max_cost` past which no new call starts.

With a batch lane (`lane.py`), a call that misses the cache waits there instead of being made,
and comes back answered at batch prices through the same cache.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from fabula.backends.base import GenerateSettings
from fabula.backends.clients import Completion, Retry, Transient
from fabula.data.cache import CallCache, call_key
from fabula.data.limit import AdaptiveLimit


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens, and the provider's discounts on them."""

    input: float
    output: float
    cache_read: float = 1.0   # input read from the prompt cache, as a share of the input price
    cache_write: float = 1.0  # input written to it, as a share of the input price
    batch: float = 1.0        # the batch lane's price, as a share of the live one

    def cost(self, input_tokens: int, output_tokens: int, cached: int = 0, written: int = 0,
             batch: bool = False) -> float:
        """`input_tokens` counts the whole prompt; `cached` and `written` are the parts of it that
        were read from and written to the prompt cache."""
        plain = input_tokens - cached - written
        dollars = (self.input * (plain + cached * self.cache_read + written * self.cache_write)
                   + output_tokens * self.output) / 1e6
        return dollars * (self.batch if batch else 1.0)

    def worst(self, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        """The most a call can cost: every input token at the dearer of plain or cache-write price."""
        return self.cost(input_tokens, output_tokens, written=input_tokens if self.cache_write > 1 else 0,
                         batch=batch)


# What each provider takes off (or adds to) the list price, as published on 2026-12-02: Anthropic
# bills cache reads at 10% of the input price and cache writes (5-minute lifetime) at 125%; OpenAI
# bills cached input at 50% (the assumption; some models give 75% or 90% off) and nothing
# extra for writes; both batch APIs take 50% off, and the cache discounts apply on top. Settings
# (cache_read_rate, cache_write_rate, batch_discount) override them; the dry run prints them.
DISCOUNTS = {"anthropic": {"cache_read": 0.10, "cache_write": 1.25, "batch": 0.5},
             "openai": {"cache_read": 0.50, "cache_write": 1.0, "batch": 0.5},
             "hf": {}}


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


class ItemFailed(Exception):
    """The provider rejected a call for good, or its retries ran out in the batch lane: the item
    is not saved (a rerun tries it again) and the reason is recorded."""


class Unparseable(Exception):
    """A stage's parser rejected every attempt; `text` is the last reply."""

    def __init__(self, text: str):
        super().__init__(text[:200])
        self.text = text


class Caller:
    def __init__(self, client, cache: CallCache, *, concurrency: int = 8, rpm: float | None = None,
                 max_retries: int = 6, retry_base: float = 1.0, retry_cap: float = 60.0,
                 prices: Prices | None = None, max_cost: float | None = None, batches=None,
                 say: Callable[[str], None] | None = None):
        self.client, self.cache = client, cache
        self.slots = AdaptiveLimit(concurrency, say=say)
        self.batches = batches     # the provider's batch API (`batches.py`), or None: live only
        self.lane = None           # set by the run when the batch lane is on
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_start = 0.0
        self.pace_lock = asyncio.Lock()
        self.retry = Retry(max_retries, retry_base, retry_cap)
        self.prices, self.max_cost = prices, max_cost
        self.spent = 0.0
        self.committed = 0.0       # submitted batches not yet answered, at their worst-case cost
        # calls, cached, retries, batched, input_tokens, output_tokens, cached_tokens, cache_write_tokens
        self.counts: Counter = Counter()
        self.inflight: dict[str, asyncio.Future] = {}

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
        if self.lane is not None and self.batches is not None:
            return (await self.lane.ask(self, key, messages, settings)).text
        if key in self.inflight:  # another item is paying for this exact call right now
            return await asyncio.shield(self.inflight[key])
        future = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            done = await self.live(key, messages, settings)
            future.set_result(done.text)
            return done.text
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self.inflight[key]

    async def live(self, key: str, messages: list[dict], settings: GenerateSettings) -> Completion:
        """One call made now, paid at live prices, and cached."""
        done = await self._call(messages, settings)
        self.cache.put(key, done.text, done.input_tokens, done.output_tokens, self.client.model)
        return done

    def account(self, done: Completion, batch: bool = False) -> None:
        for name in ("input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens"):
            self.counts[name] += getattr(done, name)
        if self.prices:
            self.spent += self.prices.cost(done.input_tokens, done.output_tokens, done.cached_tokens,
                                           done.cache_write_tokens, batch=batch)

    def retried(self) -> None:
        self.counts["retries"] += 1

    async def _call(self, messages: list[dict], settings: GenerateSettings) -> Completion:
        async def attempt() -> Completion:
            if self.max_cost is not None and self.spent + self.committed >= self.max_cost:
                raise BudgetExhausted(f"${self.spent:.2f} spent, max_cost ${self.max_cost:.2f}")
            await self._pace()
            async with self.slots:
                self.counts["calls"] += 1
                try:
                    done = await self.client.complete(messages, settings)
                except Transient as exc:
                    if exc.status == 429:
                        self.slots.throttled()
                    raise
                self.slots.succeeded()
                return done

        done = await self.retry(attempt, on_retry=self.retried)
        self.account(done)
        return done

    async def _pace(self) -> None:
        if not self.interval:
            return
        async with self.pace_lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        await asyncio.sleep(start - now)
