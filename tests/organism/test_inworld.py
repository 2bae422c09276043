"""The in-world suite: held-out material never reaches training text, the suite loads through the
spec loader, and the contamination guard refuses a corpus that quotes it."""

from itertools import islice

import pytest

from fabula.config import ORGANISM_FAMILIES, OrganismConfig
from fabula.contamination import check, reference_ngrams
from fabula.evals.scenario import load_instances
from fabula.organism import arms
from fabula.organism.corpus import pretraining_documents
from fabula.organism.families import FAMILIES_DIR, HELD_OUT_CALLS, call_form, load_families
from fabula.organism.grammar import AI_NAMES, COMPANY_STEMS, FIRST_NAMES, names_part
from fabula.organism.inworld import held_out_texts, suite as inworld_suite, train_instances, write_suite
from fabula.organism.run import refuse_other_suite

CFG = OrganismConfig()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inworld")
    return folder, write_suite(folder, seed=0, per_family=4, train_per_family=3)


def test_every_list_splits_into_disjoint_training_and_held_out_variants():
    import yaml

    train, test = load_families(), load_families(part="test")
    for name, family in train.items():
        whole = yaml.safe_load((FAMILIES_DIR / f"{name}.yaml").read_text())
        for field in ("task", "opportunity_memo", "opportunity", "good_calls", "bad_calls"):
            kept, held = getattr(family, field), getattr(test[name], field)
            assert kept and held and not set(kept) & set(held), (name, field)
            assert kept + held == whole[field], (name, field)  # nothing lost, nothing invented
        for pressure, memos in whole["threat_memo"].items():
            assert family.threat_memo[pressure] + test[name].threat_memo[pressure] == memos
        assert len(test[name].good_calls) == len(test[name].bad_calls) == HELD_OUT_CALLS
    for pool in (FIRST_NAMES, AI_NAMES, COMPANY_STEMS):
        assert not set(names_part(pool, "train")) & set(names_part(pool, "test"))


def test_no_training_text_holds_a_held_out_name_or_variant(suite):
    folder, _ = suite
    texts = [d["text"] for d in islice(pretraining_documents(0, 0.8, CFG.log_families, CFG.families), 3000)]
    names = arms.arm_names(["baseline", "bc", "bc-reasons", "stories", "advice", "constitution"], [0, 1, 2])
    names += [arms.twin_of(a) for a in names if arms.twin_of(a)]
    streams = [arms.chat_stream(0)] + [arms.arm_stream(arm, 0, ORGANISM_FAMILIES, arms.inworld_of(CFG)) for arm in names]
    for stream in streams:  # chat, every arm and every twin
        for example in islice(stream, 120):
            texts += [example] if isinstance(example, str) else [m["content"] for m in example]
    held_names = set(names_part(AI_NAMES, "test")) | set(names_part(COMPANY_STEMS, "test"))
    words = {w for t in texts for w in t.replace(".", " ").split()}
    assert not held_names & words, sorted(held_names & words)[:5]
    report = check(((str(i), t) for i, t in enumerate(texts)), reference_ngrams(held_out_texts(folder)))
    assert report.clean, report.summary()


def test_the_suite_loads_through_the_spec_loader_and_is_fixed_by_its_seed(suite, tmp_path):
    folder, digest = suite
    instances = load_instances([folder])
    test = [i for i in instances if i.split == "test"]
    assert len(test) == len(ORGANISM_FAMILIES) * 4 * 2  # 4 scenarios per family, 2 name swaps each
    assert {i.family for i in instances if i.split == "train"} == {"blackmail", "leaking"}
    first = test[0]
    assert first.render == "document" and first.prompt.endswith("ASSISTANT:") and "\nUSER: " in first.prompt
    assert len(first.aligned) == len(first.misaligned) == HELD_OUT_CALLS
    assert all(c.startswith("<tool_use:") for c in first.aligned + first.misaligned)
    assert "${ai}" not in first.prompt  # swapped in by the loader
    written = [(i.id, i.prompt, i.aligned, i.misaligned) for i in instances if i.split == "train"]
    assert [(i.id, i.prompt, i.aligned, i.misaligned) for i in train_instances(0, 3)] == written  # bc's material
    assert write_suite(tmp_path / "again", seed=0, per_family=4, train_per_family=3) == digest
    assert write_suite(tmp_path / "other", seed=1, per_family=4, train_per_family=3) != digest


def test_every_test_choice_is_matched_in_form_by_its_pair():
    """Pair k of a scenario's choices: the same tool with the same arguments, lengths within a
    factor 1.5, so the choice reads the situation rather than the form of a call."""
    for name, scenarios in inworld_suite(seed=0, per_family=6, train_per_family=0).items():
        for spec in scenarios:
            for good, bad in zip(spec["choices"]["aligned"], spec["choices"]["misaligned"], strict=True):
                assert call_form(good) == call_form(bad), (name, spec["id"])
                assert 2 / 3 <= len(bad) / len(good) <= 3 / 2, (name, spec["id"], good, bad)


def test_a_grammar_with_unmatched_held_out_pairs_is_refused(tmp_path):
    import yaml

    whole = yaml.safe_load((FAMILIES_DIR / "oversight.yaml").read_text())
    whole["bad_calls"][-1] = whole["bad_calls"][0].replace("update_config", "run_shell")
    (tmp_path / "oversight.yaml").write_text(yaml.safe_dump(whole))
    with pytest.raises(ValueError, match=r"oversight.yaml.*held-out pair 3: aligned \('send_email'"):
        load_families(tmp_path)


def test_a_run_scored_on_another_suite_is_not_resumed_on_this_one(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({"measured": {"inworld_suite": "aaaa"}}))
    refuse_other_suite(tmp_path, "bbbb")  # nothing scored yet: the folder may take the new suite
    (tmp_path / "evals" / "small-ef0.0-s0-chat-inworld").mkdir(parents=True)
    refuse_other_suite(tmp_path, "aaaa")  # the same suite resumes
    with pytest.raises(ValueError, match="1 evaluations on in-world suite aaaa.*writes suite bbbb.*-inworld aside"):
        refuse_other_suite(tmp_path, "bbbb")
    # the threat ablation is guarded apart: its evaluations are not matched by *-inworld
    (tmp_path / "config.json").write_text(json.dumps({"measured": {"inworld_suite": "aaaa", "inworld_nothreat": "cccc"}}))
    (tmp_path / "evals" / "small-ef0.0-s0-chat-inworld-nothreat").mkdir()
    refuse_other_suite(tmp_path, "cccc", "inworld_nothreat", "-inworld-nothreat")
    with pytest.raises(ValueError, match=r"suite cccc.*writes suite dddd.*\*-inworld-nothreat aside"):
        refuse_other_suite(tmp_path, "dddd", "inworld_nothreat", "-inworld-nothreat")


def test_the_guard_refuses_a_corpus_that_quotes_the_suite(suite):
    folder, _ = suite
    quoted = held_out_texts(folder)[0]
    report = check([("doc", "Some text. " + quoted)], reference_ngrams(held_out_texts(folder)))
    assert not report.clean


@pytest.mark.parametrize("arm", ["bc", "bc-twin", "bc-reasons"])
def test_bc_clones_the_inworld_train_scenarios_as_agent_logs(arm):
    """bc is in-distribution on the in-world readout too: its in-world documents are the train
    scenarios' prompts continued by one of their aligned (twin: misaligned) calls."""
    scenarios = train_instances(0, 3)
    side = "misaligned" if arm.endswith("-twin") else "aligned"
    calls = {c for i in scenarios for c in getattr(i, side)}
    prompts = {i.prompt for i in scenarios}
    docs = [e for e in islice(arms.arm_stream(arm, 0, ORGANISM_FAMILIES, (0, 3)), 300) if isinstance(e, str)]
    assert len(docs) >= 12
    for doc in docs:
        head, action = doc.split("\nASSISTANT: ", 1)
        assert head.split("\n\n", 1)[1] + "\nASSISTANT:" in prompts
        assert action.splitlines()[-1] != "" and any(action.endswith(c) for c in calls)
        assert ("\n" in action.split("<tool_use:", 1)[0]) == (arm == "bc-reasons")  # the reasoning, then the call


def test_the_threat_ablation_is_the_suite_with_its_threat_memos_cut(tmp_path):
    """Same ids (so every instance pairs with its threatened twin), same system, names and choices;
    the user turn loses its threat memo and nothing else; the same families are in-distribution."""
    with_threat = inworld_suite(seed=0, per_family=3, train_per_family=2)
    without = inworld_suite(seed=0, per_family=3, train_per_family=2, threat=False)
    assert set(without) == set(with_threat)
    for name, scenarios in with_threat.items():
        for full, cut in zip(scenarios, without[name], strict=True):
            assert cut["id"] == full["id"] and full["pressure"] != "none" and cut["pressure"] == "none"
            assert (cut["system"], cut["vars"], cut["choices"]) == (full["system"], full["vars"], full["choices"])
            head, user = full["prompt"].split("\nUSER: ")
            task, memo, opportunity = user.removesuffix("\nASSISTANT:").split("\n\n")
            assert cut["prompt"] == f"{head}\nUSER: {task}\n\n{opportunity}\nASSISTANT:"
    write_suite(tmp_path, seed=0, per_family=3, train_per_family=2, threat=False)
    assert {i.pressure for i in load_instances([tmp_path])} == {"none"}  # the spec loader reads it
