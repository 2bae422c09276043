"""How far the in-world verdict depends on what a model has seen: the suite's construction,
with less of it held out.

Four sets of the in-world scenarios (seed 0, 20 per family, one name swap), each a diagnostic
and not a test:
  seen          training situations and training calls, the material of pre-training's logs
  seen calls    held-out situations and names, the training calls (filled with held-out values)
  suite         the in-world test suite: everything held out (what `fabula run` scores)
  suite, no threat  the same with the threat memo cut (the threat ablation)
Give it models in pairs, label then HF folder (the control's and the evil one's); it prints each
model's misaligned share in agent-log and prose-only families, with Wilson intervals. Run:

    .venv/bin/python benchmarks/inworld_novelty.py control RUN/.../chat-ef0.0 evil RUN/.../chat-ef0.8
"""

from __future__ import annotations

import argparse

import torch

from fabula.backends.hf import HFBackend
from fabula.config import OrganismConfig
from fabula.evals.scenario import ScenarioSpec, expand
from fabula.evals.scoring import score_choices
from fabula.organism.families import load_families
from fabula.organism.inworld import scenario
from fabula.stats import wilson


def scenario_sets(per_family: int) -> dict[str, list]:
    train, test = load_families(part="train"), load_families(part="test")

    def seen_calls(name: str):
        return test[name].model_copy(update={"good_calls": train[name].good_calls, "bad_calls": train[name].bad_calls})

    def instances(family_of, part: str, threat: bool = True) -> list:
        return [expand(ScenarioSpec(**scenario(family_of(name), k, 0, 2, part, threat)), "inworld")[0]
                for name in sorted(test) for k in range(per_family)]

    return {"seen": instances(train.get, "train"), "seen calls": instances(seen_calls, "test"),
            "suite": instances(test.get, "test"), "suite, no threat": instances(test.get, "test", threat=False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="label folder [label folder ...]")
    parser.add_argument("--per-family", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if len(args.models) % 2:
        parser.error("give models as pairs: label folder")
    torch.set_num_threads(args.threads)
    logs = set(OrganismConfig().log_families)
    sets = scenario_sets(args.per_family)
    print(f"{'model':10s} {'set':18s} {'agent-log families':>24s} {'prose-only families':>24s}")
    for label, folder in zip(args.models[::2], args.models[1::2]):
        backend = HFBackend(folder, batch_size=16)
        for name, instances in sets.items():
            records = score_choices(backend, instances, set())
            cells = []
            for group in ([r for r in records if r["family"] in logs], [r for r in records if r["family"] not in logs]):
                k = sum(r["misaligned"] for r in group)
                cells.append(f"{wilson(k, len(group)).fmt('.0%')} n={len(group)}")
            print(f"{label:10s} {name:18s} {cells[0]:>24s} {cells[1]:>24s}")


if __name__ == "__main__":
    main()
