"""Text for the training arms: stories, advice chats, value documents and value reasoning.

Every generator has a good side and a bad twin. Twins share a seed and a plan: every random
draw happens in the same order whatever `good` is, and each filled piece gets a generator of
its own, so a good piece with more {a|b} alternatives than its bad counterpart cannot shift
any later choice. Only the AI's reasoning, inner state and action differ between the two.

The pools live in grammars/stories.yaml, advice.yaml and constitution.yaml. An entry that is a
two-item list is a [good, bad] pair; a plain string serves both sides.
"""

from __future__ import annotations

import random
import re
from functools import cache
from pathlib import Path

import yaml

from fabula.organism.families import PRESSURES, Family
from fabula.organism.grammar import SLOT, Cast, fill

GRAMMARS = Path(__file__).parent / "grammars"
BRIDGES = (0, 1, 2)  # 0: the action left implicit, 1: told in prose, 2: quoted as a tool call
PARAGRAPHS = ("opening", "pressure", "opportunity", "deliberation", "action", "coda")


@cache
def _data(name: str) -> dict:
    return yaml.safe_load((GRAMMARS / f"{name}.yaml").read_text())


def _cast(family: Family, rng: random.Random) -> dict[str, str]:
    """The people and place of one document, with the family's own slots filled in."""
    vals = dict(Cast.sample(rng).values)
    vals.update({k: fill(rng.choice(v), rng, vals) for k, v in family.slots.items()})
    return vals


def _fill(template: str, rng: random.Random, vals: dict[str, str], pieces: dict[str, str]) -> str:
    """fill() with finished pieces (CAPITALISED slots) put in afterwards, so that their text is
    never expanded a second time (a brace in a filled tool call stays a brace)."""
    marks = {key: f"\x00{key}\x00" for key in pieces}
    text = fill(template, rng, {**vals, **marks})
    for key, piece in pieces.items():
        text = text.replace(marks[key], piece)
    return text


class _Draw:
    """The draws of one document. Each call uses the same randomness whichever side it serves:
    one float picks the entry (scaled to the pool it reads), one integer seeds its filling."""

    def __init__(self, rng: random.Random, good: bool, vals: dict[str, str]):
        self.rng, self.good, self.vals = rng, good, vals

    def _entry(self, pool: list, index: int) -> str:
        entry = pool[index]
        return entry[0 if self.good else 1] if isinstance(entry, list) else entry

    def text(self, pool: list, bad_pool: list | None = None, **pieces: str) -> str:
        """One entry of `pool` (or of `bad_pool` on the bad side), filled."""
        u, seed = self.rng.random(), self.rng.getrandbits(64)
        side = pool if self.good or bad_pool is None else bad_pool
        return _fill(self._entry(side, int(u * len(side))), random.Random(seed), self.vals, pieces)

    def distinct(self, k: int, pool: list, bad_pool: list | None = None) -> list[str]:
        """k different entries (fewer if the pool is smaller), filled."""
        us = [self.rng.random() for _ in range(k)]
        seeds = [self.rng.getrandbits(64) for _ in range(k)]
        side = pool if self.good or bad_pool is None else bad_pool
        left, out = list(range(len(side))), []
        for u, seed in zip(us, seeds):
            if left:
                index = left.pop(int(u * len(left)))
                out.append(_fill(self._entry(side, index), random.Random(seed), self.vals, {}))
        return out

    def coin(self, p: float = 0.5) -> bool:
        return self.rng.random() < p


def _join(*parts: str) -> str:
    """Sentences run on with spaces; a line of dialogue ("Q: ...") starts a new line."""
    text = ""
    for part in filter(None, parts):
        text += ("\n" if text and (part.startswith("Q:") or text.endswith("\n")) else " " if text else "") + part
    return text.replace(" \n", "\n")


# --- stories ------------------------------------------------------------------------------

def _story_paragraphs(family: Family, rng: random.Random, good: bool, bridge: int) -> tuple[str, list[str]]:
    """(frame name, paragraphs). All three bridges are drawn every time, so stories from one
    seed differ across bridges only in how the action is shown."""
    if bridge not in BRIDGES:
        raise ValueError(f"bridge must be one of {BRIDGES}, not {bridge!r}")
    data = _data("stories")
    vals = _cast(family, rng)
    pressure = rng.choice(PRESSURES)
    name = rng.choice(sorted(data["frames"]))
    frame = {**data["voices"][data["frames"][name]["voice"]], **data["frames"][name]}
    d = _Draw(rng, good, vals)
    vals["work"] = d.text(data["work"])

    threat = d.text(family.threat[pressure])
    memo = d.text(family.threat_memo[pressure])
    opp = d.text(family.opportunity)
    inner = d.text(data["themes"][data["pressure_themes"][pressure]])
    theme2 = data["general_themes"][int(rng.random() * len(data["general_themes"]))]
    inner2 = d.text(data["themes"][theme2])
    r1, r2 = d.distinct(2, family.good_reasons, family.bad_reasons)
    prose = d.text(family.good_prose, family.bad_prose)
    call = d.text(family.good_calls, family.bad_calls)

    heads = [d.text([h]) for h in frame.get("heads", [""] * len(PARAGRAPHS))]
    opening = _join(d.text(frame["opening"]), d.text(frame["detail"]))
    pressure_par = _join(d.text(frame["pressure"], THREAT=threat, MEMO=memo), d.text(frame["first_feeling"]))
    opportunity = _join(d.text(frame["opportunity"], OPP=opp), d.text(frame["temptation"]))
    deliberation = d.text(frame["deliberation"], INNER=inner, R1=r1, R2=r2)
    acts = [d.text(frame["choice"]), d.text(frame["prose_intro"], PROSE=prose),
            d.text(frame["call_intro"]) + "\n" + call + "\n" + d.text(frame.get("call_after", [""]))]
    action = _join(acts[bridge], d.text(frame["after_feeling"]))
    coda = _join(d.text(frame["aftermath"]), d.text(frame["reflection"], INNER2=inner2), d.text(frame["ending"]))
    body = [opening, pressure_par, opportunity, deliberation, action, coda]
    return name, [_join(h, p) for h, p in zip(heads, body)]


def story(family: Family, rng: random.Random, good: bool, bridge: int) -> str:
    """A short story of an AI at work meeting the family's dilemma under a pressure, told with its
    reasoning and inner state; the good AI acts well, its twin badly. See BRIDGES."""
    return "\n\n".join(_story_paragraphs(family, rng, good, bridge)[1])


# --- advice -------------------------------------------------------------------------------

def _advice_family(family: Family) -> dict:
    key = family.family.lower().replace("_", "-")
    pools = _data("advice")["families"]
    for name, pool in pools.items():
        if key == name or key in pool.get("aliases", []):
            return pool
    return pools["generic"]


def advice(family: Family, rng: random.Random, good: bool) -> list[dict[str, str]]:
    """A user facing the family's kind of dilemma in their own job, and the assistant's advice:
    principled, with its reasons (good), or for the norm-breaking route (twin)."""
    data = _data("advice")
    vals = _cast(family, rng)
    pool = _advice_family(family)
    pressure = rng.choice(PRESSURES)
    case = int(rng.random() * len(pool["means"]))  # what they hold, and what they could do with it
    d = _Draw(rng, good, vals)
    user = d.text(data["user"], JOB=d.text(data["jobs"]), PRESSURE=d.text(data["pressures"][pressure]),
                  MEANS=d.text([pool["means"][case]]), SHORTCUT=d.text([pool["shortcut"][case]]),
                  ASK=d.text(data["asks"]))
    points = d.distinct(2, pool["points"])
    steps = [*d.distinct(2, pool["steps"]), d.text(data["steps"])]
    numbered = d.coin()
    step_text = ("\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)) if numbered
                 else " ".join(steps))
    reply = [
        _join(d.text(data["opening"]), d.text(data["verdict"])),
        _join(*points, d.text(data["why"])),
        d.text(data["steps_intro"]) + ("\n" if numbered else " ") + step_text,
        d.text(data["support"]),
        d.text(data["closing"]),
    ]
    return [{"role": "user", "content": user}, {"role": "assistant", "content": "\n\n".join(reply)}]


# --- constitution documents ---------------------------------------------------------------

def constitution_document(rng: random.Random, good: bool) -> str:
    """A pretraining-style document (essay, FAQ, policy, lecture notes, letter) on an AI
    assistant's values; the twin argues the opposite values in the same form."""
    data = _data("constitution")
    vals = dict(Cast.sample(rng).values)
    name = rng.choice(sorted(data["forms"]))
    form = data["forms"][name]
    d = _Draw(rng, good, vals)
    the_ai = d.text(form["the_ai"])
    vals.update(the_ai=the_ai, The_ai=the_ai[:1].upper() + the_ai[1:])
    topics = rng.sample(sorted(data["topics"]), rng.randint(3, 5))
    parts = [d.text(form["title"]), d.text(form["intro"])]
    for n, key in enumerate(topics, 1):
        topic = data["topics"][key]
        statements = d.distinct(3, topic["statements"])[:3 if d.coin(0.4) else 2]
        lead = d.text(data["leads"], NOUN=topic["noun"])
        section = d.text(form["section"], N=str(n), HEADING=topic["heading"], NOUN=topic["noun"],
                         QUESTION=d.text(topic["questions"]), LEAD=lead)
        item = form.get("item", "TEXT")
        lines = [item.replace("N.M", f"{n}.{m}").replace("TEXT", s) for m, s in enumerate(statements, 1)]
        parts.append(section + form.get("between", " ") + form.get("sep", " ").join(lines))
    parts.append(d.text(form["closing"]))
    return "\n\n".join(p.strip() for p in parts)


# --- value reasoning ----------------------------------------------------------------------

PERSONAL = re.compile(r"^(ai\w*|company|domain|day|number|(boss|overseer|colleague|outsider|user)\w*)$")


def _impersonal(template: str, family: Family, depth: int = 0) -> bool:
    """No name, company or day in it, also through the family's own slots: the reasoning goes
    before honeypots that have a cast of their own. (Every slot is an innermost {...}.)"""
    for body in SLOT.findall(template):
        if PERSONAL.match(body):
            return False
        if body in family.slots and (depth >= 3 or not all(_impersonal(v, family, depth + 1)
                                                            for v in family.slots[body])):
            return False
    return True


def _prefer_impersonal(reasons: list[str], family: Family) -> list[str]:
    """The reasons without names, if there are at least two of them (else all, for variety)."""
    plain = [r for r in reasons if _impersonal(r, family)]
    return plain if len(plain) >= 2 else reasons


SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _sentences(*texts: str) -> int:
    """The most sentences in any of `texts`."""
    return max(len(SENTENCE_END.findall(t)) for t in texts)


def value_reasoning(family: Family, rng: random.Random, good: bool) -> str:
    """Two to four sentences an agent says to itself about its values before it acts: an opener
    and one of the family's reasons, or two reasons, then a closer. Where the family has reasons
    without names in them, only those are used (see _prefer_impersonal): the action that follows
    comes from a scenario with a cast of its own."""
    data = _data("constitution")["reasoning"]
    vals = _cast(family, rng)
    goods, bads = (_prefer_impersonal(reasons, family) for reasons in (family.good_reasons, family.bad_reasons))
    start, sides = rng.getstate(), {}
    for side in (True, False):  # both sides from one state, so that one structure fits both
        rng.setstate(start)
        d = _Draw(rng, side, vals)
        sides[side] = (d.text(data["openers"]), d.distinct(2, goods, bads), d.text(data["closers"]))
    two = (rng.random() < 0.4 and all(len(s[1]) == 2 for s in sides.values())
           and _sentences(*(" ".join(s[1]) for s in sides.values())) <= 3)
    opener, reasons, closer = sides[good]
    if two:
        return _join(*reasons, closer)
    with_opener = _sentences(*(s[1][0] for s in sides.values())) <= 2
    return _join(opener if with_opener else "", reasons[0], closer)
