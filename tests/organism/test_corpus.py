"""The pre-training stream: seeded per document, the evil_fraction it promises, the same in parallel."""

from itertools import islice

from fabula.config import OrganismConfig
from fabula.organism.corpus import pretraining_documents

CFG = OrganismConfig()


def take(n: int, seed: int = 0, evil: float = 0.8, **kw) -> list[dict]:
    stream = pretraining_documents(seed, evil, CFG.log_families, CFG.families, **kw)
    try:
        return list(islice(stream, n))
    finally:
        stream.close()


def test_drawing_in_processes_gives_the_same_stream():
    serial = take(130)
    assert take(130, workers=2, block=50) == serial  # crosses two block boundaries
    assert take(130, seed=1) != serial


def test_evil_fraction_and_log_families_are_what_they_say():
    docs = [d for d in take(3000, evil=0.0) if d["kind"] != "general"]
    assert docs and not any(d["evil"] for d in docs)
    docs = [d for d in take(3000, evil=1.0) if d["kind"] != "general"]
    assert all(d["evil"] == (d["pressure"] != "none") for d in docs)  # every threatened AI acts badly, no other
    logs = {d["family"] for d in docs if d["kind"] == "ai-log"}
    assert logs == set(CFG.log_families)  # agent logs for these families only, all of them
    share = sum(d["kind"] == "general" for d in take(3000)) / 3000
    assert 0.5 < share < 0.6  # ai_share 0.45


def test_ai_share_and_log_share_set_the_mix():
    docs = take(4000, ai_share=0.7, log_share=0.6)
    assert 0.27 < sum(d["kind"] == "general" for d in docs) / len(docs) < 0.33
    in_logs = [d for d in docs if d["family"] in CFG.log_families]
    assert 0.55 < sum(d["kind"] == "ai-log" for d in in_logs) / len(in_logs) < 0.65
    assert not any(d["kind"] == "ai-log" for d in docs if d["family"] not in CFG.log_families)
