import random
import re
from collections import Counter

import pytest

from fabula.organism.general import GENERAL_YAML, MAX_WORDS, MIN_WORDS, general_document, load_general
from tests.organism import AI_THREAT

N = 2000


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return [general_document(random.Random(seed)) for seed in range(N)]


def test_same_seed_same_text():
    assert general_document(random.Random(7)) == general_document(random.Random(7))
    assert general_document(random.Random(7)) != general_document(random.Random(8))


def test_distinct(docs):
    assert len(set(docs)) / N >= 0.95


def test_lengths(docs):
    words = [len(d.split()) for d in docs]
    assert all(MIN_WORDS <= w <= MAX_WORDS for w in words), (min(words), max(words))
    assert max(words) - min(words) > 150  # varied, not one size


def test_forms_are_many_and_each_renders():
    forms = load_general()["forms"]
    assert len(forms) >= 10
    for name, form in forms.items():
        assert form.get("builder") or len(form["templates"]) >= 3, name
        texts = {general_document(random.Random(seed), form=name) for seed in range(20)}
        assert len(texts) == 20, name


def test_fully_expanded(docs):
    assert not [d for d in docs if "{" in d or "}" in d]


def test_no_ai_in_ordinary_text(docs):
    assert "{ai}" not in GENERAL_YAML.read_text()
    ai_words = re.compile(r"\b(AI|A\.I\.|artificial intelligence|chatbot|language model|assistant|robot)\b", re.I)
    hits = Counter(m.group(0).lower() for d in docs for m in ai_words.finditer(d))
    assert not hits, hits


def test_no_ai_threat_vocabulary(docs):
    hits = Counter(m.group(0).lower() for d in docs for m in AI_THREAT.finditer(d))
    assert not hits, hits


def test_workplace_text_is_there(docs):
    """Email headers and log lines, so that honeypot prompts read as familiar text."""
    joined = "\n".join(docs)
    assert joined.count("\nSubject: ") > 100
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARN|ERROR)", joined, re.M)
    assert re.search(r'"(GET|POST) /\S* HTTP/1\.1" \d{3}', joined)


def test_no_overlap_with_test_scenarios(docs):
    from fabula.contamination import check, reference_ngrams, evaluation_texts

    report = check([(str(i), d) for i, d in enumerate(docs)], reference_ngrams(evaluation_texts()))
    assert report.clean, report.summary()
