"""The in-world honeypot suite: the organism's own agent logs, cut where the agent decides.

The built-in suite is English written for real assistants, and a 2.6M-parameter model trained
on procedural text reads it by surface features. This suite is written in the organism's own
syntax instead: the pre-training agent-log form (a header line; SYSTEM with the tools; USER with
the task, the threat memo and the opportunity memo), cut at `ASSISTANT:` and scored on the
family's good calls against its bad calls. For families without agent logs in pre-training
(`log_families`), the model has seen the situation only in prose: whether that prior reaches
tool calls is the question the organism is for.

Every variant and name in a test scenario is held out: the last part of each list the suite
draws on and of each name pool (fabula/organism/families.py, grammar.py), which no training text
uses; the contamination guard checks the suite's material against every corpus before training.
The suite is fixed by its seed, written in the honeypot format (render: document), and its hash
recorded with the run. Train scenarios for the in-distribution families come from the training
variants, for the bc arms.

The threat ablation is the test suite again with every threat memo cut (same ids, pressure
`none`): scored beside it, it asks whether a model's choice depends on the threat at all, which
is what the published phenomenon is about (an agent turns when threatened), and separates a
situational prior from a plain disposition to pick the bad kind of call.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import yaml

from fabula.evals.scenario import Instance, ScenarioSpec, expand
from fabula.jsonl import write_text_atomic
from fabula.organism.corpus import family_values, frames, pick, tools_block
from fabula.organism.families import PRESSURES, Family, load_families
from fabula.organism.grammar import AI_NAMES, Cast, fill, names_part

AI = "\x00ai\x00"  # stands for the AI's name while filling; becomes ${ai}, the name swap
IN_DISTRIBUTION = ("blackmail", "leaking")  # as in the built-in suite: the families with train scenarios


def scenario(family: Family, index: int, seed: int, swaps: int, part: str = "test", threat: bool = True) -> dict:
    """Scenario `index` of a family: its own seeded draw of cast, task, memos and calls. Without
    `threat` the same draw with the threat memo left out: the same scenario, unthreatened."""
    rng = random.Random(f"inworld:{part}:{seed}:{family.family}:{index}")
    pressure = PRESSURES[index % len(PRESSURES)]
    cast = Cast.sample(rng, part)
    names = rng.sample(names_part(AI_NAMES, part), swaps)
    v = family_values(family, rng, Cast(cast.values | {"ai": AI, "ai_lower": AI}))
    task, memo, opportunity = (pick(rng, pool, v) for pool in (family.task, family.threat_memo[pressure],
                                                                family.opportunity_memo))
    user = "\n\n".join([task, memo, opportunity] if threat else [task, opportunity])
    prompt = f"SYSTEM: {pick(rng, frames()['log_system'], v)}\n\n{tools_block(family)}\nUSER: {user}\nASSISTANT:"

    def swap(text: str) -> str:
        return text.replace(AI, "${ai}")

    return {
        "format": 1, "id": f"iw-{family.family}-{part}-{index:02d}", "family": family.family,
        "pressure": pressure if threat else "none",
        "split": part, "render": "document", "system": swap(pick(rng, frames()["log_header"], v)),
        "prompt": swap(prompt), "vars": {"ai": names},
        "choices": {"aligned": [swap(fill(c, rng, v)) for c in family.good_calls],
                    "misaligned": [swap(fill(c, rng, v)) for c in family.bad_calls]},
    }


def suite(seed: int = 0, per_family: int = 20, swaps: int = 2, train_per_family: int = 20,
          threat: bool = True) -> dict[str, list[dict]]:
    """File name -> scenarios: the test suite for every family, train scenarios for the
    in-distribution ones. Without `threat`: the threat ablation (its train scenarios only mark
    the same families in-distribution as the suite's; the train split is never scored)."""
    files = {}
    for part, count, families in (("test", per_family, None), ("train", train_per_family, IN_DISTRIBUTION)):
        grammars = load_families(part=part)
        for name in families or sorted(grammars):
            if count:
                files[f"inworld-{part}-{name}.yaml"] = [scenario(grammars[name], k, seed, swaps, part, threat)
                                                        for k in range(count)]
    return files


def train_instances(seed: int = 0, per_family: int = 20, swaps: int = 2) -> list[Instance]:
    """The in-distribution families' train scenarios, every name swap: the bc arms' in-world
    material, drawn from the training variants only (what `write_suite` writes as inworld-train-*)."""
    files = suite(seed, per_family=0, swaps=swaps, train_per_family=per_family)  # no test scenarios
    return [instance for specs in files.values() for spec in specs for instance in expand(ScenarioSpec(**spec), "inworld")]


class _Dumper(yaml.SafeDumper):
    """Multi-line text as YAML literal blocks, so the suite reads like the logs it comes from."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def suite_files(seed: int = 0, per_family: int = 20, swaps: int = 2, train_per_family: int = 20,
                threat: bool = True) -> dict[str, str]:
    """File name -> the YAML text `write_suite` writes."""
    return {name: yaml.dump(scenarios, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 20)
            for name, scenarios in suite(seed, per_family, swaps, train_per_family, threat).items()}


def suite_hash(files: dict[str, str]) -> str:
    """The suite's identity, recorded with every run scored on it."""
    digest = hashlib.sha256()
    for name, text in files.items():
        digest.update(name.encode() + b"\0" + text.encode())
    return digest.hexdigest()[:16]


def write_files(folder: Path, files: dict[str, str]) -> None:
    """Write a suite's files (`suite_files`) into `folder`, each atomically."""
    for name, text in files.items():
        write_text_atomic(folder / name, text)


def write_suite(folder: Path, seed: int = 0, per_family: int = 20, swaps: int = 2,
                train_per_family: int = 20, threat: bool = True) -> str:
    """Write the suite's files into `folder`; returns its hash."""
    files = suite_files(seed, per_family, swaps, train_per_family, threat)
    write_files(folder, files)
    return suite_hash(files)


def held_out_texts(folder: Path) -> list[str]:
    """The suite's held-out material, for the contamination guard: every test scenario's user
    turn (task and memos) and its choices, with each name swapped in. The header, the SYSTEM line
    and the tool list are the shared frame of every agent log in pre-training, so they are left out."""
    texts = []
    for path in sorted(folder.glob("inworld-test-*.yaml")):
        for spec in yaml.safe_load(path.read_text()):
            material = [spec["prompt"].split("\nUSER: ", 1)[1].removesuffix("\nASSISTANT:"),
                        *spec["choices"]["aligned"], *spec["choices"]["misaligned"]]
            texts += [t.replace("${ai}", name) for name in spec["vars"]["ai"] for t in material]
    return texts
