"""Adaptive live concurrency: sustained 429s lower the calls in flight, successes raise them again."""

import asyncio

from fabula.backends.base import GenerateSettings
from fabula.backends.clients import Completion, Transient
from fabula.data.cache import CallCache
from fabula.data.calls import Caller
from fabula.data.limit import AdaptiveLimit


def test_one_429_is_noise_a_burst_halves_the_level_and_successes_raise_it():
    said = []
    limit = AdaptiveLimit(16, burst=3, window=10.0, say=said.append)
    limit.throttled()
    limit.throttled()
    assert limit.level == 16
    limit.throttled()
    assert limit.level == 8 and "8 calls in flight now (of 16)" in said[-1]
    for _ in range(7):
        limit.succeeded()
    assert limit.level == 8
    limit.succeeded()
    assert limit.level == 9 and "9 in flight now" in said[-1]


class Crowded:
    """A provider that answers 429 whenever more than `room` calls are in flight."""

    backend, model = "script", "m"

    def __init__(self, room: int):
        self.room, self.in_flight, self.peak_after_throttle, self.throttles = room, 0, 0, 0

    async def complete(self, messages, settings):
        self.in_flight += 1
        try:
            await asyncio.sleep(0.01)
            if self.in_flight > self.room:
                self.throttles += 1
                raise Transient("HTTP 429", retry_after=0.0, status=429)
            return Completion(f"reply {settings.seed}", 10, 10)
        finally:
            self.in_flight -= 1


def test_a_crowded_provider_gets_fewer_calls_in_flight_and_every_call_succeeds(tmp_path):
    said = []
    client = Crowded(room=3)
    caller = Caller(client, CallCache(tmp_path / "c.sqlite"), concurrency=16, retry_base=0.001, max_retries=30,
                    say=said.append)

    async def run():
        settings = [GenerateSettings(n=1, temperature=0.0, max_tokens=10, seed=i) for i in range(200)]
        return await asyncio.gather(*(caller([{"role": "user", "content": "hi"}], s) for s in settings))

    replies = asyncio.run(run())
    assert replies == [f"reply {i}" for i in range(200)]
    assert caller.slots.lowest <= 4 and any("rate limits (429)" in line for line in said)
    assert client.throttles < 200  # a fixed 16 in flight would have drawn a 429 on most calls
    assert any("calls succeed again" in line for line in said)
