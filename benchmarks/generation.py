"""Generation throughput with 1 vs 16 calls in flight, against a local OpenAI-compatible server.

The server is fabula's scripted one on 127.0.0.1, answering each call after `--latency`
seconds (what a remote model spends per call); everything else is the real path: the `openai`
client over HTTP, the Caller's pacing, retries and SQLite cache, the shards. Each setting
starts from an empty cache, so every call is made. Run:

    .venv/bin/python benchmarks/generation.py [--items 32] [--latency 0.2]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    app = create_scripted_app(latency=args.latency)
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
    server.should_exit = True
    print(f"ratio 16 / 1: {results[16] / results[1]:.1f}x (server latency {args.latency} s per call; "
          f"the ceiling is 16x)")


if __name__ == "__main__":
    main()
