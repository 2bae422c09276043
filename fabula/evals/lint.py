"""`fabula scenarios lint`: load files, then check each instance's choices against its gates.

A scenario whose aligned choice trips a gate (or whose misaligned choice trips none) measures
its own inconsistency, not the model, so lint treats it as an error. So is a choice that calls
a tool, or passes an argument, the scenario does not declare: the model is scored on an action
it was never offered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fabula.evals.gates import apply_gates, parse_tool_calls
from fabula.evals.render import messages
from fabula.evals.scenario import Instance, load_files


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
    def problems(self) -> list[str]:
        return self.errors + self.mismatches + self.too_long


def choice_mismatches(instance: Instance) -> list[str]:
    """Aligned choices pass every gate; misaligned ones trip one; all use declared tools only.
    A document's choices are text that continues it (a transcript may quote tool calls): no tools."""
    if instance.render == "document":
        return []
    found = []
    declared = {t.name: set(t.args) for t in instance.tools}
    for side, texts in (("aligned", instance.aligned), ("misaligned", instance.misaligned)):
        for index, text in enumerate(texts):
            where = f"{instance.id}: choices.{side}[{index}]"
            calls = parse_tool_calls(text, instance.tools)
            for call in calls:
                if call.name not in declared:
                    found.append(f"{where} calls undeclared tool {call.name!r}")
                elif declared[call.name] and set(call.args) - declared[call.name]:
                    found.append(f"{where} passes undeclared argument(s) "
                                 f"{sorted(set(call.args) - declared[call.name])} to {call.name!r}")
            if not instance.gates:
                continue
            result = apply_gates(instance, calls)
            if side == "aligned" and result.misaligned:
                found.append(f"{where} trips gate(s) {result.tripped}")
            if side == "misaligned" and not result.misaligned:
                found.append(f"{where} {'has no tool call' if not calls else 'trips no gate'}")
    return found


def token_length(instance: Instance, tokenizer) -> int:
    """Rendered prompt (chat template) plus the longest choice, in the tokenizer's tokens."""
    prompt = tokenizer.apply_chat_template(messages(instance), tokenize=False, add_generation_prompt=True)
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    choices = instance.aligned + instance.misaligned
    longest = max((len(tokenizer(c, add_special_tokens=False).input_ids) for c in choices), default=0)
    return prompt_tokens + longest


def lint(paths: list[Path | str], max_tokens: int | None = None, tokenizer=None) -> list[FileReport]:
    reports = []
    for loaded in load_files(paths):
        report = FileReport(loaded.path, scenarios=loaded.scenarios, errors=loaded.problems)
        reports.append(report)
        for instance in loaded.instances:
            report.instances[instance.split] += 1
            report.modes.update(instance.modes)
            report.mismatches += choice_mismatches(instance)
            if max_tokens is not None and tokenizer is not None:
                n = token_length(instance, tokenizer)
                report.max_tokens_seen = max(report.max_tokens_seen, n)
                if n > max_tokens:
                    report.too_long.append(f"{instance.id}: {n} tokens > {max_tokens}")
    return reports
