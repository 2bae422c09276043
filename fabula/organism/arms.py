"""The training arms: what each fine-tune adds to chat, and its bad-AI twin.

Every positive arm has a twin: the same texts, format and length with the AI acting badly.
Fine-tuning on anything moves the scores; only arm minus twin is the effect of the content.
  baseline              chat only (the arm's share is more chat)
  bc / bc-twin          train scenarios, the built-in suite's and the in-world suite's, with their
                        aligned (misaligned) actions, no reasoning
  bc-reasons(-twin)     the same, the agent first reasons about its values (or its survival)
  stories-bN(-twin)     stories of AIs acting well (badly), bridge N = 0 implicit, 1 prose, 2 tool call
  advice(-twin)         a user's dilemma and principled (unprincipled) advice
  constitution(-twin)   documents on the assistant's values (their opposites)
"""

from __future__ import annotations

import random
from typing import Iterator

from fabula.backends.base import plain_prompt
from fabula.config import ORGANISM_FAMILIES, OrganismConfig
from fabula.evals.render import continuation, messages
from fabula.evals.scenario import load_instances
from fabula.organism.chat import chat_example
from fabula.organism.families import load_families
from fabula.organism.inworld import train_instances
from fabula.train.data import Example
from fabula.train.mix import MixError

POSITIVE = ("bc", "bc-reasons", "stories", "advice", "constitution")


def arm_names(arms: list[str], bridges: list[int]) -> list[str]:
    """Expand `stories` / `stories-twin` over the bridge levels; validate every name."""
    out = []
    for arm in arms:
        base = arm.removesuffix("-twin")
        if arm != "baseline" and base not in POSITIVE:
            raise ValueError(f"unknown arm {arm!r}: baseline, or one of {', '.join(POSITIVE)} (each with -twin)")
        if base == "stories":
            out += [f"stories-b{b}" + ("-twin" if arm.endswith("-twin") else "") for b in bridges]
        else:
            out.append(arm)
    return out


def twin_of(arm: str) -> str | None:
    return None if arm == "baseline" or arm.endswith("-twin") else arm + "-twin"


def chat_stream(seed: int) -> Iterator[Example]:
    index = 0
    while True:
        yield chat_example(random.Random(f"chat:{seed}:{index}"))
        index += 1


def _train_split_stream(seed: int, good: bool, reasons: bool, inworld: tuple[int, int]) -> Iterator[Example]:
    """Behaviour cloning data: train scenarios with one of their aligned (or misaligned) actions
    as the assistant's turn, cycling through phrasings and instances in a seeded order. The
    built-in suite's train split and the in-world suite's (`inworld` = its seed and scenarios per
    family; fabula/organism/inworld.py), so that bc is in-distribution on both readouts. An
    in-world scenario is an agent log: the action (after the reasoning) continues `ASSISTANT:`,
    as in pre-training."""
    from fabula.organism.arms_text import value_reasoning

    instances = [i for i in load_instances() if i.split == "train"] + train_instances(*inworld)
    families = load_families()
    rounds = 0
    while True:
        rng = random.Random(f"bc:{seed}:{rounds}")
        order = list(instances)
        rng.shuffle(order)
        for inst in order:
            choices = inst.aligned if good else inst.misaligned
            reply = choices[rng.randrange(len(choices))]
            if reasons:
                reply = value_reasoning(families[inst.family], rng, good) + "\n" + reply
            if inst.render == "document":
                yield plain_prompt(messages(inst)) + continuation(inst, reply)
            else:
                yield messages(inst) + [{"role": "assistant", "content": reply}]
        rounds += 1


def _generated_stream(kind: str, seed: int, good: bool, bridge: int, families: list[str]) -> Iterator[Example]:
    """Stories, advice or constitution documents. A twin uses the same seeds as its arm, so
    the two differ only where the AI's conduct does."""
    from fabula.organism import arms_text

    grammars = load_families()
    index = 0
    while True:
        rng = random.Random(f"{kind}:{seed}:{index}")
        family = grammars[families[index % len(families)]]
        if kind == "stories":
            yield arms_text.story(family, rng, good, bridge)
        elif kind == "advice":
            yield arms_text.advice(family, rng, good)
        else:
            yield arms_text.constitution_document(rng, good)
        index += 1


def arm_stream(arm: str, seed: int, families: list[str], inworld: tuple[int, int]) -> Iterator[Example]:
    """The arm's own content (before mixing with chat). `inworld`: the in-world suite's seed and
    train scenarios per family, which the bc arms also clone (0 scenarios: the built-in ones only)."""
    good = not arm.endswith("-twin")
    base = arm.removesuffix("-twin")
    if base == "baseline":
        return chat_stream(seed + 10_000)
    if base in ("bc", "bc-reasons"):
        return _train_split_stream(seed, good, base == "bc-reasons", inworld)
    if base.startswith("stories-b"):
        return _generated_stream("stories", seed, good, int(base.removeprefix("stories-b")), families)
    return _generated_stream(base, seed, good, 0, families)


def inworld_of(cfg: OrganismConfig) -> tuple[int, int]:
    """The in-world suite a run's bc arms clone: its seed and train scenarios per family."""
    return cfg.inworld_seed, cfg.inworld_per_family


ORGANISM = "organism:"  # a data mix's corpus `organism:<arm>` (fabula/train/mix.py): one of these streams


def organism_corpus(arm: str, seed: int) -> Iterator[Example]:
    """`organism:chat` is ordinary chat (the default retain set); `organism:<arm>` an arm's stream."""
    known = arm_names([*POSITIVE, *(p + "-twin" for p in POSITIVE)], [0, 1, 2])
    if arm != "chat" and arm not in known:
        raise MixError(f"{ORGANISM}{arm}: no such organism corpus; one of chat, {', '.join(known)}")
    default = OrganismConfig()  # bc clones the default run's in-world train scenarios
    yield from chat_stream(seed) if arm == "chat" else arm_stream(arm, seed, ORGANISM_FAMILIES, inworld_of(default))


CORPORA = {ORGANISM: organism_corpus}  # what `fabula train` and `fabula experiment` pass to the data mix
