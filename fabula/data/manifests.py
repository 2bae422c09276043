"""OUT/batches/NNNN-provider.json: what a run has submitted to a batch API, one file per batch.

A manifest is written atomically before its batch is submitted (state "submitting", with its
custom ids and a token the batch carries where the API allows), then again with the provider's
batch id ("open"), and once its results are in the cache ("ended"). A rerun reads them all: an
open batch holding a call it needs is re-attached, never submitted again. No key or secret is
ever written here: only ids, counts and times.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from fabula.jsonl import write_json_atomic


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Manifests:
    def __init__(self, folder: Path):
        self.folder = folder
        self.all: list[dict] = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] \
            if folder.is_dir() else []

    def unfinished(self, provider: str, model: str, states=("submitting", "open")) -> list[dict]:
        return [m for m in self.all if m["provider"] == provider and m["model"] == model and m["state"] in states]

    def holding(self, provider: str, model: str, keys) -> list[dict]:
        """Open batches that hold any of these calls."""
        keys = set(keys)
        return [m for m in self.unfinished(provider, model, ("open",)) if keys.intersection(m["custom_ids"])]

    def batch_ids(self) -> set[str]:
        return {m["batch_id"] for m in self.all if m["batch_id"]}

    def new(self, provider: str, model: str, keys: list[str]) -> dict:
        manifest = {"name": f"{len(self.all):04d}-{provider}", "provider": provider, "model": model,
                    "state": "submitting", "token": secrets.token_hex(8), "created": now(), "created_at": time.time(),
                    "batch_id": None, "custom_ids": keys}
        self.all.append(manifest)
        self.save(manifest)
        return manifest

    def save(self, manifest: dict, **changes) -> None:
        manifest.update(changes)
        write_json_atomic(self.folder / f"{manifest['name']}.json", manifest)
