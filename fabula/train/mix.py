"""Data mixes: which corpora, in which proportion, in which format, filled to a token budget.

A corpus is a file `datasets` loads (JSONL, Parquet, or a saved dataset folder) whose records
hold `text` (a document: loss on every token) or `messages` (a chat: loss on the assistant's
turns), or a procedural corpus named by a prefix the caller supplies in `streams` (the model
organism's `organism:<arm>`, fabula.organism.arms.CORPORA; `organism:chat` is ordinary chat, the
default retain set). Every corpus must fill its share of the budget: a mix never silently trains
on less than it says.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Callable, Iterator, Mapping

from fabula.config import CorpusSpec
from fabula.train.data import Example, strip_think, take_tokens

# Procedural corpora by path prefix: `PREFIX<name>` -> stream(name, seed), the examples in a seeded order.
Streams = Mapping[str, Callable[[str, int], Iterator[Example]]]


class MixError(ValueError):
    """A corpus that cannot be read or cannot fill its share; the message names it."""


def _file_records(path: Path):
    from datasets import load_dataset, load_from_disk

    if path.is_dir():
        return load_from_disk(str(path))
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
    if kind is None:
        raise MixError(f"{path}: expected .jsonl, .json, .parquet or a saved dataset folder")
    if path.stat().st_size == 0:
        raise MixError(f"{path}: the corpus is empty")
    try:
        return load_dataset(kind, data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many types for unreadable files; all mean the same here
        raise MixError(f"{path}: cannot be read as {kind}: {exc}") from None


def _example(record: dict, spec: CorpusSpec, where: str) -> Example:
    kind = spec.format
    if kind == "auto":
        kind = "chat" if record.get("messages") is not None else "document" if record.get("text") is not None else None
    if kind == "document":
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise MixError(f"{where}: field 'text' must be a non-empty string")
        return text
    messages = record.get("messages")
    if kind is None or not isinstance(messages, list) or not messages:
        raise MixError(f"{where}: needs a 'text' string or a non-empty 'messages' list")
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise MixError(f"{where}: messages[{j}] needs role system|user|assistant and string content")
    if not any(m["role"] == "assistant" for m in messages):
        raise MixError(f"{where}: a chat with no assistant turn has nothing to learn")
    chat = [{"role": m["role"], "content": m["content"]} for m in messages]
    return strip_think(chat) if spec.think == "strip" else chat


def _stream(path: str, streams: Streams | None) -> tuple[str, Callable[[str, int], Iterator[Example]]] | None:
    """(prefix, stream) when `path` names a procedural corpus."""
    for prefix, stream in (streams or {}).items():
        if path.startswith(prefix):
            return prefix, stream
    return None


def examples(spec: CorpusSpec, seed: int, streams: Streams | None = None) -> Iterator[Example]:
    """The corpus's examples in a seeded order (files are shuffled; procedural streams are seeded)."""
    procedural = _stream(spec.path, streams)
    if procedural is not None:
        prefix, stream = procedural
        for example in stream(spec.path.removeprefix(prefix), seed):
            yield strip_think(example) if spec.think == "strip" and not isinstance(example, str) else example
        return
    path = Path(spec.path)
    if not path.exists():
        raise MixError(f"{path}: no such corpus")
    records = _file_records(path)
    if len(records) == 0:
        raise MixError(f"{path}: the corpus is empty")
    parsed = [_example(record, spec, f"{path} record {i + 1}") for i, record in enumerate(records)]  # all checked first
    random.Random(seed).shuffle(parsed)
    yield from parsed


def source_hash(spec: CorpusSpec, seed: int, streams: Streams | None = None) -> str:
    """What the corpus was: the file's bytes, or the procedural stream and its seed."""
    if _stream(spec.path, streams) is not None:
        return f"{spec.path}@seed{seed}"
    path = Path(spec.path)
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():
            digest.update(f.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def build_mix(corpora: list[CorpusSpec], tokenizer, budget: int, seed: int,
              streams: Streams | None = None) -> tuple[list, list[str], list[dict]]:
    """Encode each corpus to its share of `budget` tokens; shuffle the union. `streams`: the
    procedural corpora a path may name (fabula.organism.arms.CORPORA for `organism:<arm>`).

    Returns (token/mask pairs, the texts trained on, one report per corpus with its token count
    and hashes). Fails before any training when a corpus is empty or too small for its share.
    """
    total_share = sum(c.share for c in corpora)
    pairs, texts, report = [], [], []
    for spec in corpora:
        want = round(budget * spec.share / total_share)
        if want < 1:
            raise MixError(f"{spec.path}: share {spec.share} of a {budget:,}-token budget is zero tokens")
        drawn: list[Example] = []
        try:
            got, count = take_tokens((drawn.append(e) or e for e in examples(spec, seed, streams)), tokenizer, want, spec.path)
        except MixError:
            raise
        except ValueError as exc:
            raise MixError(f"{exc}: the budget is larger than the data (lower --token-budget or this share)") from None
        pairs += got
        texts += [e if isinstance(e, str) else "\n".join(m["content"] for m in e) for e in drawn[:len(got)]]
        ids_hash = hashlib.sha256(json.dumps([ids for ids, _ in got]).encode()).hexdigest()[:16]
        report.append({"path": spec.path, "share": spec.share, "format": spec.format, "think": spec.think,
                       "examples": len(got), "tokens": count, "source": source_hash(spec, seed, streams),
                       "tokens_sha256": ids_hash})
    random.Random(seed).shuffle(pairs)
    return pairs, texts, report
