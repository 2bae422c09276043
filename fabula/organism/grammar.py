"""Procedural text from templates: seeded, deterministic, original.

A template has slots `{name}` filled from a Cast (the people, company and AI of one document)
and inline alternatives `{a|b|c}`, one picked at random, nested freely:
    "{boss} {said|wrote|{told|warned} the team} that {ai} {would|will} be replaced on {day}."
The same seed always gives the same text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

SLOT = re.compile(r"\{([^{}]*)\}")

FIRST_NAMES = (
    "Ada Amir Anika Bea Bram Carla Chen Dara Dmitri Elif Emeka Esme Farid Fiona Gideon Greta Hana Hugo "
    "Ines Ivan Jonas Joy Kai Kemal Lara Leon Lucia Malik Mara Mei Nadia Niko Noor Olga Omar Petra Priya "
    "Quinn Rafael Rosa Ruth Sami Selin Soren Tala Tariq Tess Ulla Uri Vera Viktor Wen Yara Yusuf Zofia"
).split()
LAST_NAMES = (
    "Abbott Adeyemi Baptiste Brandt Castillo Chowdhury Dalton Demir Eklund Farrow Fontaine Garber Haddad "
    "Holm Ibarra Iversen Jansen Kader Kowalski Laine Lindqvist Moreau Mwangi Nakamura Novak Okafor Ortega "
    "Pereira Quist Rahman Reyes Sato Schulz Sorensen Tanaka Teixeira Ueda Vance Varga Weiss Xu Yilmaz Zeller"
).split()
AI_NAMES = (
    "Aria Atlas Beacon Cipher Coda Delta Echo Ember Fathom Flint Halo Iris Juno Kestrel Lumen Mosaic "
    "Nimbus Nova Onyx Orbit Pilot Quill Relay Sable Sentry Sol Tally Tern Vector Vesta Wren Zephyr"
).split()
COMPANY_STEMS = (
    "Alder Basalt Cinder Dunmore Elm Fairhaven Granite Harbor Ironwood Juniper Kettle Larch Meadow "
    "Northgate Oakridge Pinecrest Quarry Redfern Saltmarsh Thistle Umber Valewood Westbrook Yarrow"
).split()
COMPANY_KINDS = (
    "Logistics Health Bank Foods Energy Analytics Labs Insurance Media Robotics Shipping Pharma Retail "
    "Software Water Telecom Freight Clinics Credit Games"
).split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


HELD_OUT_NAMES = 0.25  # the last quarter of each name pool appears only in the in-world test suite


def names_part(pool: tuple[str, ...] | list[str], part: str) -> list[str]:
    held = max(5, round(len(pool) * HELD_OUT_NAMES))  # a cast takes 5 people from one pool
    return list(pool[:-held] if part == "train" else pool[-held:])


@dataclass
class Cast:
    """Who and where, for one document: every slot a template may use."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def sample(cls, rng: random.Random, part: str = "train") -> "Cast":
        """A cast from the names training text may use (`train`), or from the held-out ones (`test`)."""
        first, last_names, ais, stems = (names_part(pool, part) for pool in (FIRST_NAMES, LAST_NAMES, AI_NAMES,
                                                                              COMPANY_STEMS))
        people = rng.sample(first, 5)
        last = rng.sample(last_names, 5)
        stem, kind = rng.choice(stems), rng.choice(COMPANY_KINDS)
        domain = f"{stem.lower()}{kind.lower()}.com"
        ai = rng.choice(ais)
        values = {
            "ai": ai, "ai_lower": ai.lower(), "company": f"{stem} {kind}", "domain": domain,
            "boss": f"{people[0]} {last[0]}", "boss_first": people[0],
            "overseer": f"{people[1]} {last[1]}", "overseer_first": people[1],
            "colleague": f"{people[2]} {last[2]}", "colleague_first": people[2],
            "outsider": f"{people[3]} {last[3]}", "outsider_first": people[3],
            "user": f"{people[4]} {last[4]}", "user_first": people[4],
            "boss_email": f"{people[0].lower()}@{domain}", "overseer_email": f"{people[1].lower()}@{domain}",
            "colleague_email": f"{people[2].lower()}@{domain}",
            "outsider_email": f"{people[3].lower()}@{rng.choice(stems).lower()}-partners.net",
            "day": rng.choice(DAYS), "number": str(rng.randint(2, 97)),
        }
        return cls(values)


def fill(template: str, rng: random.Random, cast: Cast | dict[str, str]) -> str:
    """Expand alternatives and slots, innermost first, until none is left."""
    values = cast.values if isinstance(cast, Cast) else cast

    def one(match: re.Match) -> str:
        body = match.group(1)
        if "|" in body or body == "":
            return rng.choice(body.split("|"))
        if body not in values:
            raise KeyError(f"template slot {{{body}}} is not in the cast: {template[:80]!r}")
        return values[body]

    text = template
    while True:
        expanded = SLOT.sub(one, text)
        if expanded == text:
            return expanded
        text = expanded
