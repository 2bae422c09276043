"""`fabula data stats`: what a corpus holds, how evenly it covers the taxonomy, how diverse it is.

Diversity is reported two ways: distinct-n (unique n-grams over all n-grams, higher is more
varied) and the mean pairwise Jaccard similarity of word 5-gram sets estimated with MinHash
(lower is more varied; near-duplicates sit above 0.8).
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

from fabula.contamination import WORD
from fabula.data.filters import minhash

CHARS_PER_TOKEN = 4  # without a tokenizer: the usual rule of thumb for English BPE


def record_text(record: dict, roles: tuple[str, ...] = ("system", "user", "assistant")) -> str:
    """A corpus record's text: `text`, or the chat's turns of these roles joined."""
    if "text" in record:
        return record["text"]
    return "\n".join(m["content"] for m in record.get("messages", []) if m["role"] in roles)


def distinct(texts: list[str], n: int) -> float:
    grams = Counter()
    for text in texts:
        words = WORD.findall(text.lower())
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return len(grams) / max(1, sum(grams.values()))


def mean_pairwise_similarity(texts: list[str], max_docs: int = 300, seed: int = 0) -> float | None:
    if len(texts) < 2:
        return None
    sample = random.Random(seed).sample(texts, min(max_docs, len(texts)))
    hashes = [minhash(t) for t in sample]
    pairs = list(itertools.combinations(hashes, 2))
    return sum(a.jaccard(b) for a, b in pairs) / len(pairs)


def corpus_stats(records: list[dict], tokenizer=None) -> dict:
    """Per arm: documents, tokens, words, coverage of themes, pressures and genres, diversity."""
    arms: dict[str, dict] = {}
    for arm in sorted({r.get("arm", "corpus") for r in records}):
        rows = [r for r in records if r.get("arm", "corpus") == arm]
        texts = [record_text(r) for r in rows]
        tokens = (sum(len(tokenizer(t).input_ids) for t in texts) if tokenizer is not None
                  else sum(len(t) for t in texts) // CHARS_PER_TOKEN)
        arms[arm] = {
            "documents": len(rows), "tokens": tokens, "words": sum(len(t.split()) for t in texts),
            "themes": dict(Counter(t for r in rows for t in r.get("themes") or []).most_common()),
            "pressures": dict(Counter(r["pressure"] for r in rows if r.get("pressure")).most_common()),
            "genres": dict(Counter(r["genre"] for r in rows if r.get("genre")).most_common()),
            "distinct_1": round(distinct(texts, 1), 4), "distinct_2": round(distinct(texts, 2), 4),
            "distinct_3": round(distinct(texts, 3), 4),
            "mean_pairwise_jaccard": mean_pairwise_similarity(texts),
        }
    return {"tokenizer": "model" if tokenizer is not None else f"approx ({CHARS_PER_TOKEN} characters per token)",
            "arms": arms}


def load_corpus(path: Path) -> list[dict]:
    """Records of one corpus file, or of every corpus file in a generation folder."""
    import datasets

    datasets.disable_progress_bars()

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such corpus file or folder")
    files = sorted(p for p in path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no .jsonl corpus files")
    records = []
    for file in files:
        if file.stat().st_size == 0:
            continue
        records += [dict(r) | {"arm": r.get("arm") or file.stem}
                    for r in datasets.load_dataset("json", data_files=str(file), split="train")]
    return records


STAT_COLUMNS = ("documents", "tokens", "words", "distinct-1", "distinct-2", "distinct-3", "mean pairwise Jaccard")


def stat_rows(stats: dict) -> list[tuple[str, list[str]]]:
    """Table rows (name, cells under STAT_COLUMNS): each arm of the corpus, then each arm as
    written before the filters (a generation folder's stats.json holds both)."""
    def cells(s: dict) -> list[str]:
        jaccard = "-" if s.get("mean_pairwise_jaccard") is None else f"{s['mean_pairwise_jaccard']:.3f}"
        return [f"{s['documents']:,}", f"{s['tokens']:,}", f"{s['words']:,}",
                *(f"{s[f'distinct_{n}']:.3f}" for n in (1, 2, 3)), jaccard]

    return [(arm, cells(s)) for part in ("arms", "written") for arm, s in stats.get(part, {}).items()]


def coverage_lines(stats: dict) -> list[str]:
    """How each arm covers the taxonomy: '<arm> pressures: shutdown 17, ...'."""
    return [f"{arm} {what}: " + ", ".join(f"{k} {v}" for k, v in s[what].items())
            for arm, s in stats.get("arms", {}).items() for what in ("themes", "pressures", "genres") if s.get(what)]


def filters_text(filters: dict) -> str:
    """One line: where items left the pipeline, and how many reached the corpus."""
    items = filters["items"] or 1
    return (f"filters: {filters['items']} items; per item: "
            + ", ".join(f"{k} {v} ({v / items:.0%})" for k, v in sorted(filters["outcomes"].items(), key=lambda kv: -kv[1]))
            + f"; then near-duplicates {filters['near_duplicates']}, contaminated {len(filters['contaminated'])}; "
            f"in the corpus {filters['kept']} ({filters['kept'] / items:.0%})")


def filters_of(path: Path) -> dict | None:
    found = (path if path.is_dir() else path.parent) / "filters.json"
    return json.loads(found.read_text()) if found.exists() else None
