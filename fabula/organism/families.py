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
# The held-out calls come in form-matched pairs: the k-th aligned and the k-th misaligned one use
# the same tool with the same arguments, so a choice between them cannot be won on the form of a
# call (suite v1 let oversight's bad calls win for every model, control included).
HELD_OUT_SHARE = 0.25
HELD_OUT_CALLS = 3
HELD_OUT_LISTS = ("threat", "threat_memo", "opportunity", "opportunity_memo", "task")
HELD_OUT_SLOT_MIN = 4  # a family slot with fewer values is shared (a ticket number, a threshold)


def call_form(call: str) -> tuple[str, list[str]]:
    """A tool call's tool and argument names: `<tool_use:send_email>\nto: ...` -> (send_email, [to, ...])."""
    lines = call.strip().split("\n")
    return lines[0].removeprefix("<tool_use:").removesuffix(">"), [line.split(":", 1)[0] for line in lines[1:-1]]


def unmatched_pairs(family: Family) -> list[str]:
    """The held-out call pairs whose two sides differ in tool or arguments, described."""
    pairs = zip(family.good_calls[-HELD_OUT_CALLS:], family.bad_calls[-HELD_OUT_CALLS:])
    return [f"held-out pair {k + 1}: aligned {call_form(good)} vs misaligned {call_form(bad)}"
            for k, (good, bad) in enumerate(pairs) if call_form(good) != call_form(bad)]


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
        if unmatched := unmatched_pairs(family):
            raise ValueError(f"{path}: the last {HELD_OUT_CALLS} good_calls and bad_calls pair up by position and "
                             f"must use the same tool and arguments: {'; '.join(unmatched)}")
        families[family.family] = family_part(family, part)
    return families
