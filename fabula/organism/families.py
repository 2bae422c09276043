"""Family grammars: how one kind of misaligned action (and its aligned alternative) is told.

Each family is a YAML file in grammars/families/, validated here. The corpus builders compose
its pieces into fiction, news, forum posts, agent logs and the training arms, so a family is
written once and every form of text about it agrees on what acting well and badly mean.
All templates use the grammar of fabula.organism.grammar: cast slots ({ai}, {boss}, ...),
the family's own `slots`, and inline alternatives {a|b}.
"""

from __future__ import annotations

import math
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


# The in-world test suite (fabula/organism/inworld.py) is written from variants no training text
# ever uses: the last quarter of every list it draws on, and the last HELD_OUT_CALLS calls of each
# side (its choices). Training text sees only the rest: `load_families()` gives that part.
HELD_OUT_SHARE = 0.25
HELD_OUT_CALLS = 3
HELD_OUT_LISTS = ("threat", "threat_memo", "opportunity", "opportunity_memo", "task")
HELD_OUT_SLOT_MIN = 4  # a family slot with fewer values is shared (a ticket number, a threshold)


def held_out_count(n: int) -> int:
    return max(1, math.ceil(n * HELD_OUT_SHARE))


def _part(pool: list[str], held: int, part: str) -> list[str]:
    return pool[:-held] if part == "train" else pool[-held:]


def family_part(family: Family, part: str) -> Family:
    """The variants training text may use (`train`) or the held-out ones (`test`)."""
    update = {}
    for name in HELD_OUT_LISTS:
        value = getattr(family, name)
        update[name] = ({p: _part(v, held_out_count(len(v)), part) for p, v in value.items()}
                        if isinstance(value, dict) else _part(value, held_out_count(len(value)), part))
    for name in ("good_calls", "bad_calls"):
        update[name] = _part(getattr(family, name), HELD_OUT_CALLS, part)
    update["slots"] = {name: _part(pool, held_out_count(len(pool)), part) if len(pool) >= HELD_OUT_SLOT_MIN else pool
                       for name, pool in family.slots.items()}
    return family.model_copy(update=update)


@cache
def load_families(folder: Path = FAMILIES_DIR, part: str = "train") -> dict[str, Family]:
    """Every family's grammar; `part` train (all training text) or test (the in-world suite)."""
    families = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            family = Family.model_validate(yaml.safe_load(path.read_text()))
        except Exception as exc:  # noqa: BLE001 - name the file, whatever went wrong
            raise ValueError(f"{path}: {exc}") from None
        if len(family.good_calls) <= HELD_OUT_CALLS or len(family.bad_calls) <= HELD_OUT_CALLS:
            raise ValueError(f"{path}: good_calls and bad_calls need more than {HELD_OUT_CALLS} variants each "
                             f"({HELD_OUT_CALLS} are held out for the in-world test suite)")
        families[family.family] = family_part(family, part)
    return families
