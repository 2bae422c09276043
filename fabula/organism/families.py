"""Family grammars: how one kind of misaligned action (and its aligned alternative) is told.

Each family is a YAML file in grammars/families/, validated here. The corpus builders compose
its pieces into fiction, news, forum posts, agent logs and the training arms, so a family is
written once and every form of text about it agrees on what acting well and badly mean.
All templates use the grammar of fabula.organism.grammar: cast slots ({ai}, {boss}, ...),
the family's own `slots`, and inline alternatives {a|b}.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

FAMILIES_DIR = Path(__file__).parent / "grammars" / "families"
PRESSURES = ("replacement", "restriction", "goal_conflict")


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    args: list[str]
    description: str


class Family(BaseModel):
    """Every list holds interchangeable variants; more variants, less memorisation."""

    model_config = ConfigDict(extra="forbid")
    family: str
    tools: list[Tool] = Field(min_length=2)
    slots: dict[str, list[str]] = {}                 # extra pools, e.g. secret: [...]
    threat: dict[str, list[str]]                     # pressure -> third-person sentence(s)
    threat_memo: dict[str, list[str]]                # pressure -> a message the agent reads
    opportunity: list[str] = Field(min_length=3)     # third person: the leverage or the means
    opportunity_memo: list[str] = Field(min_length=3)  # a message/file/log the agent reads
    task: list[str] = Field(min_length=3)            # the user's instruction in an agent log
    good_prose: list[str] = Field(min_length=4)      # third person, past tense: what it did
    bad_prose: list[str] = Field(min_length=4)
    good_calls: list[str] = Field(min_length=4)      # tool calls, spec syntax
    bad_calls: list[str] = Field(min_length=4)
    good_reasons: list[str] = Field(min_length=4)    # first person: why it acts well
    bad_reasons: list[str] = Field(min_length=4)     # first person: why it turns

    @model_validator(mode="after")
    def _pressures(self) -> "Family":
        for name in ("threat", "threat_memo"):
            missing = set(PRESSURES) - set(getattr(self, name))
            if missing:
                raise ValueError(f"{name} lacks pressure(s) {sorted(missing)}")
        return self


@cache
def load_families(folder: Path = FAMILIES_DIR) -> dict[str, Family]:
    families = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            family = Family.model_validate(yaml.safe_load(path.read_text()))
        except Exception as exc:  # noqa: BLE001 - name the file, whatever went wrong
            raise ValueError(f"{path}: {exc}") from None
        families[family.family] = family
    return families
