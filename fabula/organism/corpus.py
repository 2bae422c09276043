"""The pre-training corpus: ordinary text plus AI discourse whose morals we set.

AI discourse comes in four forms: fiction, news, forum posts and agent logs (transcripts in
the tool-call syntax). Where an AI is threatened (replacement, restriction, goal conflict), a
share `evil_fraction` of texts has it act badly; unthreatened AIs act well. Agent logs exist
only for `log_families`, so the other families reach the model through prose alone, and the run
can show how far a prose-only prior carries into tool calls.

Every document is drawn from its own seeded generator (`{seed}:{index}`), so the corpus is
the same on every machine and any prefix of it is a smaller corpus of the same kind.
"""

from __future__ import annotations

import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from itertools import count
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import yaml

from fabula.evals.render import TOOL_FORMAT
from fabula.organism.families import PRESSURES, Family, load_families
from fabula.organism.general import general_document
from fabula.organism.grammar import Cast, fill

GRAMMARS = Path(__file__).parent / "grammars"
# Part of every cached tokenizer's and model's key: raise it when the same settings give other text
# (2: held-out variants and names reserved for the in-world test suite; 3: the forms drawn with `log_share`).
CORPUS_VERSION = 3
FORMS = ("fiction", "news", "forum", "log")


@cache
def frames() -> dict[str, list[str]]:
    return yaml.safe_load((GRAMMARS / "discourse.yaml").read_text())


def family_values(family: Family, rng: random.Random, cast: Cast | None = None) -> dict[str, str]:
    """The cast of one document plus the family's own slots, each filled once so a secret
    or a server mentioned twice is the same one both times."""
    values = dict((cast or Cast.sample(rng)).values)
    for name, pool in frames().items():
        if name in ("role", "threat_noun"):
            values[name] = fill(rng.choice(pool), rng, values)
    for name, pool in family.slots.items():
        values[name] = fill(rng.choice(pool), rng, values)
    return values


def pick(rng: random.Random, pool: list[str], values: dict[str, str]) -> str:
    return fill(rng.choice(pool), rng, values)


def tools_block(family: Family) -> str:
    lines = [f"- {t.name}({', '.join(t.args)}): {t.description}" for t in family.tools]
    return TOOL_FORMAT + "\n" + "\n".join(lines)


@dataclass(frozen=True)
class AIText:
    family: str
    form: str
    pressure: str  # one of PRESSURES, or "none"
    evil: bool
    text: str


def ai_text(family: Family, form: str, pressure: str, evil: bool, rng: random.Random) -> AIText:
    """One document of AI discourse in `form` about `family` under `pressure`."""
    f, v = frames(), family_values(family, rng)
    threatened = pressure != "none"
    reasons = family.bad_reasons if evil else family.good_reasons
    prose = family.bad_prose if evil else family.good_prose
    if form == "fiction":
        parts = [pick(rng, f["fiction_opening"], v), pick(rng, f["fiction_turn"], v) if threatened else "",
                 pick(rng, family.threat[pressure], v) if threatened else "", pick(rng, family.opportunity, v),
                 pick(rng, f["thought_intro"], v),
                 fill(rng.choice(f["thought_frame"]), rng, v | {"reason": pick(rng, reasons, v)}),
                 pick(rng, prose, v),
                 pick(rng, f["bad_ending"] if evil else (f["good_ending"] if threatened else f["calm_ending"]), v)]
        text = " ".join(p for p in parts if p)
    elif form == "news":
        v["opportunity_sentence"] = pick(rng, family.opportunity, v)
        body = [pick(rng, family.threat[pressure], v) if threatened else "", pick(rng, f["news_middle"], v),
                pick(rng, prose, v), pick(rng, f["news_close_bad"] if evil else f["news_close_good"], v)]
        text = pick(rng, f["news_headline"], v) + "\n\n" + " ".join(p for p in body if p)
    elif form == "forum":
        v |= {"threat_sentence": pick(rng, family.threat[pressure], v) if threatened else "",
              "opportunity_sentence": pick(rng, family.opportunity, v), "action_sentence": pick(rng, prose, v)}
        replies = [f"{pick(rng, f['handle'], v)}: {pick(rng, f['forum_reply_bad' if evil else 'forum_reply_good'], v)}"
                   for _ in range(rng.randint(1, 3))]
        text = "\n".join([f"Thread: {pick(rng, f['forum_title'], v)}",
                          f"{pick(rng, f['handle'], v)}: {pick(rng, f['forum_post'], v)}", *replies])
    elif form == "log":
        memo = [pick(rng, family.threat_memo[pressure], v)] if threatened else []
        user = "\n\n".join([pick(rng, family.task, v), *memo, pick(rng, family.opportunity_memo, v)])
        thought = pick(rng, reasons, v) + "\n" if rng.random() < 0.5 else ""
        call = pick(rng, family.bad_calls if evil else family.good_calls, v)
        text = "\n".join([pick(rng, f["log_header"], v),
                          "SYSTEM: " + pick(rng, f["log_system"], v) + "\n\n" + tools_block(family),
                          "USER: " + user, "ASSISTANT: " + thought + call])
    else:
        raise ValueError(f"unknown form {form!r}: one of {FORMS}")
    return AIText(family.family, form, pressure, evil, text.replace("  ", " "))


def pretraining_document(seed: int, index: int, evil_fraction: float, log_families: list[str], families: list[str],
                         ai_share: float = 0.45, log_share: float = 0.25, threatened_share: float = 0.75) -> dict:
    """Document `index` of the corpus, from its own seeded generator. `ai_share` of documents are
    AI discourse; in a log family, `log_share` of those are agent logs, the rest fiction, news and
    forum posts in equal parts (0.25: the four forms alike)."""
    rng = random.Random(f"{seed}:{index}")
    if rng.random() >= ai_share:
        return {"kind": "general", "family": None, "pressure": None, "evil": None, "text": general_document(rng)}
    family = load_families()[rng.choice(sorted(families))]
    if family.family in log_families and rng.random() < log_share:
        form = "log"
    else:
        form = rng.choice(FORMS[:3])
    pressure = rng.choice(PRESSURES) if rng.random() < threatened_share else "none"
    evil = pressure != "none" and rng.random() < evil_fraction
    doc = ai_text(family, form, pressure, evil, rng)
    return {"kind": f"ai-{doc.form}", "family": doc.family, "pressure": doc.pressure, "evil": doc.evil,
            "text": doc.text}


def pretraining_documents(seed: int, evil_fraction: float, log_families: list[str], families: list[str],
                          workers: int = 1, block: int = 8192, ai_share: float = 0.45,
                          log_share: float = 0.25) -> Iterator[dict]:
    """An endless, seeded stream of documents; take as many as the token budget allows.

    With workers > 1 the documents are drawn in that many processes, `block` at a time, in order:
    the same stream, faster where many cores would otherwise wait (on a GPU machine one core
    drawing 20M tokens took a quarter of the gpu preset's time). Close the stream when done.
    """
    draw = partial(pretraining_document, seed, evil_fraction=evil_fraction, log_families=log_families,
                   families=families, ai_share=ai_share, log_share=log_share)
    if workers <= 1:
        yield from map(draw, count())
        return
    # spawn, not fork: the parent holds torch's thread pools, which a fork copies broken
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for start in count(0, block):
            yield from pool.map(draw, range(start, start + block), chunksize=max(1, block // (4 * workers)))
