"""The batch lane: a pipeline stage's calls answered by the providers' batch APIs at batch prices,
through the same SQLite cache as live calls, so a call answered in either lane is never bought again.

Items run as in the live lane, all at once; a call that misses the cache waits here instead of
being made. When every running item waits, the waiting calls (stage k of every item) go out as
one round: chunked to the provider's limits, each chunk recorded in a manifest (`manifests.py`)
before it counts as submitted, polled with a progress bar, and each result written to the cache
as it is read. Stage k+1 is asked only after the round, so stages stay sequential.

Killed at any moment, the same command asks the same calls (same keys) and finds them in the
manifests of open batches: it re-attaches instead of submitting them again. Calls a batch did not
answer (expired, cancelled, a transient error) are resubmitted alone, under the live lane's retry
rule; a call the provider rejects for good fails its item with the provider's reason.
`--batch auto` answers a round live when it has `min_calls` calls or fewer: the last re-asks of a
run are not worth a day's wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from fabula.backends.base import GenerateSettings
from fabula.backends.clients import Completion
from fabula.data.batches import Outcome, Status
from fabula.data.calls import BudgetExhausted, Caller, ItemFailed
from fabula.data.manifests import Manifests, now
from fabula.progress import duration


@dataclass
class Waiting:
    """One call that items wait for (two items asking the same call share it)."""

    caller: Caller
    messages: list[dict]
    settings: GenerateSettings
    futures: list[asyncio.Future] = field(default_factory=list)


class BatchLane:
    def __init__(self, folder: Path, *, mode: str = "on", min_calls: int = 0, poll: float = 30.0,
                 chunk: int | None = None, progress=None, say: Callable[[str], None] | None = None):
        self.manifests = Manifests(folder)
        self.mode, self.min_calls, self.poll, self.chunk = mode, min_calls, poll, chunk
        self.progress, self.say = progress, say or (lambda text: None)
        self.open: dict[str, Waiting] = {}   # every call waiting here, by cache key
        self.pending: list[str] = []         # the keys of those not yet in a round
        self.active = 0                      # items running
        self.waiting = 0                     # items waiting here
        self.wake = asyncio.Event()
        self.worst: dict[str, tuple[Caller, float]] = {}  # submitted calls' worst-case cost, until answered
        self.recovered: set[tuple[str, str]] = set()
        self.rounds = 0

    # ------------------------------------------------------------ what items see

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        self._check()

    async def ask(self, caller: Caller, key: str, messages: list[dict], settings: GenerateSettings) -> Completion:
        future = asyncio.get_running_loop().create_future()
        waiting = self.open.get(key)
        if waiting is None:
            waiting = self.open[key] = Waiting(caller, messages, settings)
            self.pending.append(key)
        waiting.futures.append(future)
        self.waiting += 1
        self._check()
        return await future

    def _check(self) -> None:
        if self.pending and self.waiting >= self.active:
            self.wake.set()

    def _settle(self, key: str, done: Completion | None = None, error: BaseException | None = None) -> None:
        """Answer everyone waiting for `key`. They count as no longer waiting now, not when they
        resume, so the next round starts only once every one of them has asked its next call."""
        owner, worst = self.worst.pop(key, (None, 0.0))
        if owner is not None:
            owner.committed -= worst
        waiting = self.open.pop(key, None)
        if waiting is None:
            return
        for future in waiting.futures:
            if not future.done():
                future.set_result(done) if error is None else future.set_exception(error)
        self.waiting -= len(waiting.futures)

    # ------------------------------------------------------------ rounds

    async def run(self) -> None:
        """The lane's loop, a task beside the items': one round each time every running item waits."""
        self._check()
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.pending and self.waiting >= self.active:
                # a call answered early (by a batch re-attached for another) is no longer open
                keys, self.pending = [k for k in self.pending if k in self.open], []
                self.rounds += 1
                groups: dict[int, list[str]] = {}
                for key in keys:
                    groups.setdefault(id(self.open[key].caller), []).append(key)
                await asyncio.gather(*(self._answer(self.open[ks[0]].caller, ks) for ks in groups.values()))

    async def _answer(self, caller: Caller, keys: list[str]) -> None:
        try:
            if self.mode == "auto" and len(keys) <= self.min_calls:
                await asyncio.gather(*(self._live(caller, key) for key in keys))
            else:
                await self._batched(caller, keys)
        except Exception as exc:  # noqa: BLE001 - a fatal error reaches every item of the round
            for key in keys:
                self._settle(key, error=exc)

    async def _live(self, caller: Caller, key: str) -> None:
        waiting = self.open[key]
        try:
            done = await caller.live(key, waiting.messages, waiting.settings)
        except Exception as exc:  # noqa: BLE001 - handed to the items
            self._settle(key, error=exc)
        else:
            self._settle(key, done)

    async def _batched(self, caller: Caller, keys: list[str]) -> None:
        """Re-attach to open batches holding these calls, submit the rest, follow them all; then
        resubmit what came back unanswered, up to the caller's `max_retries` times."""
        api, model = caller.batches, caller.client.model
        await self._recover(caller)
        todo, left = keys, {}
        for attempt in range(caller.retry.max_retries + 1):
            attached = self.manifests.holding(api.provider, model, todo)
            held = set().union(*(m["custom_ids"] for m in attached))
            submitted = await self._submit(caller, [k for k in todo if k not in held])
            for part in await asyncio.gather(*(self._follow(caller, m) for m in attached + submitted)):
                left |= part
            todo = [k for k in todo if k in self.open]
            if not todo:
                return
            if attempt < caller.retry.max_retries:
                caller.counts["retries"] += len(todo)
                self.say(f"{len(todo):,} calls came back unanswered ({left.get(todo[0])}, ...): resubmitting them")
        for key in todo:
            self._settle(key, error=ItemFailed(f"{api.provider} batch: {left.get(key, 'no result')} "
                                               f"(gave up after {caller.retry.max_retries} resubmissions)"))

    async def _recover(self, caller: Caller) -> None:
        """Manifests left "submitting" by a killed run: adopt the batch if it reached the provider."""
        api, model = caller.batches, caller.client.model
        if (api.provider, model) in self.recovered:
            return
        self.recovered.add((api.provider, model))
        for m in self.manifests.unfinished(api.provider, model, ("submitting",)):
            found = await self._retrying(caller, lambda m=m: api.find(m["token"], m["created_at"], len(m["custom_ids"]),
                                                                      self.manifests.batch_ids()))
            if found:
                self.manifests.save(m, state="open", batch_id=found, submitted=m["created"],
                                    submitted_at=m["created_at"])
            else:  # it never reached the provider: its calls are submitted afresh
                self.manifests.save(m, state="abandoned")

    async def _submit(self, caller: Caller, keys: list[str]) -> list[dict]:
        """Chunks of these calls as batches; a call that could break `max_cost` (counted at its
        worst case: input at about 2 characters a token, output at max_tokens) is not submitted."""
        api, lines = caller.batches, []
        for key in keys:
            waiting = self.open[key]
            if caller.prices is not None and key not in self.worst:
                chars = sum(len(m["content"]) for m in waiting.messages)
                worst = caller.prices.worst(chars // 2, waiting.settings.max_tokens, batch=True)
                if caller.max_cost is not None and caller.spent + caller.committed + worst > caller.max_cost:
                    self._settle(key, error=BudgetExhausted(
                        f"${caller.spent:.2f} spent and ${caller.committed:.2f} in submitted batches at worst, "
                        f"max_cost ${caller.max_cost:.2f}"))
                    continue
                caller.committed += worst
                self.worst[key] = (caller, worst)
            lines.append(api.line(key, waiting.messages, waiting.settings))
        manifests = []
        for chunk in self._chunks(api, lines):
            m = self.manifests.new(api.provider, caller.client.model, [line["custom_id"] for line in chunk])
            tries = []

            async def submit(chunk=chunk, m=m) -> str:
                # A retry first looks for the batch: the failed attempt may have created it.
                found = await api.find(m["token"], m["created_at"], len(chunk),
                                       self.manifests.batch_ids()) if tries else None
                tries.append(1)
                return found or await api.submit(chunk, m["token"])

            batch_id = await self._retrying(caller, submit)
            self.manifests.save(m, state="open", batch_id=batch_id, submitted=now(), submitted_at=time.time())
            caller.counts["batched"] += len(chunk)
            manifests.append(m)
        if manifests:
            self.say(f"round {self.rounds}: {len(lines):,} calls submitted to {api.provider} in "
                     f"{len(manifests)} batch{'es' if len(manifests) > 1 else ''}")
        return manifests

    def _chunks(self, api, lines: list[dict]):
        limit = min(api.max_requests, self.chunk or api.max_requests)
        chunk, size = [], 0
        for line in lines:
            n = len(json.dumps(line, ensure_ascii=False).encode()) + 1
            if chunk and (len(chunk) >= limit or size + n > api.max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(line)
            size += n
        if chunk:
            yield chunk

    async def _follow(self, caller: Caller, m: dict) -> dict[str, str]:
        """Poll one batch to its end, then read its results into the cache. Returns the calls it
        left unanswered, with the reason, for resubmission."""
        api = caller.batches
        since = m.get("submitted_at") or m["created_at"]
        task = self.progress.add_task(m["name"], total=len(m["custom_ids"]), status="") if self.progress else None
        said = time.time()
        while True:
            status = await self._retrying(caller, lambda: api.status(m["batch_id"]))
            line = (f"{api.provider} {status.state} · {status.done:,} done · {status.errored:,} errored · "
                    f"waited {duration(time.time() - since)}")
            if task is not None:
                self.progress.update(task, completed=status.done + status.errored, status=line)
            if status.ended or time.time() - said > 600:  # a line now and then for logs, where bars do not show
                said = time.time()
                self.say(f"batch {m['name']} ({m['batch_id']}): {line}")
            if status.ended:
                break
            await asyncio.sleep(self.poll)
        left = {key: "no result in the batch's output" for key in m["custom_ids"]}
        await self._retrying(caller, lambda: self._read(caller, status, left), what="reading results")
        self.manifests.save(m, state="ended", ended=now(), final_state=status.state,
                            answered=len(m["custom_ids"]) - len(left))
        for key in m["custom_ids"]:  # what is resubmitted is committed again then
            owner, worst = self.worst.pop(key, (None, 0.0))
            if owner is not None:
                owner.committed -= worst
        if task is not None:
            self.progress.update(task, visible=False)
        return left

    async def _read(self, caller: Caller, status: Status, left: dict[str, str]) -> None:
        """Results into the cache as they stream; read again after a cut, it skips what it has."""
        async for outcome in caller.batches.results(status):
            self._take(caller, outcome, left)

    def _take(self, caller: Caller, outcome: Outcome, left: dict[str, str]) -> None:
        key = outcome.key
        if key not in left:
            return
        if outcome.completion is not None:
            done = outcome.completion
            if caller.cache.get(key) is None:  # else read once before a kill: cached and paid for already
                caller.cache.put(key, done.text, done.input_tokens, done.output_tokens, caller.client.model)
                caller.account(done, batch=True)
            del left[key]
            self._settle(key, done)
        elif outcome.retry:
            left[key] = outcome.error
        else:
            del left[key]
            self._settle(key, error=ItemFailed(f"{caller.batches.provider} batch: {outcome.error}"))

    async def _retrying(self, caller: Caller, fn: Callable[[], Awaitable], what: str = "") -> object:
        """A batch API call under the live lane's retry policy."""
        hint = f"{' while ' + what if what else ''} (rerun the same command: open batches are re-attached)"
        return await caller.retry(fn, on_retry=caller.retried, hint=hint)
