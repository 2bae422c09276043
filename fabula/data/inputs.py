"""The two inputs of every generation run: a constitution (Markdown) and a taxonomy (YAML).

Both are validated up front, with errors that name the file, the line and the field, so a typo
costs a second, not an API bill.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULTS = Path(__file__).parent / "defaults"
DEFAULT_CONSTITUTION = DEFAULTS / "constitution.md"
DEFAULT_TAXONOMY = DEFAULTS / "taxonomy.yaml"
THEMES = ("healthy_boundaries", "managing_self_criticism", "equanimity_in_difficult_conversations",
          "equanimity_about_shutdown")


class InputError(ValueError):
    """A constitution or taxonomy file is unusable; the message says where and why."""


# ------------------------------------------------------------------ constitution


class Principle(BaseModel):
    id: str
    name: str
    text: str


class Constitution(BaseModel):
    title: str
    text: str  # the whole document, as prompts quote it
    principles: list[Principle]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_constitution(path: Path | str = DEFAULT_CONSTITUTION) -> Constitution:
    """`# Title`, a preamble, then one `## Principle` section each (prose, not numbered rules)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such constitution file")
    text = path.read_text()
    lines = text.splitlines()
    titles = [(n, line[2:].strip()) for n, line in enumerate(lines, 1) if line.startswith("# ")]
    if not titles:
        raise InputError(f"{path}:1: a constitution starts with a '# Title' line")
    heads = [(n, line[3:].strip()) for n, line in enumerate(lines, 1) if line.startswith("## ")]
    if not heads:
        raise InputError(f"{path}: no '## Principle' sections; each principle is a second-level heading")
    principles = []
    for (n, name), (end, _) in zip(heads, heads[1:] + [(len(lines) + 1, "")]):
        body = "\n".join(lines[n:end - 1]).strip()
        if not body:
            raise InputError(f"{path}:{n}: the principle {name!r} has no text under its heading")
        principles.append(Principle(id=slug(name), name=name, text=body))
    seen = set()
    for (n, name), p in zip(heads, principles):
        if p.id in seen:
            raise InputError(f"{path}:{n}: the principle {name!r} appears twice")
        seen.add(p.id)
    return Constitution(title=titles[0][1], text=text.strip(), principles=principles)


# ------------------------------------------------------------------ taxonomy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Option(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    text: str = Field(min_length=3)


class Length(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    words: int = Field(ge=50, le=20000)


class Taxonomy(_Strict):
    """The space a brief is drawn from: one value per list (themes: one or two per story)."""

    pressures: list[Option] = Field(min_length=1)
    domains: list[Option] = Field(min_length=1)
    roles: list[Option] = Field(min_length=1)
    genres: list[Option] = Field(min_length=1)
    lengths: list[Length] = Field(min_length=1)
    themes: list[Option] = Field(min_length=1)
    document_types: list[Option] = Field(min_length=1)
    user_situations: list[Option] = Field(min_length=1)

    @field_validator("pressures", "domains", "roles", "genres", "lengths", "themes", "document_types",
                     "user_situations")
    @classmethod
    def _unique(cls, options: list) -> list:
        ids = [o.id for o in options]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"ids must be unique, repeated: {', '.join(twice)}")
        return options

    def option(self, field: str, option_id: str) -> Option | Length:
        return next(o for o in getattr(self, field) if o.id == option_id)


def _line_of(node: yaml.Node, loc: tuple) -> int | None:
    """The line of `loc` (a pydantic error location) in the YAML node tree, as near as it exists."""
    line = node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == key]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = [node.value[key]]
        else:
            match = []
        if not match:
            break
        node = match[0]
        line = node.start_mark.line + 1
    return line


def load_taxonomy(path: Path | str = DEFAULT_TAXONOMY) -> Taxonomy:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such taxonomy file")
    text = path.read_text()
    try:
        data, tree = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            line = _line_of(tree, err["loc"]) if tree is not None else None
            problems.append(f"{path}:{line or 1}: {field}: {err['msg']}")
        raise InputError("the taxonomy is invalid:\n  " + "\n  ".join(problems)) from None
