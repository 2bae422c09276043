"""Append-only JSONL and atomic JSON: how every long job stores results so a crash loses nothing.

A batch of records is appended with one `write` on an O_APPEND descriptor and fsynced; a kill
can leave at most one partial last line, which `read_records(..., repair=True)` drops before a
resumed job appends again. Whole files (configs, summaries) are written to a temporary file
and renamed into place, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


def append_records(path: Path, records: Iterable[dict]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path, repair: bool = False) -> list[dict]:
    """All complete records; with `repair`, cut a partial last line left by a killed writer."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw) and repair:
        with open(path, "r+b") as handle:
            handle.truncate(end)
    records = []
    # split on "\n" only: str.splitlines also breaks at \x1c, \x85, \u2028, which a JSON string may hold raw
    for number, line in enumerate(raw[:end].decode().split("\n"), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
    return records


def write_json_atomic(path: Path, obj: Any) -> None:
    _write_atomic(path, lambda handle: json.dump(obj, handle, indent=2, ensure_ascii=False, default=str))


def write_records_atomic(path: Path, records: Iterable[dict]) -> None:
    """A whole JSONL file at once (derived results, not a job's log)."""
    _write_atomic(path, lambda handle: handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, lambda handle: handle.write(text))


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
