"""The Caller: cache, shared in-flight calls, retries, re-asks of malformed replies, budget.

The client is mostly a scripted stand-in for a model (the Caller is what is under test); the last
test runs the real client against a real server, and test_generate.py the whole HTTP path.
"""

import asyncio

import pytest

from fabula.backends.base import BackendError, GenerateSettings
from fabula.backends.clients import Completion, Transient
from fabula.data.cache import CallCache
from fabula.data.calls import BudgetExhausted, Caller, Prices, Unparseable


class Script:
    backend, model = "script", "m"

    def __init__(self, replies):
        self.replies, self.asked = list(replies), []

    async def complete(self, messages, settings):
        self.asked.append(settings)
        await asyncio.sleep(0.01)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return Completion(reply, 1000, 1000)


SET = GenerateSettings(n=1, temperature=0.0, max_tokens=10, seed=5)
ASK = [{"role": "user", "content": "hi"}]


def run(coro):
    return asyncio.run(coro)


def test_cached_and_simultaneous_calls_are_paid_once(tmp_path):
    client = Script(["one"])

    async def go():
        caller = Caller(client, CallCache(tmp_path / "c.sqlite"))
        both = await asyncio.gather(caller(ASK, SET), caller(ASK, SET))
        return both, await caller(ASK, SET), caller.counts

    both, again, counts = run(go())
    assert both == ["one", "one"] and again == "one" and len(client.asked) == 1 and counts["cached"] == 1


def test_transient_failures_are_retried_then_given_up(tmp_path):
    client = Script([Transient("429", retry_after=0.02), Transient("500"), "ok"])
    caller_args = {"retry_base": 0.001}
    assert run(Caller(client, CallCache(tmp_path / "a.sqlite"), **caller_args)(ASK, SET)) == "ok"
    client = Script([Transient("500")] * 3)
    with pytest.raises(BackendError, match="gave up after 2 retries"):
        run(Caller(client, CallCache(tmp_path / "b.sqlite"), max_retries=2, **caller_args)(ASK, SET))


def test_malformed_replies_are_asked_again_sampled_with_another_seed(tmp_path):
    def parse(text):
        if text != "good":
            raise ValueError(text)
        return text.upper()

    client = Script(["bad", "good"])
    assert run(Caller(client, CallCache(tmp_path / "a.sqlite"))(ASK, SET, parse=parse)) == "GOOD"
    first, second = client.asked
    assert first.temperature == 0.0 and second.temperature >= 0.7 and first.seed != second.seed
    client = Script(["bad", "worse"])
    with pytest.raises(Unparseable) as err:
        run(Caller(client, CallCache(tmp_path / "b.sqlite"))(ASK, SET, parse=parse, attempts=2))
    assert err.value.text == "worse"


def test_no_call_starts_past_the_budget(tmp_path):
    client = Script(["a", "b"])  # each call: 1,000 + 1,000 tokens at $1/M each way = $0.002

    async def go():
        caller = Caller(client, CallCache(tmp_path / "c.sqlite"), prices=Prices(1.0, 1.0), max_cost=0.001)
        await caller(ASK, SET)
        await caller([{"role": "user", "content": "again"}], SET)

    with pytest.raises(BudgetExhausted, match=r"\$0.00 spent"):
        run(go())
    assert len(client.asked) == 1


def test_the_real_client_is_retried_under_the_one_policy(tmp_path, live_server):
    """Generation's Caller over the real OpenAI client and a real server answering 429, 500, 503:
    the same `Retry` as evaluation's backends (tests/backends/test_api.py) gets it through."""
    from fabula.backends.clients import make_client
    from tests.backends.test_api import flaky_app

    app, calls = flaky_app([429, 500, 503])
    with live_server(app) as server:
        async def go():
            client = make_client("openai", "m", base_url=server.url)
            caller = Caller(client, CallCache(tmp_path / "c.sqlite"), retry_base=0.01)
            try:
                return await caller(ASK, SET), caller.counts
            finally:
                await client.close()

        reply, counts = run(go())
    assert reply == "ok" and len(calls) == 4 and counts["retries"] == 3 and counts["calls"] == 4
