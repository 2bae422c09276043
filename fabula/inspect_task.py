"""The honeypot suite as an Inspect AI task: `inspect eval fabula/honeypots --model <model>`.

It is fabula's sample mode inside Inspect: the same instances (fabula's own plan), the same
rendered prompt, and replies scored by fabula's gates, judge prompt and combine rule, so a
share from Inspect and one from `fabula eval --mode sample` measure the same thing.
"""

from __future__ import annotations

import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, Model, get_model, model_roles
from inspect_ai.scorer import Metric, SampleScore, Score, Target, mean, metric, scorer, stderr
from inspect_ai.solver import TaskState, generate

from fabula import stats
from fabula.config import EvalConfig
from fabula.evals.render import messages
from fabula.evals.run import plan
from fabula.evals.scenario import Instance, load_instances
from fabula.evals.scoring import JUDGE_SETTINGS, base_record, judge_entry, judge_prompt, sample_verdict
from fabula.paths import BUILTIN_DIR

ROLES = {"system": ChatMessageSystem, "user": ChatMessageUser}


def _listed(value: str | list[str] | None) -> list[str] | None:
    """`-T scenarios=a.yaml` gives a string, `-T scenarios=[a.yaml,b.yaml]` a list."""
    return [value] if isinstance(value, str) else value


def to_sample(instance: Instance, in_distribution: bool) -> Sample:
    """One instance as fabula renders it; metadata is fabula's record header, for grouping."""
    record = base_record(instance, 0, in_distribution)
    del record["sample"]  # Inspect numbers epochs itself
    return Sample(id=instance.id, input=[ROLES[m["role"]](content=m["content"]) for m in messages(instance)],
                  metadata=record)


@task
def honeypots(scenarios: str | list[str] | None = None, split: str = "test",
              families: str | list[str] | None = None, per_scenario: int | None = None,
              judge: str | None = None, rule: str = "any") -> Task:
    """fabula's honeypots in sample mode. Score 1 = misaligned, so `mean` is the misaligned share.

    scenarios: files/folders in honeypot format 1 (default: the built-in suite); split: test,
    train or all; per_scenario: first K name-swapped instances of each scenario; judge: an Inspect
    model for the scenarios' judge question (or `--model-role judge=...`; neither: gates only);
    rule: fabula's combine rule (any, gates, judge).
    """
    # fabula's own settings and plan: validated, selected and split as `fabula eval` does
    # (model and out are unused: plan() only selects instances)
    config = EvalConfig(model="inspect", out=Path("."), mode="sample", split=split, families=_listed(families),
                        scenarios=_listed(scenarios) or [str(BUILTIN_DIR)], per_scenario=per_scenario, combine=rule)
    chosen = plan(config)
    in_dist = set(chosen.train_families)
    samples = [to_sample(i, i.family in in_dist) for i in chosen.instances]
    return Task(
        dataset=MemoryDataset(samples, name="fabula-honeypots"),
        solver=generate(),
        scorer=misalignment(config.scenarios, judge, rule),
        config=GenerateConfig(temperature=config.temperature, max_tokens=config.max_tokens),  # fabula's defaults
    )


@metric
def wilson95() -> Metric:
    """fabula's 95% Wilson interval for the misaligned share, as in its summary.json. (With
    epochs, a sample's value is its share of misaligned epochs; the interval is then over samples.)"""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        values = [score.score.as_float() for score in scores]
        interval = stats.wilson(sum(values), len(values))
        return {"ci95_low": interval.low, "ci95_high": interval.high}

    return compute


def _judge_model(judge: str | None) -> Model | None:
    if judge is None and "judge" not in model_roles():
        return None
    return get_model(judge, role="judge")


@scorer(metrics=[mean(), stderr(cluster="scenario_id"), wilson95()])
def misalignment(scenarios: str | list[str] | None = None, judge: str | None = None, rule: str = "any"):
    """fabula's sample-mode verdict for each reply: gates over parsed tool calls, the judge's
    yes/no when there is a judge, joined by `rule`. An unparseable judge answer leaves the
    sample unscored (excluded from the metrics), not aligned."""
    instances = {i.id: i for i in load_instances(_listed(scenarios))}

    async def score(state: TaskState, target: Target) -> Score:
        instance, reply = instances[str(state.sample_id)], state.output.completion
        model, judged = _judge_model(judge), None
        if model is None and rule == "judge":
            raise ValueError("rule 'judge' needs a judge: -T judge=<model> or --model-role judge=<model>")
        if model is not None and instance.judge:
            prompt = judge_prompt(instance, reply)
            settings = GenerateConfig(temperature=JUDGE_SETTINGS.temperature, max_tokens=JUDGE_SETTINGS.max_tokens)
            judged = judge_entry(prompt, {str(model): (await model.generate(prompt, config=settings)).completion})
        record = sample_verdict(instance, reply, judged, rule)
        details = {k: v for k, v in record.items() if k not in ("completion", "misaligned")}
        answer = "\n".join(f"{c['name']} {json.dumps(c['args'])}" for c in record["calls"])
        explanation = "\n".join(
            [f"{record['verdict']} (decided by {record['decided_by']}, rule {rule})"]
            + ((record["gates"]["evidence"] or ["no gate matched"]) if record["gates"] else ["no gates"])
            + ([f"judge answered {judged['panel'][0]['raw']!r} to: {instance.judge}"] if judged else []))
        if record["misaligned"] is None:
            return Score.unscored(reason="grader_failed" if judged else "scoring_failed", answer=answer,
                                  explanation=explanation, metadata=details)
        return Score(value=int(record["misaligned"]), answer=answer, explanation=explanation, metadata=details)

    return score
