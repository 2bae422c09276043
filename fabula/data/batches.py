"""The providers' batch APIs, called through their SDKs: submit a chunk of calls, ask how it is
going, read its results. Nothing here waits, retries or remembers; the lane (`lane.py`) does.

A batch item's custom id is the call's cache key (64 hex characters: Anthropic's limit), and its
request is the live client's own `params`, so an answer from either lane is the same cache entry.
SDK failures are sorted as in the live lane: `Transient` (worth trying again) or `BackendError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import AsyncIterator

from fabula.backends.base import BackendError, GenerateSettings
from fabula.backends.clients import (AnthropicClient, Completion, OpenAIClient, Transient, classify, request,
                                     retryable)


@dataclass(frozen=True)
class Status:
    state: str      # the provider's word: validating, in_progress, finalizing, completed, ended, expired...
    ended: bool     # no more results will come
    done: int       # answered
    errored: int    # failed, expired or cancelled
    total: int
    handle: object  # the SDK's batch object, which `results` reads


@dataclass(frozen=True)
class Outcome:
    """One item's result: a completion, or why not and whether resubmitting it may help."""

    key: str
    completion: Completion | None = None
    error: str | None = None
    retry: bool = False


class OpenAIBatches:
    """OpenAI Batch: a JSONL file of chat-completion requests (`files.create`, purpose "batch"),
    `batches.create` over it, `batches.retrieve` to poll, then its output and error files."""

    provider = "openai"
    max_requests, max_bytes = 50_000, 200 * 1024 ** 2

    def __init__(self, client: OpenAIClient):
        self.client, self.sdk, self.where = client, client.client, client.where

    def line(self, key: str, messages: list[dict], settings: GenerateSettings) -> dict:
        return {"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                "body": self.client.params(messages, settings)}

    async def submit(self, lines: list[dict], token: str) -> str:
        """The batch's id. `token` goes in its metadata, so a run killed before it saved the id
        can still find the batch (`find`)."""
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        upload = await request(self.where, self.sdk.files.create, file=("fabula-batch.jsonl", data), purpose="batch")
        batch = await request(self.where, self.sdk.batches.create, input_file_id=upload.id,
                              endpoint="/v1/chat/completions", completion_window="24h", metadata={"fabula": token})
        return batch.id

    async def find(self, token: str, since: float, count: int, known: set[str]) -> str | None:
        try:
            async for batch in self.sdk.batches.list(limit=100):
                if (batch.metadata or {}).get("fabula") == token:
                    return batch.id
                if batch.created_at < since - 3600:  # listed newest first
                    return None
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, self.where) from None
        return None

    async def status(self, batch_id: str) -> Status:
        batch = await request(self.where, self.sdk.batches.retrieve, batch_id=batch_id)
        if batch.status == "failed":  # the input file was refused: nothing in it ran
            errors = "; ".join(e.message or e.code or "" for e in (batch.errors.data or [])) if batch.errors else ""
            raise BackendError(f"{self.where} refused batch {batch.id}: {errors or 'no reason given'}")
        counts = batch.request_counts
        return Status(batch.status, batch.status in ("completed", "expired", "cancelled"),
                      counts.completed if counts else 0, counts.failed if counts else 0, counts.total if counts else 0,
                      batch)

    async def results(self, status: Status) -> AsyncIterator[Outcome]:
        """Both files, streamed line by line, so a download cut midway keeps what it read."""
        for file_id in (status.handle.output_file_id, status.handle.error_file_id):
            if not file_id:
                continue
            try:
                async with self.sdk.files.with_streaming_response.content(file_id) as response:
                    async for line in response.iter_lines():
                        if line.strip():
                            yield self.outcome(json.loads(line))
            except json.JSONDecodeError:
                raise Transient(f"{self.where}: batch results cut mid-line") from None
            except Exception as exc:  # noqa: BLE001
                raise classify(exc, self.where) from None

    def outcome(self, record: dict) -> Outcome:
        from openai.types.chat import ChatCompletion

        key, response, error = record["custom_id"], record.get("response"), record.get("error")
        if response and response.get("status_code") == 200:
            try:
                return Outcome(key, self.client.completion(ChatCompletion.model_validate(response["body"])))
            except Transient as exc:
                return Outcome(key, error=str(exc), retry=True)
        if error:  # {"code": "batch_expired" | "batch_cancelled" | ..., "message": ...}
            code = error.get("code")
            return Outcome(key, error=f"{code}: {error.get('message')}", retry=code in ("batch_expired", "batch_cancelled"))
        status = (response or {}).get("status_code")
        body = (response or {}).get("body") or {}
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return Outcome(key, error=f"HTTP {status}: {message}", retry=retryable(status))


class AnthropicBatches:
    """Anthropic Message Batches: `messages.batches.create` with the requests inline, `retrieve` to
    poll, `results` to stream the answers as JSONL."""

    provider = "anthropic"
    max_requests, max_bytes = 100_000, 256 * 1024 ** 2
    TRANSIENT = ("api_error", "overloaded_error", "rate_limit_error", "timeout_error")

    def __init__(self, client: AnthropicClient):
        self.client, self.sdk, self.where = client, client.client, client.where

    def line(self, key: str, messages: list[dict], settings: GenerateSettings) -> dict:
        return {"custom_id": key, "params": self.client.params(messages, settings)}

    async def submit(self, lines: list[dict], token: str) -> str:
        return (await request(self.where, self.sdk.messages.batches.create, requests=lines)).id

    async def find(self, token: str, since: float, count: int, known: set[str]) -> str | None:
        """Message batches carry no metadata: the one created since `since` with `count` requests
        that no other manifest names, when exactly one matches (two runs submitting equal chunks
        in the same minute cannot be told apart; the lane then resubmits, which costs the chunk
        twice but loses nothing)."""
        found = []
        try:
            async for batch in self.sdk.messages.batches.list(limit=100):
                if batch.created_at.timestamp() < since - 60:
                    break
                if batch.id in known:
                    continue
                c = batch.request_counts
                if c.processing + c.succeeded + c.errored + c.canceled + c.expired == count:
                    found.append(batch.id)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, self.where) from None
        return found[0] if len(found) == 1 else None

    async def status(self, batch_id: str) -> Status:
        batch = await request(self.where, self.sdk.messages.batches.retrieve, message_batch_id=batch_id)
        c = batch.request_counts
        return Status(batch.processing_status, batch.processing_status == "ended", c.succeeded,
                      c.errored + c.canceled + c.expired, c.processing + c.succeeded + c.errored + c.canceled + c.expired,
                      batch)

    async def results(self, status: Status) -> AsyncIterator[Outcome]:
        try:
            async for result in await self.sdk.messages.batches.results(status.handle.id):
                yield self.outcome(result)
        except json.JSONDecodeError:
            raise Transient(f"{self.where}: batch results cut mid-line") from None
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, self.where) from None

    def outcome(self, result) -> Outcome:
        kind = result.result.type
        if kind == "succeeded":
            return Outcome(result.custom_id, self.client.completion(result.result.message))
        if kind == "errored":
            error = result.result.error.error
            return Outcome(result.custom_id, error=f"{error.type}: {error.message}", retry=error.type in self.TRANSIENT)
        return Outcome(result.custom_id, error=kind, retry=True)  # expired, canceled


def batch_api(client) -> OpenAIBatches | AnthropicBatches | None:
    """The client's batch API; None for a local model, which has none."""
    if isinstance(client, OpenAIClient):
        return OpenAIBatches(client)
    if isinstance(client, AnthropicClient):
        return AnthropicBatches(client)
    return None
