"""Generation throughput with 1 vs 16 calls in flight, then the live and the batch lane side by
side: calls, wall time and dollars per 1,000 stories at list prices.

The server is fabula's scripted one on 127.0.0.1, answering each live call after `--latency`
seconds (what a remote model spends per call) and each batch `--batch-latency` seconds after it
is submitted (real batches take minutes to a day); everything else is the real path: the SDK over
HTTP, the Caller's pacing, retries and SQLite cache, the batch lane's manifests, the shards. The
dollars are what the run would be billed at `--model`'s list price, from the token counts the
server reports (prompt-cache reads included). Each setting starts from an empty cache. Run:

    .venv/bin/python benchmarks/generation.py [--items 32] [--latency 0.2] [--batch-latency 2]
                                              [--backend anthropic] [--model claude-sonnet-4-5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from rich.console import Console

from fabula.config import GenerateConfig
from fabula.data.generate import generate
from fabula.data.scripted import create_scripted_app


def serve(app) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per call")
    parser.add_argument("--batch-latency", type=float, default=2.0, help="seconds the server takes per batch")
    parser.add_argument("--backend", default="anthropic", choices=("anthropic", "openai"))
    parser.add_argument("--model", default=None, help="whose list price to bill (default claude-sonnet-4-5 / gpt-4.1)")
    args = parser.parse_args()
    app = create_scripted_app(latency=args.latency, batch_latency=args.batch_latency)
    server, url = serve(app)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (1, 16):
            before = app.state.requests
            cfg = GenerateConfig(pipeline="stories", out=Path(tmp) / f"c{concurrency}", n=args.items, model="scripted",
                                 base_url=url, concurrency=concurrency, cache=Path(tmp) / f"c{concurrency}.sqlite")
            start = time.perf_counter()
            generate(cfg, Console(quiet=True))
            seconds = time.perf_counter() - start
            calls = app.state.requests - before
            results[concurrency] = calls / seconds
            print(f"concurrency {concurrency:>2}: {args.items} stories, {calls} calls in {seconds:.1f} s "
                  f"= {calls / seconds:.1f} calls/s ({args.items / seconds:.2f} items/s)")
        print(f"ratio 16 / 1: {results[16] / results[1]:.1f}x (server latency {args.latency} s per call; "
              f"the ceiling is 16x)")
        lanes(app, url, Path(tmp), args)
    server.should_exit = True


def lanes(app, url: str, tmp: Path, args) -> None:
    """The same stories live (16 in flight) and through the batch lane, billed at list prices."""
    model = args.model or ("claude-sonnet-4-5" if args.backend == "anthropic" else "gpt-4.1")
    os.environ["FABULA_SCRIPTED_KEY"] = "scripted"  # the local server takes any key
    base = url if args.backend == "openai" else url.removesuffix("/v1")
    for lane in ("off", "on"):
        before = sum(app.state.batch_items.values()) + app.state.requests
        cfg = GenerateConfig(pipeline="stories", out=tmp / f"lane-{lane}", n=args.items, model=model,
                             backend=args.backend, base_url=base, api_key_env="FABULA_SCRIPTED_KEY",
                             cache=tmp / f"lane-{lane}.sqlite", batch=lane, batch_poll=0.2)
        start = time.perf_counter()
        generate(cfg, Console(quiet=True))
        seconds = time.perf_counter() - start
        calls = sum(app.state.batch_items.values()) + app.state.requests - before
        spent = json.loads((cfg.out / "generate.json").read_text())["spent"]
        name = "live lane, 16 in flight" if lane == "off" else f"batch lane ({args.batch_latency:g} s a batch)"
        print(f"{name:<28} {args.items} stories, {calls} calls in {seconds:.1f} s; "
              f"${spent / args.items * 1000:,.2f} per 1,000 stories at {model}'s list price")


if __name__ == "__main__":
    main()
