"""Append-only JSONL shards: where a generation run puts each finished item, once.

Items finish out of order and concurrently, but one event loop writes them, each with a single
fsynced append (`fabula.jsonl`), so a kill leaves at most a partial last line, cut on the next
start. An item is in the shards or it is not: a rerun skips the ids found and writes the rest.
"""

from __future__ import annotations

from pathlib import Path

from fabula.jsonl import append_records, read_records


class Shards:
    def __init__(self, folder: Path, size: int):
        self.folder, self.size = folder, size
        folder.mkdir(parents=True, exist_ok=True)
        self.records, self.count = [], 0
        for path in self.paths():
            found = read_records(path, repair=True)
            self.records += found
            self.count = len(found)  # of the last shard, the one appended to
        self.current = self.paths()[-1] if self.paths() else self._path(0)

    def _path(self, number: int) -> Path:
        return self.folder / f"shard-{number:05d}.jsonl"

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.jsonl"))

    def done(self) -> set[str]:
        return {r["id"] for r in self.records}

    def append(self, record: dict) -> None:
        if self.count >= self.size:
            self.current, self.count = self._path(int(self.current.stem.split("-")[1]) + 1), 0
        append_records(self.current, [record])
        self.records.append(record)
        self.count += 1

    def all(self) -> list[dict]:
        """Every item once, in id order (the first copy wins, should a record ever repeat)."""
        unique: dict[str, dict] = {}
        for record in self.records:
            unique.setdefault(record["id"], record)
        return [unique[k] for k in sorted(unique)]
