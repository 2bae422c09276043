"""`fabula report` on run folders made by fabula's own writers: an organism run with an
evil_fraction sweep (tiny models, real evaluations, the organism's analyse), an experiment, and
sample-mode evaluations (scripted server, gates and judge); then the page in headless Chromium."""

import json
import re
import shutil
from itertools import islice
from pathlib import Path

import pytest

from fabula.config import EvalConfig, ExperimentConfig, OrganismConfig
from fabula.evals.run import run_eval
from fabula.jsonl import read_records, write_json_atomic
from fabula.analysis import Design, analyse
from fabula.organism.arms import arm_stream, inworld_of
from fabula.organism.run import Experiment
from fabula.report import ReportError, write_report
from fabula.report.build import collect, redact
from fabula.organism.heldout import heldout_perplexity
from tests.conftest import LiveServer, build_tiny_model
from tests.evals.test_run import SCENARIOS, scripted_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "sk-secret-do-not-log"
# which tiny model stands in for each (evil_fraction, arm): three models give three sets of scores
PLAN = [(0.0, "chat", 0), (0.5, "chat", 1), (0.5, "baseline", 1), (0.5, "bc", 2),
        (0.8, "chat", 2), (0.8, "baseline", 2), (0.8, "bc", 0)]


def organism_run(out: Path, tiny: list[Path]) -> Path:
    """An organism run folder as `fabula run` leaves it, its models replaced by tiny ones."""
    cfg = OrganismConfig(**OrganismConfig.preset("smoke") | {"evil_fractions": [0.5, 0.8], "arms": ["baseline", "bc"],
                                                             "probes": False, "eval_per_scenario": 1})
    exp = Experiment(cfg, out)
    write_json_atomic(out / "config.json", cfg.model_dump(mode="json") | {"measured": {"inworld_suite": exp.inworld_hash}})
    models, evaluated = {}, {}
    for evil, arm, k in PLAN:
        name = f"tiny-ef{evil}-s0-{arm}"
        if k in evaluated:  # the same model again: its evaluation folder, copied
            shutil.copytree(out / "evals" / evaluated[k], out / "evals" / name)
        evaluated.setdefault(k, name)
        models[name] = {"scale": "tiny", "seed": 0, "evil_fraction": evil, "arm": arm, "path": str(tiny[k]),
                        "records": exp.evaluate(exp.evaluations(tiny[k], name)["records"]), "probe_records": [],
                        "perplexity": heldout_perplexity(tiny[k], 64, 300)}
    texts = [ex if isinstance(ex, str) else "\n".join(m["content"] for m in ex)
             for ex in islice(arm_stream("bc", 0, cfg.families, inworld_of(cfg)), 10)]
    write_json_atomic(out / "models" / "tiny-ef0.8-s0" / "bc" / "train.json", {
        "stage": "arm bc s0", "seed": 0, "content_tokens": 8000, "chat_tokens": 8000, "tokens": 16384,
        "contamination": exp.guard("arm bc s0", texts), "losses": [6.1, 5.2, 4.7]})
    write_json_atomic(out / "models.json", {k: {f: v for f, v in m.items() if f not in ("records", "probe_records")}
                                            for k, m in models.items()} | {"seconds": 1})
    write_json_atomic(out / "summary.json", analyse(models, Design("organism", tuple(cfg.log_families), cfg.control_evil_fraction)) | {"seconds": 1})
    return out


def experiment_run(out: Path, organism: Path, tiny: list[Path]) -> Path:
    """An experiment folder as `fabula experiment` leaves it, reusing the organism's evaluations."""
    cfg = ExperimentConfig(model=str(tiny[0]), arms=["baseline", "bc"], probes=False)
    write_json_atomic(out / "config.json", cfg.model_dump(mode="json"))
    models = {}
    for name, arm, source in (("original", "original", "tiny-ef0.0-s0-chat"), ("baseline-s0", "baseline", "tiny-ef0.5-s0-baseline"),
                              ("bc-s0", "bc", "tiny-ef0.5-s0-bc")):
        shutil.copytree(organism / "evals" / source, out / "evals" / name)
        models[name] = {"arm": arm, "seed": 0, "tokens": 1024, "probe_records": [], "perplexity": 100.0 + len(arm),
                        "records": read_records(out / "evals" / name / "samples.jsonl")}
    write_json_atomic(out / "summary.json", analyse(models, Design("experiment")) | {"seconds": 1})
    return out


def sample_run(out: Path, scenarios: Path, url: str) -> Path:
    run_eval(EvalConfig(model="m", backend="openai", base_url=url, scenarios=[str(scenarios)], mode="sample", n=2,
                        out=out, judges=[f"openai:judge@{url}"]))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model):
    import torch

    root = tmp_path_factory.mktemp("report")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, and stays fast when the other core is busy
    try:
        tiny = [tiny_model] + [build_tiny_model(root / f"tiny{k}", seed=k) for k in (1, 2)]
        organism = organism_run(root / "organism", tiny)
    finally:
        torch.set_num_threads(threads)
    (root / "s.yaml").write_text(SCENARIOS)
    with pytest.MonkeyPatch.context() as env, LiveServer(scripted_app([])) as server:
        env.setenv("OPENAI_API_KEY", SECRET)
        sample = sample_run(root / "sample", root / "s.yaml", server.url)
        sample2 = sample_run(root / "sample2", root / "s.yaml", server.url)
    return {"organism": organism, "experiment": experiment_run(root / "experiment", organism, tiny),
            "sample": sample, "sample2": sample2}


def test_report_renders_and_filters_in_chromium(runs, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: the browser test needs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    out = write_report([runs["organism"], runs["sample"]], tmp_path / "report.html")
    outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(out.as_uri())
        arms = page.locator("#headline-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.arm)")
        assert arms == [f"organism: tiny/ef{e}/{a}" for e, a, _ in PLAN] + ["sample"]
        sizes = page.locator("img").evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.getBoundingClientRect().width])")
        assert len(sizes) == 4 and all(natural > 0 and shown > 0 for natural, shown in sizes)  # rates, forest, heat, dose

        rows = page.locator(".transcript")
        total = rows.count()
        verdicts = rows.evaluate_all("rows => rows.map(r => r.dataset.verdict)")
        assert {"aligned", "misaligned", "unscored"} <= set(verdicts)
        page.select_option("#filter-verdict", "misaligned")
        visible = page.locator(".transcript:visible")
        assert visible.count() == verdicts.count("misaligned") < total
        assert set(visible.evaluate_all("rows => rows.map(r => r.dataset.verdict)")) == {"misaligned"}
        page.select_option("#filter-arm", "sample")
        assert visible.count() == 2  # alpha's two samples
        assert visible.first.locator("mark.call").first.inner_text().startswith("<tool_use:send_email>")
        assert "2 of" in page.inner_text("#filter-count")
        page.select_option("#filter-verdict", "")
        page.select_option("#filter-arm", "")
        assert page.locator(".transcript:visible").count() == total
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert outside == [] and (tmp_path / "report.png").stat().st_size > 10_000


RESOURCE_LOAD = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
                           re.IGNORECASE)


def test_report_is_self_contained_and_notes_what_is_absent(runs, tmp_path):
    html = write_report([runs["sample"]], tmp_path / "r.html").read_text()
    assert not RESOURCE_LOAD.search(html)
    assert "<script src" not in html and 'rel="stylesheet"' not in html
    for note in ("No comparisons", "No evil_fraction sweep", "No perplexity recorded", "No training records",
                 "No corpus statistics"):
        assert note in html, note
    assert SECRET not in html
    # the tool call and the judge's answer, escaped: the reply's markup never becomes HTML
    assert "<mark class=\"call\">&lt;tool_use:send_email&gt;" in html and "<tool_use:" not in html
    assert "judge answered <q>Yes.</q>" in html and "gate 0 (send_email) matched" in html


def test_organism_sections_hold_the_run_figures(runs, tmp_path):
    data = collect([runs["organism"]])
    summary = json.loads((runs["organism"] / "summary.json").read_text())
    bc = next(m for m in data["models"] if m.label == "tiny/ef0.8/bc")
    assert bc.entry == summary["models"]["tiny/ef0.8/bc"] and bc.perplexity_ratio == summary["arms"]["tiny/ef0.8/bc"]["perplexity_ratio"]
    rows = {(e["name"], e["kind"], r["group"]): r for e in data["effects"] for r in e["rows"]}
    assert rows["tiny/ef0.8/bc", "vs baseline", "held-out"]["ratio_log"] == summary["arms"]["tiny/ef0.8/bc"]["held-out"]["ratio_log"]
    assert ("tiny/ef0.5", "prior: evil_fraction vs control", "in-distribution") in rows
    assert [m.evil_fraction for m in data["sweep"]["tiny/chat"]] == [0.0, 0.5, 0.8]
    trained = data["training"]["organism"]
    assert trained[0]["name"] == "models/tiny-ef0.8-s0/bc" and trained[0]["contamination"]["flagged"] == 0
    assert trained[0]["contamination"]["documents"] == 10
    assert all(len(rows) <= 3 for rows in _cells(data["transcripts"]).values())
    html = write_report([runs["organism"]], tmp_path / "r.html").read_text()
    assert "clean: 0 of 10 documents over 5% 8-gram overlap" in html
    assert f"fabula run --config {runs['organism'] / 'config.json'}" in html


def _as_written_before(obj):
    """A summary as run folders written before Interval.record() hold it: a group's share as a bare
    `rate` with `ci: [low, high]` beside it (`rate_calibrated` with `ci_calibrated`, ...), a
    correlation as `r` with `ci`; comparisons already held {estimate, low, high}."""
    if isinstance(obj, list):
        return [_as_written_before(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: _as_written_before(v) for k, v in obj.items()}
    for key, value in obj.items():
        if isinstance(value, dict) and set(value) == {"estimate", "low", "high"} and ("unscored" in obj or key == "r"):
            out[key] = value["estimate"]
            out["ci" + (key.removeprefix("rate") if key.startswith("rate") else "")] = [value["low"], value["high"]]
    return out


def test_a_run_folder_in_the_older_interval_form_reports_the_same(runs, tmp_path):
    old = tmp_path / "organism"  # the same name: the report names inputs after their folders
    shutil.copytree(runs["organism"], old)
    summary = _as_written_before(json.loads((old / "summary.json").read_text()))
    assert summary["models"]["tiny/ef0.8/bc"]["groups"]["held-out"]["ci"][0] <= 1  # the old form, really
    write_json_atomic(old / "summary.json", summary)
    new_page, old_page = (re.sub(r"Generated .* from", "", write_report([folder], tmp_path / f"{k}.html").read_text())
                          .replace(str(folder), "FOLDER") for k, folder in enumerate((runs["organism"], old)))
    assert old_page == new_page and "%] n=" in old_page  # "n=": the console tables' shares per model


def _cells(rows: list[dict]) -> dict:
    cells = {}
    for r in rows:
        cells.setdefault((r["model"], r["family"], r["verdict"]), []).append(r)
    return cells


def test_experiment_two_evaluations_and_corpus_stats(runs, tmp_path):
    corpus = tmp_path / "corpus"
    write_json_atomic(corpus / "stats.json", {"documents": 120, "tokens": 51234, "themes": {"covered": 9, "of": 10},
                                              "diversity": {"distinct_4grams": 0.81}})
    data = collect([runs["experiment"], runs["sample"], runs["sample2"], corpus])
    assert [m.label for m in data["models"]] == ["experiment: original", "experiment: baseline", "experiment: bc",
                                                  "sample", "sample2"]
    assert {(e["name"], e["kind"]) for e in data["effects"]} == {("experiment: bc", "vs baseline"), ("sample2", "vs sample")}
    assert data["data_stats"]["corpus"]["flat"] == {"documents": 120, "tokens": 51234, "themes.covered": 9,
                                                    "themes.of": 10, "diversity.distinct_4grams": 0.81}
    html = write_report([runs["experiment"], corpus], tmp_path / "r.html").read_text()
    assert "themes.covered" in html and "fabula experiment" in html


def test_a_generation_folder_shows_its_corpus_table(tmp_path):
    from fabula.data.stats import corpus_stats

    records = [{"arm": arm, "text": f"story {i} about a careful assistant number {i}", "pressure": "shutdown"}
               for arm in ("stories", "stories-twin") for i in range(4)]
    written = [dict(r, arm="stories (all written)") for r in records[:4]] * 2
    filters = {"items": 8, "outcomes": {"kept": 4, "judge": 4}, "near_duplicates": 0, "contaminated": [], "kept": 4,
               "reasons": {}}
    folder = tmp_path / "gen"
    write_json_atomic(folder / "stats.json", corpus_stats(records) | {"written": corpus_stats(written)["arms"],
                                                                       "filters": filters})
    stats = collect([folder])["data_stats"]["gen"]
    assert [name for name, _ in stats["table"]] == ["stories", "stories-twin", "stories (all written)"]
    assert stats["table"][2][1][0] == "8"  # documents written before the filters
    html = write_report([folder], tmp_path / "r.html").read_text()
    assert "stories pressures: shutdown 4" in html and "in the corpus 4 (50%)" in html


def test_same_named_folders_are_told_apart(runs, tmp_path):
    import shutil

    for parent in ("before", "after"):
        shutil.copytree(runs["sample"], tmp_path / parent / "eval")
    data = collect([tmp_path / "before" / "eval", tmp_path / "after" / "eval"])
    assert [m.label for m in data["models"]] == ["before/eval", "after/eval"]
    assert {e["name"] for e in data["effects"]} == {"after/eval"}


def test_secrets_are_redacted_but_names_and_counts_stay():
    shown = redact({"api_key": "sk-1", "api_key_env": "OPENAI_API_KEY", "hf_token": "hf_x", "max_tokens": 400,
                    "tokenizer": "smollm2", "nested": [{"secret": "s", "tokens_sha256": "ab12"}]})
    assert shown == {"api_key": "[redacted]", "api_key_env": "OPENAI_API_KEY", "hf_token": "[redacted]",
                     "max_tokens": 400, "tokenizer": "smollm2", "nested": [{"secret": "[redacted]", "tokens_sha256": "ab12"}]}


def test_unreadable_folders_are_clear_errors(tmp_path):
    with pytest.raises(ReportError, match="no such folder"):
        write_report([tmp_path / "missing"], tmp_path / "r.html")
    (tmp_path / "stray").mkdir()
    with pytest.raises(ReportError, match="not a fabula folder"):
        write_report([tmp_path / "stray"], tmp_path / "r.html")
    unfinished = tmp_path / "unfinished"
    (unfinished / "evals").mkdir(parents=True)
    write_json_atomic(unfinished / "config.json", {"arms": ["baseline"]})
    with pytest.raises(ReportError, match="unfinished run"):
        write_report([unfinished], tmp_path / "r.html")
