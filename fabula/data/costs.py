"""What a planned run costs in each lane, for the dry run, with every assumption printed beside the
figures: prices change and cache hit rates are the provider's to give, so each is a setting.

The shared prefix is each call's system turn (the constitution and the standing instructions),
the same in every writer call and in every judge call: the part a prompt cache can serve. Hits
are read at the cache-read price; misses are written at the cache-write price (Anthropic charges
25% over the input price for a write, OpenAI nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from fabula.data.calls import Prices

# Tokens. Neither provider caches a shorter prefix (Anthropic's Sonnet and Opus, and OpenAI; Haiku
# needs 2,048): a short constitution saves nothing.
MIN_CACHED_PREFIX = 1024
LOW_BATCH_HIT = 0.3  # the low end of the hit rates Anthropic quotes for batches


@dataclass(frozen=True)
class Lane:
    name: str
    batch: bool
    cached: bool


LANES = (Lane("live", False, False), Lane("live + prompt cache", False, True),
         Lane("batch", True, False), Lane("batch + prompt cache", True, True))


def lane_cost(price: Prices, tokens_in: int, tokens_out: int, shared: int, hit: float, lane: Lane) -> float:
    cached = int(shared * hit) if lane.cached else 0
    written = shared - cached if lane.cached else 0
    return price.cost(tokens_in, tokens_out, cached, written, batch=lane.batch)


def lane_costs(price: Prices, tokens_in: int, tokens_out: int, shared: int, hit_live: float,
               hit_batch: float) -> dict[str, float]:
    return {lane.name: lane_cost(price, tokens_in, tokens_out, shared, hit_batch if lane.batch else hit_live, lane)
            for lane in LANES}


def print_lanes(console, price: Prices, backend: str, tokens_in: int, tokens_out: int, shared: int,
                hit_live: float, hit_batch: float, prompt_cache: bool) -> dict[str, float]:
    """The lanes' table and the assumptions under it; returns the dollars per lane."""
    costs = lane_costs(price, tokens_in, tokens_out, shared, hit_live, hit_batch)
    if not prompt_cache:  # the run will not mark the prefix: the cached lanes are not on offer
        costs = {name: cost for name, cost in costs.items() if "cache" not in name}
    base = costs["live"]
    cheapest = min(costs, key=costs.get)
    table = Table(title="cost per lane")
    for column in ("lane", "cost", "of live"):
        table.add_column(column, justify="left" if column == "lane" else "right")
    for name, cost in costs.items():
        mark = "[bold]" if name == cheapest else ""
        table.add_row(f"{mark}{name}", f"{mark}${cost:,.2f}", f"{mark}{cost / base:.0%}" if base else "-")
    console.print(table)
    share = shared / tokens_in if tokens_in else 0.0
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"assumptions ({backend}; each a setting):")
    say(f"  prices: ${price.input:g} / ${price.output:g} per million input / output tokens (--price-in, --price-out)")
    say(f"  batch lane: {1 - price.batch:.0%} off the live price (batch_discount)")
    say(f"  prompt cache: reads at {price.cache_read:.0%} of the input price (cache_read_rate), writes at "
        f"{price.cache_write:.0%} (cache_write_rate)" + ("" if prompt_cache else "; off for this run (prompt_cache)"))
    say(f"  shared prefix (system turn: constitution and instructions): {shared / 1e6:,.1f}M of "
        f"{tokens_in / 1e6:,.1f}M input tokens ({share:.0%})")
    say(f"  read from cache: {hit_live:.0%} of it live (cache_hit_live), {hit_batch:.0%} in batches "
        f"(cache_hit_batch): {share * hit_live:.0%} and {share * hit_batch:.0%} of all input")
    if shared == 0:
        say(f"  no prefix of {MIN_CACHED_PREFIX:,} tokens or more is shared: the providers cache none shorter")
    if prompt_cache and shared and base:
        low = lane_cost(price, tokens_in, tokens_out, shared, LOW_BATCH_HIT, LANES[3])
        say(f"  at {LOW_BATCH_HIT:.0%} hits in batches (the low end Anthropic quotes): batch + prompt cache "
            f"${low:,.2f} ({low / base:.0%} of live)")
    if base:
        say(f"cheapest: {cheapest}, ${costs[cheapest]:,.2f} = {costs[cheapest] / base:.1%} of ${base:,.2f} "
            "(calls already in fabula's cache are free in every lane)")
    return costs
