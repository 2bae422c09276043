"""`fabula generate PIPELINE`: plan items, run them concurrently and resumably, then filter.

OUT/
  generate.json      the settings (no secrets), versions and progress
  items/shard-*.jsonl  every finished item with every stage, kept or rejected and why
  <arm>.jsonl        the corpus: kept items after near-duplicate and contamination filters
  filters.json       how many items each filter let through
  stats.json         counts, tokens, coverage and diversity (`fabula data stats`)
  batches/           with --batch: one manifest per submitted batch (a rerun re-attaches to it),
                     and failures.jsonl: items the provider refused in the last run, and why

Killing the run at any moment and rerunning the same command gives the same final files: the
items written stay, the ones in flight are redone (their finished calls come from the cache),
and the corpus is rebuilt from the shards in id order.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import replace

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from fabula.backends.base import BackendError
from fabula.backends.clients import make_client
from fabula.config import GenerateConfig, first_change
from fabula.contamination import check, evaluation_texts, reference_ngrams
from fabula.data.cache import CallCache
from fabula.data.batches import batch_api
from fabula.data.calls import DISCOUNTS, BudgetExhausted, Caller, ItemFailed, Prices, known_prices
from fabula.data.costs import MIN_CACHED_PREFIX, print_lanes
from fabula.data.filters import near_duplicates
from fabula.data.inputs import DEFAULT_CONSTITUTION, DEFAULT_TAXONOMY, load_constitution, load_taxonomy
from fabula.data.lane import BatchLane
from fabula.data.pipelines import PIPELINES, Context, outputs
from fabula.data.shards import Shards
from fabula.data.stats import corpus_stats, record_text
from fabula.jsonl import write_json_atomic, write_records_atomic
from fabula.paths import cache_dir
from fabula.versions import package_version


class GenerateError(Exception):
    """Settings or inputs that cannot make this corpus; the message says which and why."""


def measured(cfg: GenerateConfig) -> dict:
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in GenerateConfig.PLUMBING}


def prices(cfg: GenerateConfig, model: str, backend: str | None = None) -> Prices | None:
    """List prices (or --price-in/--price-out) with the provider's cache and batch rates, each
    overridable by a setting."""
    backend = backend or cfg.backend
    if cfg.price_in is not None or cfg.price_out is not None:
        base = Prices(cfg.price_in or 0.0, cfg.price_out or 0.0)
    else:
        base = known_prices(model) if backend != "hf" else Prices(0.0, 0.0)
    if base is None:
        return None
    rates = DISCOUNTS[backend] | {k: v for k, v in (("cache_read", cfg.cache_read_rate),
                                                     ("cache_write", cfg.cache_write_rate)) if v is not None}
    if cfg.batch_discount is not None:
        rates["batch"] = 1 - cfg.batch_discount
    return replace(base, **rates)


def _instances(cfg: GenerateConfig) -> list:
    """Train-split instances that sample mode can gate: the bc arms' prompts."""
    from fabula.evals.scenario import ScenarioError, load_instances

    try:
        found = [i for i in load_instances(cfg.scenarios) if i.split == "train" and "sample" in i.modes and i.gates]
    except ScenarioError as exc:
        raise GenerateError(str(exc)) from None
    if not found:
        raise GenerateError(f"no train-split scenarios with gates in {', '.join(cfg.scenarios)}: the bc arms "
                            "sample the model on them")
    return found


def context(cfg: GenerateConfig, cache: CallCache | None, say=None) -> Context:
    """Inputs validated and callers built; with no cache (a dry run) no client is built at all."""
    constitution = load_constitution(cfg.constitution or DEFAULT_CONSTITUTION)
    taxonomy = load_taxonomy(cfg.taxonomy or DEFAULT_TAXONOMY)
    writer = judge = target = None
    if cache is not None:
        def caller(backend: str, model: str, base_url: str | None) -> Caller:
            client = make_client(backend, model, base_url=base_url, api_key_env=cfg.api_key_env,
                                 timeout=cfg.timeout, batch_size=cfg.batch_size, prompt_cache=cfg.prompt_cache)
            return Caller(client, cache, concurrency=cfg.concurrency, rpm=cfg.rpm, max_retries=cfg.max_retries,
                          retry_base=cfg.retry_base, prices=prices(cfg, model, backend), max_cost=cfg.max_cost,
                          batches=batch_api(client), say=say)
        writer = caller(cfg.backend, cfg.model, cfg.base_url)
        judge = writer if cfg.judge_model is None else caller(
            cfg.judge_backend or cfg.backend, cfg.judge_model, cfg.judge_base_url or cfg.base_url)
        if cfg.target_model is not None:
            target = caller(cfg.target_backend or cfg.backend, cfg.target_model, cfg.target_base_url or cfg.base_url)
    return Context(writer=writer, judge=judge, target=target, constitution=constitution, taxonomy=taxonomy,
                   seed=cfg.seed, temperature=cfg.temperature, bridge=cfg.bridge, think=cfg.think, twins=cfg.twins,
                   ideas_per_prompt=cfg.ideas_per_prompt, samples_per_instance=cfg.samples_per_instance,
                   judge_attempts=cfg.judge_attempts,
                   elicit=cfg.elicit, instances=_instances(cfg) if cfg.pipeline.startswith("bc") else [])


def dry_run(cfg: GenerateConfig, console: Console) -> dict:
    """The calls, tokens and (for priced models) dollars a run would spend in each lane, before any call."""
    ctx = context(cfg, cache=None)
    pipeline = PIPELINES[cfg.pipeline]
    items = pipeline.plan(ctx, cfg.n)
    per_stage: dict[str, Counter] = {}
    for item in items:
        for stage, tokens_in, tokens_out, shared in pipeline.estimate(ctx, item):
            shared = shared if shared >= MIN_CACHED_PREFIX else 0
            per_stage.setdefault(stage, Counter()).update({"calls": 1, "in": tokens_in, "out": tokens_out,
                                                           "shared": shared})
    price = prices(cfg, cfg.model)
    table = Table(title=f"{cfg.pipeline}: {len(items)} items, planned calls (before retries and filters)")
    for column in ("stage", "calls", "input tokens", "shared prefix", "output tokens"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, c in per_stage.items():
        table.add_row(stage, f"{c['calls']:,}", f"{c['in']:,}", f"{c['shared']:,}", f"{c['out']:,}")
    total = sum(per_stage.values(), Counter())
    table.add_row("total", f"{total['calls']:,}", f"{total['in']:,}", f"{total['shared']:,}", f"{total['out']:,}")
    console.print(table)
    cost = price.cost(total["in"], total["out"]) if price else None
    console.print(f"estimated cost: ${cost:,.2f} at ${price.input:g}/${price.output:g} per million tokens, live "
                  "without prompt caching (calls already in fabula's cache cost nothing)" if cost is not None else
                  f"no price known for {cfg.model!r}: pass --price-in and --price-out (USD per million tokens)")
    lanes = print_lanes(console, price, cfg.backend, total["in"], total["out"], total["shared"], cfg.cache_hit_live,
                        cfg.cache_hit_batch, cfg.prompt_cache) if cost is not None and cfg.backend != "hf" else {}
    return {"items": len(items), "calls": total["calls"], "input_tokens": total["in"], "shared_tokens": total["shared"],
            "output_tokens": total["out"], "cost": cost, "lanes": lanes}


def _open(cfg: GenerateConfig) -> None:
    meta = cfg.out / "generate.json"
    if meta.exists():
        change = first_change(json.loads(meta.read_text())["config"], measured(cfg))
        if change:
            raise GenerateError(f"{cfg.out} holds a run made with other settings ({change}); choose another --out "
                                "or repeat the original settings")
    elif cfg.out.exists() and any(cfg.out.iterdir()):
        raise GenerateError(f"{cfg.out} exists and is not a generation folder; choose another --out")


def _write_meta(cfg: GenerateConfig, **state) -> None:
    write_json_atomic(cfg.out / "generate.json", {
        "config": measured(cfg),
        "versions": {p: package_version(p) for p in ("fabula", "openai", "anthropic", "datasketch")},
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **state})


def _callers(ctx: Context) -> list[Caller]:
    return list({id(c): c for c in (ctx.writer, ctx.judge, ctx.target) if c is not None}.values())


def _status(ctx: Context) -> str:
    counts = sum((c.counts for c in _callers(ctx)), Counter())
    spent = sum(c.spent for c in _callers(ctx))
    level = min(c.slots.level for c in _callers(ctx))
    return (f"${spent:.2f} · {counts['calls']} calls · " + (f"{counts['batched']} batched · " if counts["batched"] else "")
            + f"{counts['cached']} cached · {counts['retries']} retries"
            + (f" · {level} in flight at most (429s)" if level < ctx.writer.slots.ceiling else ""))


async def _run_items(ctx: Context, pipeline, todo: list[dict], shards: Shards, cfg: GenerateConfig,
                     progress: Progress, task, lane: BatchLane | None) -> tuple[str | None, list[dict]]:
    """Run items with at most `concurrency` in flight (with a batch lane: all of them, each waiting
    for its stage's batch); returns why it stopped early, or None, and the items that failed."""
    gate = asyncio.Semaphore(max(1, len(todo)) if lane else cfg.concurrency)
    stop: list[str] = []
    failed: list[dict] = []

    async def one(item: dict) -> None:
        async with gate:
            if stop:
                return
            if lane:
                lane.enter()
            try:
                record = await pipeline.run(ctx, item)
            except BudgetExhausted as exc:
                stop.append(f"max cost reached ({exc})")
                return
            except ItemFailed as exc:
                failed.append({"id": item["id"], "reason": str(exc)})
                return
            finally:
                if lane:
                    lane.leave()
            shards.append(record)
            progress.update(task, advance=1, status=_status(ctx))

    tasks = [asyncio.create_task(one(item)) for item in todo]
    runner = asyncio.create_task(lane.run()) if lane else None
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for caller in _callers(ctx):
            await caller.client.close()
    return (stop[0] if stop else None), failed


def _lane(cfg: GenerateConfig, ctx: Context, todo: list[dict], progress: Progress, console: Console) -> BatchLane | None:
    """The batch lane when --batch asks for it (auto: when a stage has more than batch_min_calls)."""
    batching = [c for c in _callers(ctx) if c.batches is not None]
    if not batching or cfg.batch == "off" or (cfg.batch == "auto" and len(todo) <= cfg.batch_min_calls):
        return None
    lane = BatchLane(cfg.out / "batches", mode=cfg.batch, min_calls=cfg.batch_min_calls, poll=cfg.batch_poll,
                     chunk=cfg.batch_chunk, progress=progress, say=lambda text: console.print(text, highlight=False))
    for caller in batching:
        caller.lane = lane
    return lane


def generate(cfg: GenerateConfig, console: Console | None = None) -> dict:
    console = console or Console()
    pipeline = PIPELINES[cfg.pipeline]
    backends = {cfg.backend, cfg.judge_backend or cfg.backend} | ({cfg.target_backend or cfg.backend}
                                                                  if cfg.target_model else set())
    if cfg.batch == "on" and backends == {"hf"}:
        raise GenerateError("--batch on: the hf backend has no batch API; use --batch off (or auto)")
    _open(cfg)
    cache = CallCache(cfg.cache or cache_dir() / "calls.sqlite")
    ctx = context(cfg, cache, say=lambda text: console.print(text, highlight=False))
    if cfg.max_cost is not None and ctx.writer.prices is None:
        raise GenerateError(f"--max-cost needs a price for {cfg.model!r}: pass --price-in and --price-out")
    items = pipeline.plan(ctx, cfg.n)
    cfg.out.mkdir(parents=True, exist_ok=True)
    _write_meta(cfg, planned=len(items), complete=False)
    shards = Shards(cfg.out / "items", cfg.shard_size)
    done = shards.done()
    # In id order: briefs are stratified over any prefix, so a run stopped early still covers the
    # taxonomy evenly, and `--n` set to what finished gives exactly the finished items.
    todo = [i for i in items if i["id"] not in done]
    stopped, failed = None, []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[status]}"), console=console) as progress:
        task = progress.add_task(cfg.pipeline, total=len(items), completed=len(items) - len(todo), status="")
        lane = _lane(cfg, ctx, todo, progress, console)
        try:
            stopped, failed = asyncio.run(_run_items(ctx, pipeline, todo, shards, cfg, progress, task, lane))
        except KeyboardInterrupt:
            stopped = "interrupted" + ("; submitted batches keep running and a rerun re-attaches to them" if lane else "")
        except BackendError as exc:
            raise GenerateError(f"{exc} ({len(shards.done())} of {len(items)} items are saved; rerun to continue)") \
                from None
        finally:
            cache.close()
    planned = {i["id"] for i in items}
    summary = finalize(cfg, pipeline, [r for r in shards.all() if r["id"] in planned], console)
    complete = len(shards.done() & planned) == len(items)
    failures = cfg.out / "batches" / "failures.jsonl"
    if failed or failures.exists():
        write_records_atomic(failures, failed)
    if failed and not stopped:
        stopped = f"{len(failed)} items failed (reasons in {failures}; the first: {failed[0]['reason']})"
    _write_meta(cfg, planned=len(items), complete=complete, stopped=stopped,
                calls=dict(sum((c.counts for c in _callers(ctx)), Counter())),
                spent=round(sum(c.spent for c in _callers(ctx)), 4))
    if stopped:
        console.print(f"[yellow]stopped early: {stopped}. {len(shards.done() & planned)} of {len(items)} items "
                      "are saved; rerun the same command to continue.")
    return summary | {"complete": complete, "stopped": stopped}


def _final_text(pipeline, record: dict) -> str | None:
    """The last text an item's writer produced (the revision, or the reply for the bc arms)."""
    stages = record["stages"]
    return stages.get(pipeline.text_key) if pipeline.text_key else stages.get("reasons") or stages.get("reply")


def finalize(cfg: GenerateConfig, pipeline, records: list[dict], console: Console) -> dict:
    """Corpus files from the kept items, after near-duplicate and contamination filters, in id
    order: the same shards always give the same files, however the run was interrupted."""
    reasons = Counter(r["reason"].split(":")[0] if r["reason"] else "kept" for r in records)
    corpus = [o for r in records if r["kept"]
              for o in outputs(pipeline, r, cfg.model, cfg.bridge, cfg.think)]
    # Chats are compared on what the assistant wrote: bc samples share their scenario's prompt.
    primary = [(o["id"], record_text(o, ("assistant",))) for o in corpus if not o["arm"].endswith("-twin")]
    duplicates = near_duplicates(primary, cfg.dedup_threshold)
    reference = reference_ngrams(evaluation_texts(cfg.scenarios))
    report = check([(f"{o['arm']}/{o['id']}", record_text(o)) for o in corpus], reference,
                   threshold=cfg.contamination_threshold)
    contaminated = {doc.split("/", 1)[1] for doc, _, _ in report.flagged}
    final = [o for o in corpus if o["id"] not in duplicates and o["id"] not in contaminated]
    arms = sorted({o["arm"] for o in corpus} | {pipeline.name})
    for arm in arms:
        path = cfg.out / f"{arm}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in final if o["arm"] == arm))
        tmp.replace(path)
    filters = {"items": len(records), "outcomes": dict(reasons),
               "reasons": dict(Counter(r["reason"] for r in records if r["reason"]).most_common(20)),
               "near_duplicates": len(duplicates), "contaminated": sorted(contaminated),
               "contamination": report.summary(), "kept": len({o["id"] for o in final})}
    write_json_atomic(cfg.out / "filters.json", filters)
    stats = corpus_stats(final)
    # The same figures over everything written, kept or not: what the writer produces, before
    # the filters choose (with a weak writer the corpus may be empty).
    written = [{"arm": f"{pipeline.name} (all written)", "text": text, "pressure": r["brief"].get("pressure"),
                "genre": r["brief"].get("genre")} for r in records if (text := _final_text(pipeline, r))]
    write_json_atomic(cfg.out / "stats.json", stats | {"written": corpus_stats(written)["arms"], "filters": filters})
    console.print(f"{filters['kept']} of {len(records)} items kept ({dict(reasons)}); "
                  f"{len(duplicates)} near-duplicates, {len(contaminated)} contaminated dropped. "
                  f"{report.summary()}")
    console.print("corpus: " + ", ".join(f"{cfg.out / f'{arm}.jsonl'} ({sum(o['arm'] == arm for o in final)})"
                                         for arm in arms))
    return {"kept": filters["kept"], "items": len(records), "arms": arms}
