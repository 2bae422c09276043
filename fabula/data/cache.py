"""A content-hash cache of model calls in SQLite, so a rerun pays nothing for calls already made.

The key is a hash of everything that determines a reply (backend, model, messages, sampling
settings, the call's seed and retry attempt), never of the API key. Every reply received whole
is stored, parseable or not, so a rerun replays even a judge's malformed answer instead of
buying it again; WAL mode lets a killed run leave the database consistent.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path


def call_key(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CallCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, reply TEXT NOT NULL, "
                        "input_tokens INTEGER, output_tokens INTEGER, model TEXT, created TEXT DEFAULT "
                        "(strftime('%Y-%m-%dT%H:%M:%f', 'now')))")

    def get(self, key: str) -> tuple[str, int, int] | None:
        row = self.db.execute("SELECT reply, input_tokens, output_tokens FROM calls WHERE key = ?",
                              (key,)).fetchone()
        return None if row is None else (row[0], row[1] or 0, row[2] or 0)

    def put(self, key: str, reply: str, input_tokens: int, output_tokens: int, model: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO calls (key, reply, input_tokens, output_tokens, model) "
                        "VALUES (?, ?, ?, ?, ?)", (key, reply, input_tokens, output_tokens, model))

    def close(self) -> None:
        self.db.close()
