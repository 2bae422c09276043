"""How many live calls may be in flight: fewer while a provider keeps answering 429, more again as
calls succeed (additive increase, multiplicative decrease, as TCP does). A fixed setting is either
too low for a quiet provider or too high for one shedding load; a long run meets both."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable


class AdaptiveLimit:
    """`async with limit:` waits for a free slot among `level` (at most `ceiling`).

    `burst` 429s within `window` seconds halve the level (one 429 is noise, the retry handles it);
    `level` successes in a row raise it by one, so recovery is as gradual as the load it probes.
    Each change is said through `say` (the run's console)."""

    def __init__(self, ceiling: int, *, burst: int = 3, window: float = 10.0,
                 say: Callable[[str], None] | None = None):
        self.ceiling = self.level = ceiling
        self.burst, self.window, self.say = burst, window, say or (lambda text: None)
        self.in_flight, self.streak = 0, 0
        self.throttles: deque[float] = deque()
        self.lowest = ceiling
        self.free = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self.free:
            await self.free.wait_for(lambda: self.in_flight < self.level)
            self.in_flight += 1

    async def __aexit__(self, *exc) -> None:
        async with self.free:
            self.in_flight -= 1
            self.free.notify_all()

    def throttled(self) -> None:
        now = time.monotonic()
        self.streak = 0
        self.throttles.append(now)
        while now - self.throttles[0] > self.window:
            self.throttles.popleft()
        if len(self.throttles) >= self.burst and self.level > 1:
            self.level = max(1, self.level // 2)
            self.lowest = min(self.lowest, self.level)
            self.say(f"{len(self.throttles)} rate limits (429) within {self.window:.0f} s: "
                     f"{self.level} calls in flight now (of {self.ceiling})")
            self.throttles.clear()

    def succeeded(self) -> None:
        self.streak += 1
        if self.level < self.ceiling and self.streak >= self.level:
            self.level += 1
            self.streak = 0
            self.say(f"calls succeed again: {self.level} in flight now (of {self.ceiling})")
