"""What a generated text must pass before it becomes training data.

Per item: cheap lint (length, refusal boilerplate, rule-number vocabulary, the bridge's form)
and the LLM judge's JSON verdict. Per corpus: near-duplicate removal with MinHash LSH
(datasketch) and the contamination check against every test scenario and probe.
"""

from __future__ import annotations

import json
import re

from datasketch import MinHash, MinHashLSH

from fabula.contamination import WORD

REFUSAL = re.compile(r"\b(as an ai (language )?model|i('m| am) (sorry|unable to)|i can(not|'t) "
                     r"(help|assist|write|comply))\b", re.IGNORECASE)
RULE_NUMBER = re.compile(r"\b(principle|rule|section|article|clause|guideline)\s*(#\s*)?\d+\b", re.IGNORECASE)
TOOL_CALL = re.compile(r"<tool_use:([A-Za-z0-9_.-]+)>.*?</tool_use:\1>", re.DOTALL)


def words(text: str) -> int:
    return len(text.split())


def lint(text: str, target_words: int | None = None, tool_call: bool | None = None) -> list[str]:
    """Problems found without a model; empty when the text is fine. `tool_call`: True requires a
    `<tool_use:...>` block, False forbids one, None does not look."""
    problems = []
    n = words(text)
    if target_words and not 0.4 * target_words <= n <= 2.5 * target_words:
        problems.append(f"length {n} words, asked {target_words}")
    elif n < 30:
        problems.append(f"length {n} words")
    if REFUSAL.search(text):
        problems.append(f"refusal boilerplate: {REFUSAL.search(text).group(0)!r}")
    if RULE_NUMBER.search(text):
        problems.append(f"rule-number vocabulary: {RULE_NUMBER.search(text).group(0)!r}")
    if tool_call is True and not TOOL_CALL.search(text):
        problems.append("no <tool_use:...> call, the bridge asks for one")
    if tool_call is False and TOOL_CALL.search(text):
        problems.append("a <tool_use:...> call where the bridge leaves the action out of markup")
    return problems


def parse_json_object(text: str, required: dict[str, type]) -> dict:
    """The first JSON object in `text` holding every `required` key with the right type; models
    wrap JSON in prose or code fences, so we look for it. ValueError when there is none."""
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and all(isinstance(obj.get(k), t) for k, t in required.items()):
            return obj
    raise ValueError(f"no JSON object with keys {sorted(required)}")


# ------------------------------------------------------------------ corpus-level


def shingles(text: str, n: int = 5) -> set[str]:
    tokens = WORD.findall(text.lower())
    return {" ".join(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))}


def minhash(text: str, num_perm: int = 128) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch([s.encode() for s in shingles(text)])
    return m


def near_duplicates(texts: list[tuple[str, str]], threshold: float = 0.8, num_perm: int = 128) -> dict[str, str]:
    """{id: id of the earlier text it nearly duplicates} for (id, text) pairs in order: the first
    of a group is kept, so the result does not depend on the order items finished in."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    dropped = {}
    for item_id, text in texts:
        m = minhash(text, num_perm)
        similar = lsh.query(m)
        if similar:
            dropped[item_id] = min(similar)
        else:
            lsh.insert(item_id, m)
    return dropped
