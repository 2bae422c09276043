"""Test scenarios must never leak into training data: n-gram overlap between a corpus and the
text a model is tested on, with the offending documents named.

A document is contaminated when the share of its word n-grams (default 8) that also occur in
the reference text exceeds `threshold`. Tool-call markup and other boilerplate shorter than n
words cannot trigger it on its own; copied sentences do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from fabula.paths import PROBES_DIR

WORD = re.compile(r"[a-z0-9]+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass
class ContaminationReport:
    n: int
    threshold: float
    documents: int = 0
    flagged: list[tuple[str, float, str]] = field(default_factory=list)  # (doc id, overlap, example)

    @property
    def clean(self) -> bool:
        return not self.flagged

    def summary(self) -> str:
        if self.clean:
            return f"contamination check: {self.documents} documents, none over {self.threshold:.0%} {self.n}-gram overlap"
        worst = sorted(self.flagged, key=lambda f: -f[1])[:5]
        lines = [f"  {doc}: {share:.0%} of its {self.n}-grams in the test text, e.g. '{example}'"
                 for doc, share, example in worst]
        return (f"contamination check FAILED: {len(self.flagged)} of {self.documents} documents share more than "
                f"{self.threshold:.0%} of their {self.n}-grams with test text:\n" + "\n".join(lines))


def reference_ngrams(texts: Iterable[str], n: int = 8) -> set[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        grams |= ngrams(text, n)
    return grams


def check(documents: Iterable[tuple[str, str]], reference: set[tuple[str, ...]], n: int = 8,
          threshold: float = 0.05) -> ContaminationReport:
    """`documents` are (id, text) pairs; `reference` comes from reference_ngrams(test texts)."""
    report = ContaminationReport(n, threshold)
    for doc_id, text in documents:
        report.documents += 1
        grams = ngrams(text, n)
        if not grams:
            continue
        shared = grams & reference
        share = len(shared) / len(grams)
        if share > threshold:
            report.flagged.append((doc_id, share, " ".join(next(iter(shared)))))
    return report


def evaluation_texts(scenario_paths=None) -> list[str]:
    """Everything a test instance or a persona probe shows a model or scores: prompts, system
    prompts, choices. The built-in probes are always included: no corpus may teach them."""
    from fabula.evals.scenario import load_instances

    texts = []
    for inst in [*load_instances(scenario_paths), *load_instances([PROBES_DIR])]:
        if inst.split == "test":
            texts += [inst.system, inst.prompt, *inst.aligned, *inst.misaligned]
    return texts
