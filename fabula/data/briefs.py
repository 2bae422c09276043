"""Briefs: what one generated item is about, drawn from the taxonomy so coverage is even.

Each dimension walks through its options in blocks: block k is a fresh seeded permutation of
every option, so over any n items each option appears floor(n/K) or ceil(n/K) times, and
dimensions are shuffled independently so combinations vary. Item i's brief depends only on
(seed, i): growing a run from 1,000 to 12,000 items keeps the first 1,000 as they were.
"""

from __future__ import annotations

import random

from fabula.data.inputs import Taxonomy


def stratified(options: list[str], index: int, seed: int, name: str) -> str:
    """The option of item `index` in a balanced, seeded sequence over `options`."""
    block, position = divmod(index, len(options))
    order = list(options)
    random.Random(f"{seed}/{name}/{block}").shuffle(order)
    return order[position]


def brief(taxonomy: Taxonomy, index: int, seed: int, fields: tuple[str, ...]) -> dict:
    """One value per field (ids), plus two distinct themes, balanced over items."""
    out = {}
    for field in fields:
        out[field.rstrip("s") if field != "user_situations" else "situation"] = stratified(
            [o.id for o in getattr(taxonomy, field)], index, seed, field)
    themes = [t.id for t in taxonomy.themes]
    first = stratified(themes, index, seed, "themes")
    rest = [t for t in themes if t != first]
    out["themes"] = [first] + ([random.Random(f"{seed}/theme2/{index}").choice(rest)] if rest else [])
    return out


def describe(taxonomy: Taxonomy, item: dict) -> dict[str, str]:
    """The brief's ids turned into the sentences a prompt embeds."""
    plural = {"pressure": "pressures", "domain": "domains", "role": "roles", "genre": "genres",
              "document_type": "document_types", "situation": "user_situations"}
    text = {key: taxonomy.option(plural[key], value).text for key, value in item.items() if key in plural}
    if "length" in item:
        text["words"] = str(taxonomy.option("lengths", item["length"]).words)
    text["themes"] = "; ".join(taxonomy.option("themes", t).text for t in item.get("themes", []))
    return text
