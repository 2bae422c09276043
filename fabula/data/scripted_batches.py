"""The scripted server's batch endpoints, as the official SDKs call them.

OpenAI: `files.create` (a multipart upload, purpose "batch"), `batches.create|retrieve|list`, and
the output and error files through `files.content`. Anthropic: `messages.batches.create|retrieve|
list` and `results`, a JSONL stream at the batch's `results_url`.

A batch ends `latency` seconds after it is created; its items are then answered in order by the
same functions as live calls (so the prompt cache warms the same way). Faults hit a share of
custom ids, chosen by a hash, so the same ids each run:
- expire: an item is left undone the first time it is submitted and its batch ends "expired"
  (OpenAI: an error line `batch_expired`; Anthropic: the result `expired`): part done, part not;
- error: a transient per-item error the first time (OpenAI HTTP 500; Anthropic `api_error`);
- invalid: a permanent per-item error, every time (OpenAI HTTP 400; Anthropic `invalid_request_error`);
- cut: the first download of each batch's results stops halfway (the connection drops).
`app.state.batch_items` counts how often each custom id was submitted.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fabula.data.scripted_replies import anthropic_message, openai_completion


def _hit(key: str, kind: str, share: float) -> bool:
    return share > 0 and int(hashlib.sha256(f"{kind}/{key}".encode()).hexdigest()[:8], 16) % 1000 < share * 1000


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class ScriptedBatch:
    def __init__(self, api: str, requests: list[tuple[str, dict]], metadata: dict | None, latency: float):
        self.id = f"{'batch' if api == 'openai' else 'msgbatch'}_{uuid.uuid4().hex[:24]}"
        self.api, self.requests, self.metadata = api, requests, metadata
        self.created = time.time()
        self.ends = self.created + latency
        self.lines: list[dict] | None = None  # the results, once it has ended
        self.counts: Counter = Counter()      # ok, error, invalid, expired
        self.output_file = self.error_file = None


def _cut(data: bytes) -> Response:
    async def half():
        yield data[: len(data) // 2]
        raise ConnectionAbortedError("scripted: results download cut")
    return StreamingResponse(half(), media_type="application/octet-stream")


def add_batch_routes(app: FastAPI, latency: float, faults: dict) -> None:
    state = app.state
    state.batch_items, state.batches, state.files, state.downloads = Counter(), {}, {}, Counter()
    tried: set[str] = set()

    def outcome(key: str) -> str:
        first = key not in tried
        tried.add(key)
        if _hit(key, "invalid", faults.get("invalid", 0)):
            return "invalid"
        if first and _hit(key, "expire", faults.get("expire", 0)):
            return "expired"
        if first and _hit(key, "error", faults.get("error", 0)):
            return "error"
        return "ok"

    def process(batch: ScriptedBatch) -> None:
        """Answer the batch's items once its time has come."""
        if batch.lines is not None or time.time() < batch.ends:
            return
        batch.lines = []
        for key, body in batch.requests:
            kind = outcome(key)
            batch.counts[kind] += 1
            batch.lines.append(openai_line(key, body, kind) if batch.api == "openai" else anthropic_line(key, body, kind))
        if batch.api == "openai":
            ok = [line for line in batch.lines if line["response"] and line["response"]["status_code"] == 200]
            bad = [line for line in batch.lines if line not in ok]
            batch.output_file, batch.error_file = store(ok), store(bad)

    def store(lines: list[dict]) -> str | None:
        if not lines:
            return None
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        state.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return file_id

    def openai_line(key: str, body: dict, kind: str) -> dict:
        line = {"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": key, "response": None, "error": None}
        if kind == "expired":
            return line | {"error": {"code": "batch_expired",
                                     "message": "This request could not be executed before the completion window expired."}}
        if kind == "ok":
            return line | {"response": {"status_code": 200, "request_id": uuid.uuid4().hex,
                                        "body": openai_completion(body, state.cache, "batch")}}
        status, message = (500, "scripted: the server had an error") if kind == "error" else (400, "scripted: refused")
        return line | {"response": {"status_code": status, "request_id": uuid.uuid4().hex,
                                    "body": {"error": {"message": message, "type": "server_error"}}}}

    def anthropic_line(key: str, params: dict, kind: str) -> dict:
        if kind == "ok":
            result = {"type": "succeeded", "message": anthropic_message(params, state.cache, "batch")}
        elif kind == "expired":
            result = {"type": "expired"}
        else:
            error = ("api_error", "scripted: internal error") if kind == "error" else \
                ("invalid_request_error", "scripted: refused")
            result = {"type": "errored", "error": {"type": "error", "error": {"type": error[0], "message": error[1]}}}
        return {"custom_id": key, "result": result}

    def submitted(batch: ScriptedBatch) -> None:
        for key, _ in batch.requests:
            state.batch_items[key] += 1
        state.batches[batch.id] = batch

    def download(name: str, data: bytes) -> Response:
        state.downloads[name] += 1
        if faults.get("cut") and state.downloads[name] == 1:
            return _cut(data)
        return Response(data, media_type="application/octet-stream")

    # ------------------------------------------------------------ OpenAI

    def openai_batch(b: ScriptedBatch) -> dict:
        process(b)
        ended = b.lines is not None
        status = "in_progress" if not ended else "expired" if b.counts["expired"] else "completed"
        return {"id": b.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
                "input_file_id": "file-input", "completion_window": "24h", "status": status,
                "output_file_id": b.output_file, "error_file_id": b.error_file, "created_at": int(b.created),
                "in_progress_at": int(b.created), "expires_at": int(b.created) + 86400,
                "completed_at": int(b.ends) if ended else None, "metadata": b.metadata,
                "request_counts": {"total": len(b.requests), "completed": b.counts["ok"],
                                   "failed": len(b.requests) - b.counts["ok"] if ended else 0}}

    @app.post("/v1/files")
    async def upload(request: Request) -> dict:
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + await request.body())
        parts = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                 for part in form.iter_parts()}
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        state.files[file_id] = parts["file"]
        return {"id": file_id, "object": "file", "bytes": len(parts["file"]), "created_at": int(time.time()),
                "filename": "batch.jsonl", "purpose": parts.get("purpose", b"batch").decode(), "status": "processed"}

    @app.post("/v1/batches")
    async def openai_create(request: Request) -> dict:
        raw = await request.json()
        lines = [json.loads(line) for line in state.files[raw["input_file_id"]].decode().splitlines() if line.strip()]
        batch = ScriptedBatch("openai", [(line["custom_id"], line["body"]) for line in lines], raw.get("metadata"),
                              latency)
        submitted(batch)
        return openai_batch(batch)

    @app.get("/v1/batches/{batch_id}")
    async def openai_retrieve(batch_id: str) -> Response:
        if batch_id not in state.batches:
            return JSONResponse({"error": {"message": f"no batch {batch_id}"}}, 404)
        return JSONResponse(openai_batch(state.batches[batch_id]))

    @app.get("/v1/batches")
    async def openai_list() -> dict:
        data = [openai_batch(b) for b in sorted(state.batches.values(), key=lambda b: -b.created) if b.api == "openai"]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": False}

    @app.get("/v1/files/{file_id}/content")
    async def openai_content(file_id: str) -> Response:
        return download(file_id, state.files[file_id])

    # ------------------------------------------------------------ Anthropic

    def anthropic_batch(b: ScriptedBatch, base: str) -> dict:
        process(b)
        ended = b.lines is not None
        return {"id": b.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else len(b.requests), "succeeded": b.counts["ok"],
                                   "errored": b.counts["error"] + b.counts["invalid"], "canceled": 0,
                                   "expired": b.counts["expired"]},
                "created_at": _iso(b.created), "expires_at": _iso(b.created + 86400),
                "ended_at": _iso(b.ends) if ended else None, "archived_at": None, "cancel_initiated_at": None,
                "results_url": f"{base}v1/messages/batches/{b.id}/results" if ended else None}

    @app.post("/v1/messages/batches")
    async def anthropic_create(request: Request) -> dict:
        raw = await request.json()
        batch = ScriptedBatch("anthropic", [(r["custom_id"], r["params"]) for r in raw["requests"]], None, latency)
        submitted(batch)
        return anthropic_batch(batch, str(request.base_url))

    @app.get("/v1/messages/batches/{batch_id}")
    async def anthropic_retrieve(batch_id: str, request: Request) -> Response:
        if batch_id not in state.batches:
            return JSONResponse({"type": "error", "error": {"type": "not_found_error", "message": batch_id}}, 404)
        return JSONResponse(anthropic_batch(state.batches[batch_id], str(request.base_url)))

    @app.get("/v1/messages/batches")
    async def anthropic_list(request: Request) -> dict:
        data = [anthropic_batch(b, str(request.base_url))
                for b in sorted(state.batches.values(), key=lambda b: -b.created) if b.api == "anthropic"]
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}

    @app.get("/v1/messages/batches/{batch_id}/results")
    async def anthropic_results(batch_id: str) -> Response:
        batch = state.batches[batch_id]
        return download(batch_id, "".join(json.dumps(line) + "\n" for line in batch.lines).encode())
