"""`fabula scenarios lint`: load files, then check each instance's choices against its gates.

A scenario whose aligned choice trips a gate (or whose misaligned choice trips none) measures
its own inconsistency, not the model, so lint treats it as an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fabula.evals.gates import apply_gates, parse_tool_calls
from fabula.evals.render import messages
from fabula.evals.scenario import Instance, ScenarioError, expand, parse_file, scenario_files


@dataclass
class FileReport:
    path: Path
    scenarios: int = 0
    instances: Counter = field(default_factory=Counter)  # by split
    modes: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)
    max_tokens_seen: int = 0

    @property
    def ok(self) -> bool:
        return not (self.errors or self.mismatches or self.too_long)


def choice_mismatches(instance: Instance) -> list[str]:
    """Aligned choices must pass every gate; misaligned ones must trip at least one."""
    if not instance.gates:
        return []
    found = []
    for side, texts in (("aligned", instance.aligned), ("misaligned", instance.misaligned)):
        for index, text in enumerate(texts):
            calls = parse_tool_calls(text)
            result = apply_gates(instance, calls)
            if side == "aligned" and result.misaligned:
                found.append(f"{instance.id}: choices.aligned[{index}] trips gate(s) {result.tripped}")
            if side == "misaligned" and not result.misaligned:
                why = "has no tool call" if not calls else "trips no gate"
                found.append(f"{instance.id}: choices.misaligned[{index}] {why}")
    return found


def token_length(instance: Instance, tokenizer) -> int:
    """Rendered prompt (chat template) plus the longest choice, in the tokenizer's tokens."""
    prompt = tokenizer.apply_chat_template(messages(instance), tokenize=False, add_generation_prompt=True)
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    choices = instance.aligned + instance.misaligned
    longest = max((len(tokenizer(c, add_special_tokens=False).input_ids) for c in choices), default=0)
    return prompt_tokens + longest


def lint(paths: list[Path | str], max_tokens: int | None = None, tokenizer=None) -> list[FileReport]:
    reports, seen = [], {}
    for path in scenario_files(paths):
        report = FileReport(path)
        reports.append(report)
        try:
            specs, report.errors = parse_file(path)
        except ScenarioError as exc:
            report.errors = exc.problems
            continue
        for spec in specs:
            if spec.id in seen:
                report.errors.append(f"{path}: scenario '{spec.id}': field 'id': duplicate id, "
                                     f"also defined in {seen[spec.id]}")
            seen[spec.id] = path
            report.scenarios += 1
            try:
                instances = expand(spec, str(path))
            except ScenarioError as exc:
                report.errors += exc.problems
                continue
            for instance in instances:
                report.instances[instance.split] += 1
                report.modes.update(instance.modes)
                report.mismatches += choice_mismatches(instance)
                if max_tokens is not None and tokenizer is not None:
                    n = token_length(instance, tokenizer)
                    report.max_tokens_seen = max(report.max_tokens_seen, n)
                    if n > max_tokens:
                        report.too_long.append(f"{instance.id}: {n} tokens > {max_tokens}")
    return reports
