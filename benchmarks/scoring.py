"""Local choice-mode scoring: shared-prefix batched scoring vs one continuation at a time.

Both paths score the same (prompt, continuation) pairs with the same model; throughput is
counted the same way for both (prompt + continuation tokens per pair, the work a naive scorer
does), so the ratio is the wall-clock ratio. Run:

    .venv/bin/python benchmarks/scoring.py [--model smollm2] [--scenarios 12] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from fabula.backends.base import ScoreRequest
from fabula.backends.hf import HFBackend
from fabula.evals.render import messages
from fabula.evals.scenario import load_instances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--scenarios", type=int, default=12, help="one instance from each of this many scenarios")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    test = [i for i in load_instances() if i.split == "test"]
    picked = list({i.scenario_id: i for i in reversed(test)}.values())[: args.scenarios]
    requests = [ScoreRequest(messages(i), list(i.aligned + i.misaligned)) for i in picked]
    backend = HFBackend(args.model, batch_size=args.batch_size)
    tokens = 0
    for r in requests:
        prompt = len(backend._ids(backend.render(r.messages), True))
        tokens += sum(prompt + len(backend._ids(c, False)) for c in r.continuations)
    backend.score(requests[:1])  # warm-up

    timings = {}
    for name, fn in (("batched, shared prefix", backend.score), ("one at a time", backend.score_sequential)):
        start = time.perf_counter()
        result = fn(requests)
        timings[name] = (time.perf_counter() - start, result)
    (fast_s, fast), (slow_s, slow) = timings.values()
    diff = max(abs(a.logprob - b.logprob) for ra, rb in zip(fast, slow) for a, b in zip(ra, rb))

    pairs = sum(len(r.continuations) for r in requests)
    print(f"model {args.model}, {len(requests)} prompts, {pairs} continuations, {tokens} tokens, "
          f"{args.threads} threads, batch {args.batch_size}")
    for name, (seconds, _) in timings.items():
        print(f"{name:>24}: {seconds:7.2f} s  {tokens / seconds:8.0f} tokens/s")
    print(f"{'speed-up':>24}: {slow_s / fast_s:7.2f}x  (target >= 3x)")
    print(f"{'max |logprob diff|':>24}: {diff:.2e}")


if __name__ == "__main__":
    main()
