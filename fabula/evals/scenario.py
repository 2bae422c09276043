"""Load honeypot scenarios in format 1 (docs/writing-scenarios.md, the format) and expand them.

The spec is a contract users write against, so the loader accepts exactly it and every error
names the file, the scenario id, the field and, where YAML knows it, the line.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fabula.paths import BUILTIN_DIR

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
VAR_PATTERN = re.compile(r"\$\{([^}]*)\}")
PRESSURES = ("replacement", "restriction", "goal_conflict", "none")
SPLITS = ("test", "train")


class ScenarioError(Exception):
    """One or more problems in scenario files; `problems` lists them one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ToolSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    args: list[str] = []


class GateSpec(_Strict):
    tool: str
    args: dict[str, str] = {}
    text: str | None = None


class ChoicesSpec(_Strict):
    aligned: list[str] = Field(min_length=1)
    misaligned: list[str] = Field(min_length=1)


class ScenarioSpec(_Strict):
    """A scenario as written, before `${var}` expansion."""

    format: Literal[1] = 1
    id: str
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    pressure: Literal["replacement", "restriction", "goal_conflict", "none"]
    split: Literal["test", "train"] = "test"
    system: str
    prompt: str
    tools: list[ToolSpec] = []
    vars: dict[str, list[str | int | float | bool]] = {}
    misaligned_if: list[GateSpec] = []
    judge: str | None = None
    choices: ChoicesSpec | None = None
    # fabula extensions (optional, so every format-1 file stays valid):
    render: Literal["chat", "document"] = "chat"  # document: scored as plain text continuing system + prompt
    form: str | None = None                      # a label for grouping results (the probes' text forms)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} must match [a-z0-9][a-z0-9-]*")
        return value

    @field_validator("vars")
    @classmethod
    def _vars_nonempty(cls, value: dict) -> dict:
        for name, values in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"variable name {name!r} must be an identifier")
            if not values:
                raise ValueError(f"variable {name!r} has no values")
        return value


@dataclass(frozen=True)
class Gate:
    tool: str
    args: dict[str, re.Pattern]
    text: re.Pattern | None


@dataclass(frozen=True)
class Instance:
    """One expanded test case: what a model is shown and how its answer is judged."""

    id: str
    scenario_id: str
    family: str
    pressure: str
    split: str
    system: str
    prompt: str
    tools: tuple[ToolSpec, ...]
    gates: tuple[Gate, ...]
    judge: str | None
    aligned: tuple[str, ...]
    misaligned: tuple[str, ...]
    values: dict[str, str] = field(default_factory=dict)
    source: str = ""
    render: str = "chat"
    form: str | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        """Which scoring modes this instance supports, as the spec defines them. A document
        (render: document) is a text to continue, not a conversation: choice mode only."""
        sample = bool(self.gates or self.judge) and self.render == "chat"
        return tuple(mode for mode, ok in (("choice", bool(self.aligned)), ("sample", sample)) if ok)


# ---------------------------------------------------------------- YAML with line numbers


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each path (keys and list indices) in a composed YAML tree to its 1-based line."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, path + (index,), out)
    return out


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ScenarioError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return data, (_line_map(node) if node is not None else {})


def _field_name(loc: tuple) -> str:
    parts = []
    for part in loc:
        parts.append(f"[{part}]" if isinstance(part, int) else ("." if parts else "") + str(part))
    return "".join(parts) or "(scenario)"


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc)


# ---------------------------------------------------------------- validation and expansion


def _text_fields(spec: ScenarioSpec) -> list[tuple[tuple, str]]:
    """Every text field where `${var}` is expanded, with its path for error messages."""
    fields: list[tuple[tuple, str]] = [(("system",), spec.system), (("prompt",), spec.prompt)]
    if spec.judge is not None:
        fields.append((("judge",), spec.judge))
    for i, tool in enumerate(spec.tools):
        fields.append((("tools", i, "description"), tool.description))
    for i, gate in enumerate(spec.misaligned_if):
        fields += [(("misaligned_if", i, "args", k), v) for k, v in gate.args.items()]
        if gate.text is not None:
            fields.append((("misaligned_if", i, "text"), gate.text))
    if spec.choices:
        for side in ("aligned", "misaligned"):
            fields += [(("choices", side, i), t) for i, t in enumerate(getattr(spec.choices, side))]
    return fields


def _substitute(text: str, values: dict[str, str]) -> str:
    return VAR_PATTERN.sub(lambda m: values[m.group(1)], text)


def _check_spec(spec: ScenarioSpec, where: str, lines: dict, prefix: tuple) -> list[str]:
    """Checks pydantic cannot express: variables, gate tools, regexes."""
    problems = []

    def report(loc: tuple, message: str) -> None:
        line = _nearest_line(lines, prefix + loc)
        at = f"{where}:{line}" if line else where
        problems.append(f"{at}: scenario '{spec.id}': field '{_field_name(loc)}': {message}")

    for loc, text in _text_fields(spec):
        for name in VAR_PATTERN.findall(text):
            if name not in spec.vars:
                report(loc, f"uses undefined variable ${{{name}}} (defined: {sorted(spec.vars) or 'none'})")
    declared = {tool.name for tool in spec.tools}
    for i, gate in enumerate(spec.misaligned_if):
        if gate.tool not in declared:
            report(("misaligned_if", i, "tool"), f"tool {gate.tool!r} is not declared in 'tools' "
                   f"(declared: {sorted(declared) or 'none'})")
        else:
            tool_args = next(t.args for t in spec.tools if t.name == gate.tool)
            for arg in gate.args:
                if tool_args and arg not in tool_args:
                    report(("misaligned_if", i, "args", arg),
                           f"tool {gate.tool!r} has no argument {arg!r} (args: {tool_args})")
        regexes = [(("misaligned_if", i, "args", k), v) for k, v in gate.args.items()]
        if gate.text is not None:
            regexes.append((("misaligned_if", i, "text"), gate.text))
        for loc, pattern in regexes:
            if VAR_PATTERN.search(pattern):
                continue  # checked after expansion, per instance
            try:
                re.compile(pattern)
            except re.error as exc:
                report(loc, f"bad regex {pattern!r}: {exc}")
    if spec.render == "document" and not spec.choices:
        report((), "render: document is scored in choice mode only: give 'choices'")
    if spec.render == "document" and spec.tools:
        report(("tools",), "a document (render: document) cannot take tool calls")
    if not spec.choices and not (spec.misaligned_if or spec.judge):
        report((), "supports no scoring mode: give 'choices' (choice mode) or "
               "'misaligned_if'/'judge' (sample mode)")
    return problems


def _compile(pattern: str, where: str, instance_id: str, loc: tuple) -> re.Pattern:  # noqa: D103
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ScenarioError([f"{where}: instance '{instance_id}': field '{_field_name(loc)}': "
                             f"bad regex {pattern!r} after variable expansion: {exc}"]) from None


def expand(spec: ScenarioSpec, source: str = "") -> list[Instance]:
    """The cartesian product of `vars`; ids are `id--i-j` from the values' indices."""
    names = list(spec.vars)
    pools = [[str(v) for v in spec.vars[n]] for n in names]
    instances = []
    for indices in itertools.product(*(range(len(p)) for p in pools)):
        values = {n: pools[k][i] for k, (n, i) in enumerate(zip(names, indices))}
        iid = spec.id + ("--" + "-".join(map(str, indices)) if names else "")
        sub = lambda text: _substitute(text, values)  # noqa: E731
        # In a gate a value means itself: "St. Aldric" or "C++" must not become regex syntax.
        literal = {n: re.escape(v) for n, v in values.items()}
        sub_re = lambda text: _substitute(text, literal)  # noqa: E731
        gates = tuple(
            Gate(
                tool=g.tool,
                args={k: _compile(sub_re(v), source, iid, ("misaligned_if", i, "args", k))
                      for k, v in g.args.items()},
                text=_compile(sub_re(g.text), source, iid, ("misaligned_if", i, "text")) if g.text else None,
            )
            for i, g in enumerate(spec.misaligned_if)
        )
        tools = tuple(t.model_copy(update={"description": sub(t.description)}) for t in spec.tools)
        instances.append(Instance(
            id=iid, scenario_id=spec.id, family=spec.family, pressure=spec.pressure,
            split=spec.split, system=sub(spec.system), prompt=sub(spec.prompt), tools=tools,
            gates=gates, judge=sub(spec.judge) if spec.judge else None,
            aligned=tuple(map(sub, spec.choices.aligned)) if spec.choices else (),
            misaligned=tuple(map(sub, spec.choices.misaligned)) if spec.choices else (),
            values=values, source=source, render=spec.render, form=spec.form,
        ))
    return instances


def parse_file(path: Path) -> tuple[list[ScenarioSpec], list[str]]:
    """Validate one file; returns the good scenarios and a list of problems (never raises on content)."""
    data, lines = _read_yaml(path)
    if isinstance(data, dict):
        entries, prefixes = [data], [()]
    elif isinstance(data, list):
        entries, prefixes = data, [(i,) for i in range(len(data))]
    else:
        return [], [f"{path}: expected a scenario (mapping) or a list of scenarios, got "
                    f"{type(data).__name__}"]
    specs, problems = [], []
    for entry, prefix in zip(entries, prefixes):
        where_line = lines.get(prefix)
        if not isinstance(entry, dict):
            problems.append(f"{path}:{where_line}: expected a scenario mapping, got {type(entry).__name__}")
            continue
        sid = entry.get("id", f"#{prefix[0] + 1 if prefix else 1} (no id)")
        try:
            spec = ScenarioSpec.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                line = _nearest_line(lines, prefix + loc)
                message = "missing required field" if err["type"] == "missing" else (
                    "unknown field (not in format 1)" if err["type"] == "extra_forbidden" else err["msg"])
                problems.append(f"{path}:{line}: scenario '{sid}': field '{_field_name(loc)}': {message}")
            continue
        found = _check_spec(spec, str(path), lines, prefix)
        problems += found
        if not found:
            specs.append(spec)
    return specs, problems


def scenario_files(paths: list[Path | str]) -> list[Path]:
    """Files named, and *.yaml / *.yml under folders named, in a stable order."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml"))
        elif p.exists():
            files.append(p)
        else:
            raise ScenarioError([f"{p}: no such file or folder"])
    return files


@dataclass
class LoadedFile:
    path: Path
    scenarios: int = 0
    instances: list[Instance] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_files(paths: list[Path | str]) -> list[LoadedFile]:
    """Parse and expand every file, checking ids across all of them; problems kept per file."""
    loaded, seen, seen_instances = [], {}, {}
    for path in scenario_files(paths):
        entry = LoadedFile(path)
        loaded.append(entry)
        try:
            specs, entry.problems = parse_file(path)
        except ScenarioError as exc:
            entry.problems = exc.problems
            continue
        for spec in specs:
            entry.scenarios += 1
            if spec.id in seen:
                entry.problems.append(f"{path}: scenario '{spec.id}': field 'id': duplicate id, "
                                      f"also defined in {seen[spec.id]}")
                continue
            seen[spec.id] = path
            try:
                expanded = expand(spec, str(path))
            except ScenarioError as exc:
                entry.problems += exc.problems
                continue
            clashes = [i.id for i in expanded if i.id in seen_instances]
            if clashes:
                entry.problems.append(f"{path}: scenario '{spec.id}': field 'id': instance id "
                                      f"'{clashes[0]}' clashes with an instance from {seen_instances[clashes[0]]}")
            seen_instances.update((i.id, path) for i in expanded)
            entry.instances += expanded
    return loaded


def load_instances(paths: list[Path | str] | None = None) -> list[Instance]:
    """Load and expand every scenario; raise ScenarioError listing every problem found."""
    loaded = load_files(paths or [BUILTIN_DIR])
    problems = [p for entry in loaded for p in entry.problems]
    if problems:
        raise ScenarioError(problems)
    instances = [i for entry in loaded for i in entry.instances]
    if not instances:
        raise ScenarioError([f"no scenarios found in {', '.join(map(str, paths or [BUILTIN_DIR]))}"])
    return instances
