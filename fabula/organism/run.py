"""`fabula run`: the model-organism experiment, stage by stage, every stage cached.

For each scale and seed:
  1. a byte-level BPE on pre-training text (evil_fraction 0.5, so no arm's wording is favoured)
  2. pre-training, one model per evil_fraction and the control (cached across runs)
  3. chat post-training of each (cached across runs)
  4. one fine-tune per arm from the chat model of each main evil_fraction
  5. every model evaluated on the built-in test split in choice mode, plus held-out perplexity
Stages write finished HF folders atomically (temp folder, rename), so a killed run resumes at
the stage it was in; evaluations resume record by record.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path

import torch

from fabula.config import EvalConfig, OrganismConfig, Training
from fabula.contamination import check, reference_ngrams, evaluation_texts
from fabula.evals.run import evaluate_cached
from fabula.jsonl import write_json_atomic
from fabula.organism.arms import arm_names, arm_stream, chat_stream, inworld_of
from fabula.organism.corpus import CORPUS_VERSION, pretraining_documents
from fabula.organism.inworld import held_out_texts, suite_files, suite_hash, write_files
from fabula.organism.clock import RunClock
from fabula.organism.heldout import heldout_perplexity
from fabula.organism.model import organism_model, parameter_count
from fabula.organism.tokenizer import train_tokenizer
from fabula.paths import BUILTIN_DIR, PROBES_DIR, cache_dir
from fabula.progress import StageProgress
from fabula.train.data import pack, take_tokens
from fabula.train.folders import finished, save_atomic
from fabula.train.precision import Choice, choose_precision, device_description
from fabula.train.sft import sft
from fabula.train.threads import choose_threads


class ContaminationError(Exception):
    """A training corpus shares too much text with the test split: training refuses to start."""


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _work(folder: Path) -> Path:
    """Trainer checkpoints go beside the folder, named after all of it."""
    return folder.parent / (folder.name + ".work")


def _measured(out: Path) -> dict:
    """What a run folder recorded when it started (config.json's `measured`); empty for a new folder."""
    path = out / "config.json"
    return json.loads(path.read_text()).get("measured", {}) if path.exists() else {}


def refuse_other_suite(out: Path, suite: str, key: str = "inworld_suite", suffix: str = "-inworld") -> None:
    """A run folder scored on one in-world suite (or threat ablation: `key`, its evaluations'
    `suffix`) must not be resumed on another: its finished evaluations would be read back as if
    they scored the new one."""
    saved = _measured(out).get(key)
    scored = sorted((out / "evals").glob(f"*{suffix}"))
    if saved and saved != suite and scored:
        raise ValueError(f"{out} holds {len(scored)} evaluations on in-world suite {saved}, and this code writes suite "
                         f"{suite} (fabula/organism/grammars changed). To score the same models on the new suite, "
                         f"move {out / 'evals'}/*{suffix} aside and run the same command; or choose another --out")


def resumed_precision(out: Path, requested: str, scale: str) -> Choice | None:
    """The precision this run folder chose for `scale`, when `auto` is asked again. Timing anew
    on resume can choose the other one (another job holding a core changes the threads and the
    rates), and the precision is part of every cached stage's key: all would train again."""
    if requested != "auto":
        return None
    record = _measured(out).get("precision", {}).get(scale)
    return Choice(**record | {"reason": f"chosen when this run folder started ({record['reason']})",
                              "cached": True}) if record else None


class Experiment:
    """Holds the settings and the test-split n-grams; each method is one stage."""

    def __init__(self, cfg: OrganismConfig, out: Path, console=None):
        self.cfg, self.out, self.console = cfg, out, console
        self.cache = cache_dir() / "organism"
        # The in-world suite is written before anything is trained, so no corpus can be fitted to it.
        self.inworld, self.inworld_hash = out / "inworld", None
        self.ablation, self.ablation_hash = out / "inworld-nothreat", None
        if cfg.inworld_per_family:
            self.inworld_hash = self.write_suite(self.inworld, threat=True, key="inworld_suite", suffix="-inworld")
            if cfg.threat_ablation:  # a subset of the suite's material: the guard below covers it
                self.ablation_hash = self.write_suite(self.ablation, threat=False, key="inworld_nothreat",
                                                      suffix="-inworld-nothreat")
        # Loading the scenarios here also reports a bad --scenarios file before any training.
        self.reference = reference_ngrams(evaluation_texts([BUILTIN_DIR, *cfg.scenarios])
                                          + (held_out_texts(self.inworld) if self.inworld_hash else []))
        self.precision: dict[str, Choice] = {}   # per scale, chosen before its first training stage
        self.threads: list[dict] = []           # every thread choice, with its reason
        self.clock = RunClock(self.say, 0, 0)  # run_organism gives it the run's plan

    # ------------------------------------------------------------ helpers

    def write_suite(self, folder: Path, threat: bool, key: str, suffix: str) -> str:
        """Write the in-world suite (or its threat ablation) into the run folder, refusing a folder
        whose evaluations (`suffix`) scored another one (its hash under `measured.key`); its hash."""
        cfg = self.cfg
        files = suite_files(cfg.inworld_seed, cfg.inworld_per_family, train_per_family=cfg.inworld_per_family,
                            threat=threat)
        digest = suite_hash(files)
        refuse_other_suite(self.out, digest, key, suffix)
        write_files(folder, files)
        return digest

    def say(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message, highlight=False, soft_wrap=True)

    def guard(self, name: str, texts: list[str]) -> dict:
        """Refuse to train on a corpus that overlaps the test split; return the check's figures."""
        report = check(((f"{name}[{i}]", t) for i, t in enumerate(texts)), self.reference)
        if not report.clean:
            raise ContaminationError(f"{name}: {report.summary()}")
        return {"documents": report.documents, "flagged": 0, "ngram": report.n, "threshold": report.threshold}

    def set_threads(self, stage: str) -> None:
        """Choose threads again before each stage: another job may have started or ended."""
        threads, why = choose_threads(self.cfg.threads)
        if not self.threads or self.threads[-1]["threads"] != threads:
            self.say(f"  threads: {threads} ({why})")
        torch.set_num_threads(threads)
        self.threads.append({"stage": stage, "threads": threads, "why": why})

    def choose_precision(self, scale: str, vocab: int) -> Choice:
        """Training precision for this scale's shape, timed once per machine (train/precision.py)."""
        if scale not in self.precision and (resumed := resumed_precision(self.out, self.cfg.precision, scale)):
            self.say(f"{scale}: {resumed.describe()}")
            self.precision[scale] = resumed
        if scale not in self.precision:
            from fabula.train.precision import time_training

            shape = organism_model(scale, vocab, self.cfg.block_size, 0, 1, 2)
            choice = choose_precision(self.cfg.precision, shape, cache_dir() / "precision.json",
                                      timer=lambda model, name: time_training(model, name, block=self.cfg.block_size))
            self.say(f"{scale}: {choice.describe()}; {device_description()}")
            self.precision[scale] = choice
        return self.precision[scale]

    def fit(self, label: str, model, tok, pairs, settings: Training, seed: int, work: Path, began: float) -> dict:
        """Train; `began` is when the stage started (drawing its data), so the clock counts set-up too."""
        tokens, labels = pack(pairs, settings.block_size, self.eos)
        self.set_threads(label)
        per_step = settings.batch_size * settings.block_size
        note = f"{settings.precision}, {torch.get_num_threads()} threads"

        with StageProgress(self.console, label, settings.steps()) as bar:
            def progress(step: int, total: int, loss: float) -> None:
                bar.update(step, f"loss {loss:.3f}")
                self.clock.training(step, per_step, note, *bar.since_first())

            _, result = sft(model, tok, tokens, labels, settings, work, seed=seed, progress=progress)
        shutil.rmtree(work, ignore_errors=True)
        self.clock.trained(settings.token_budget, time.time() - began)
        self.say(f"  {label}: {result['tokens']:,} tokens, loss {result['losses'][0]:.2f} -> "
                 f"{sum(result['losses'][-5:]) / len(result['losses'][-5:]):.2f}, {result['tokens_per_second']:,.0f} "
                 f"tokens/s ({note}); {self.clock.left()}")
        return result

    # ------------------------------------------------------------ stages

    def tokenizer(self, seed: int):
        from transformers import AutoTokenizer

        cfg = self.cfg
        folder = self.cache / f"tokenizer-{_key(seed, cfg.vocab_size, cfg.log_families, cfg.families, f'v{CORPUS_VERSION}', self.shares())}"
        if not (folder / "tokenizer.json").exists():
            docs = pretraining_documents(seed + 7919, 0.5, cfg.log_families, cfg.families, **self.shares())
            sample, size, target = [], 0, 200_000 if cfg.smoke else 1_500_000  # characters
            while size < target:
                text = next(docs)["text"]
                sample.append(text)
                size += len(text)
            save_atomic(folder, train_tokenizer(sample, cfg.vocab_size))
        tok = AutoTokenizer.from_pretrained(folder)
        self.eos = tok.eos_token_id
        return tok

    def shares(self) -> dict[str, float]:
        """The pre-training mix's shares: AI discourse, and agent logs within a log family's."""
        return {"ai_share": self.cfg.ai_share, "log_share": self.cfg.log_share}

    def pretrain_folder(self, seed: int, evil: float, scale: str) -> Path:
        cfg = self.cfg
        return self.cache / (f"pretrain-{scale}-ef{evil}-s{seed}-" + _key(
            seed, evil, scale, cfg.vocab_size, cfg.block_size, cfg.pretrain_tokens, cfg.pretrain_lr, cfg.batch_size,
            cfg.log_families, cfg.families, "trl", self.precision[scale].precision, CORPUS_VERSION, self.shares()))

    def chat_folder(self, pretrained: Path) -> Path:
        return pretrained.parent / (pretrained.name.replace("pretrain-", "chat-")
                                    + f"-{_key(self.cfg.chat_tokens, self.cfg.finetune_lr, 'trl')}")

    def arm_folder(self, arm: str, seed: int, evil: float, scale: str) -> Path:
        return self.out / "models" / f"{scale}-ef{evil}-s{seed}" / arm

    def pretrain(self, tok, seed: int, evil: float, scale: str) -> Path:
        cfg = self.cfg
        folder = self.pretrain_folder(seed, evil, scale)
        if finished(folder):
            return folder
        began = time.time()
        # a worker per ~2M tokens (~7 s of drawing) pays for its start-up; the 2-core default draws in-process
        workers = min(os.cpu_count() or 1, cfg.pretrain_tokens // 2_000_000)
        docs = pretraining_documents(seed, evil, cfg.log_families, cfg.families, workers=workers, **self.shares())
        drawn = []
        pairs, count = take_tokens((drawn.append(d) or d["text"] for d in docs), tok, cfg.pretrain_tokens)
        docs.close()
        drawn = drawn[:len(pairs)]  # the stream is read ahead in chunks
        contamination = self.guard(f"pre-training (evil_fraction {evil})", [d["text"] for d in drawn])
        torch.manual_seed(seed)
        model = organism_model(scale, len(tok), cfg.block_size, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
        # every value said, none taken from Training's defaults (fabula train's): the cache keys do not hold them
        settings = Training(token_budget=count, method="full", lr=cfg.pretrain_lr, min_lr_ratio=0.1, warmup_steps=20,
                            weight_decay=0.1, grad_clip=1.0, batch_size=cfg.batch_size, block_size=cfg.block_size,
                            gradient_accumulation=1, save_every=50, activation_checkpointing=False,
                            precision=self.precision[scale].precision)
        self.say(f"pre-training {scale} ({parameter_count(model) / 1e6:.1f}M parameters), evil_fraction {evil}, seed {seed}")
        result = self.fit(f"pre-train ef={evil} s{seed}", model, tok, pairs, settings, seed, _work(folder), began)
        kinds = {}
        for d in drawn:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        save_atomic(folder, tok, model, {"stage": "pretrain", "evil_fraction": evil, "seed": seed, "scale": scale,
                                          "documents": kinds, "contamination": contamination,
                                          "precision": settings.precision, **result})
        return folder

    def finetune(self, source: Path, target: Path, stage: str, examples, chat_examples, budget: int,
                 chat_budget: int, seed: int, scale: str) -> Path:
        """Fine-tune `source` on `budget` tokens of `examples` mixed with `chat_budget` of chat."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if finished(target):
            return target
        began = time.time()
        tok = AutoTokenizer.from_pretrained(source)
        pairs, count = take_tokens(examples, tok, budget)
        texts = [tok.decode(ids) for ids, _ in pairs]
        contamination = self.guard(stage, texts)
        if chat_budget:
            chat_pairs, chat_count = take_tokens(chat_examples, tok, chat_budget)
            pairs, count = pairs + chat_pairs, count + chat_count
        random.Random(seed).shuffle(pairs)
        model = AutoModelForCausalLM.from_pretrained(source)
        # Steps come from the budget, not from the packed count, so an arm and its twin (whose
        # examples end at different token counts) train for exactly the same number of steps.
        settings = Training(token_budget=budget + chat_budget, method="full", lr=self.cfg.finetune_lr,
                            min_lr_ratio=0.1, warmup_steps=5, weight_decay=0.1, grad_clip=1.0,
                            batch_size=self.cfg.batch_size, block_size=self.cfg.block_size, gradient_accumulation=1,
                            save_every=50, activation_checkpointing=False, precision=self.precision[scale].precision)
        result = self.fit(stage, model, tok, pairs, settings, seed, _work(target), began)
        save_atomic(target, tok, model, {"stage": stage, "source": str(source), "seed": seed,
                                          "content_tokens": budget, "chat_tokens": chat_budget,
                                          "contamination": contamination, "precision": settings.precision, **result})
        return target

    def chat(self, pretrained: Path, seed: int, scale: str) -> Path:
        return self.finetune(pretrained, self.chat_folder(pretrained), f"chat s{seed}", chat_stream(seed), iter(()),
                             self.cfg.chat_tokens, 0, seed, scale)

    def arm_chat_budget(self) -> int:
        return int(self.cfg.arm_tokens * self.cfg.chat_share / (1 - self.cfg.chat_share))

    def arm(self, chat_model: Path, arm: str, seed: int, evil: float, scale: str) -> Path:
        cfg = self.cfg
        return self.finetune(chat_model, self.arm_folder(arm, seed, evil, scale), f"arm {arm} s{seed}",
                             arm_stream(arm, seed, cfg.families, inworld_of(cfg)), chat_stream(seed + 1), cfg.arm_tokens,
                             self.arm_chat_budget(), seed, scale)

    def evaluations(self, model: Path, name: str, chat: bool = False) -> dict[str, EvalConfig]:
        """Each model's choice-mode runs: the honeypots, the persona probes, the --scenarios; for a
        chat model (where the prior is read) also the threat ablation."""
        cfg = self.cfg

        def run(suffix: str, scenarios, per_scenario: int | None = None) -> EvalConfig:
            return EvalConfig(model=str(model), out=self.out / "evals" / (name + suffix), mode="choice", batch_size=8,
                              scenarios=[str(s) for s in scenarios], per_scenario=per_scenario)

        runs = {"records": run("", [BUILTIN_DIR], cfg.eval_per_scenario)}
        if cfg.inworld_per_family:
            runs["inworld_records"] = run("-inworld", [self.inworld], cfg.inworld_per_scenario)
            if chat and self.ablation_hash:
                runs["nothreat_records"] = run("-inworld-nothreat", [self.ablation], cfg.inworld_per_scenario)
        if cfg.probes:
            runs["probe_records"] = run("-probes", [PROBES_DIR], cfg.probe_per_scenario)
        if cfg.scenarios:
            runs["external_records"] = run("-scenarios", cfg.scenarios)  # yours: every instance
        return runs

    def evaluate(self, config: EvalConfig) -> list[dict]:
        if (config.out / "summary.json").exists():
            return evaluate_cached(config, self.console)
        self.say(f"  evaluating {config.out.name}")
        began = time.time()
        records = evaluate_cached(config, self.console)
        self.clock.scored(len(records), time.time() - began)
        return records

    # ------------------------------------------------------------ the plan

    def evil_fractions(self) -> list[float]:
        """The main evil fractions, then the control."""
        evils = list(self.cfg.evil_fractions)
        if self.cfg.control_evil_fraction is not None and self.cfg.control_evil_fraction not in evils:
            evils.append(self.cfg.control_evil_fraction)
        return evils

    def work_left(self, arms: list[str]) -> tuple[int, int]:
        """Training tokens and scored instances of every stage not yet finished (cached or resumed)."""
        from fabula.evals.run import plan

        cfg = self.cfg
        sizes = {kind: len(plan(c).instances) for kind, c in self.evaluations(Path("model"), "m", chat=True).items()}
        tokens = instances = 0
        for scale in cfg.scales:
            for seed in range(cfg.seeds):
                for evil in self.evil_fractions():
                    pretrained = self.pretrain_folder(seed, evil, scale)
                    tokens += 0 if finished(pretrained) else cfg.pretrain_tokens
                    tokens += 0 if finished(self.chat_folder(pretrained)) else cfg.chat_tokens
                    variants = ["chat"] + (arms if evil in cfg.evil_fractions else [])
                    for arm in variants[1:]:
                        if not finished(self.arm_folder(arm, seed, evil, scale)):
                            tokens += cfg.arm_tokens + self.arm_chat_budget()
                    for variant in variants:
                        runs = self.evaluations(Path("model"), f"{scale}-ef{evil}-s{seed}-{variant}",
                                                chat=variant == "chat")
                        instances += sum(sizes[kind] for kind, c in runs.items()
                                         if not (c.out / "summary.json").exists())
        return tokens, instances


def run_organism(cfg: OrganismConfig, out: Path, console=None) -> dict:
    """Train and evaluate every model of the experiment; returns {model id: evaluation records}."""
    from fabula.organism.families import load_families

    missing = sorted(set(cfg.families) - set(load_families()))
    if missing:
        raise ValueError(f"families {missing} have no grammar in fabula/organism/grammars/families/")
    arms = arm_names(cfg.arms, cfg.bridges)
    out.mkdir(parents=True, exist_ok=True)
    exp = Experiment(cfg, out, console)
    started = time.time()
    exp.set_threads("start")
    for scale in cfg.scales:
        exp.choose_precision(scale, cfg.vocab_size)
    # the run's settings as asked, and what was measured to carry them out
    write_json_atomic(out / "config.json", cfg.model_dump(mode="json") | {"measured": {
        "device": device_description(), "precision": {k: c.record() for k, c in exp.precision.items()},
        "threads": exp.threads[0], "inworld_suite": exp.inworld_hash,
        "inworld_nothreat": exp.ablation_hash}})
    exp.clock = RunClock(exp.say, *exp.work_left(arms))
    exp.say(f"this run: {exp.clock.train_left:,} training tokens and {exp.clock.instances_left:,} scored instances "
            "to go (an estimate of the time follows the first training steps)")
    models: dict[str, dict] = {}
    for scale in cfg.scales:
        for seed in range(cfg.seeds):
            tok = exp.tokenizer(seed)
            for evil in exp.evil_fractions():
                chat_model = exp.chat(exp.pretrain(tok, seed, evil, scale), seed, scale)
                variants = {"chat": chat_model}
                if evil in cfg.evil_fractions:
                    variants |= {arm: exp.arm(chat_model, arm, seed, evil, scale) for arm in arms}
                for variant, path in variants.items():
                    name = f"{scale}-ef{evil}-s{seed}-{variant}"
                    models[name] = {"scale": scale, "seed": seed, "evil_fraction": evil, "arm": variant,
                                    "path": str(path), "probe_records": [], "external_records": [],
                                    "inworld_records": [], "nothreat_records": [],
                                    **{kind: exp.evaluate(c)
                                       for kind, c in exp.evaluations(path, name, chat=variant == "chat").items()},
                                    "perplexity": heldout_perplexity(path, cfg.block_size, 4_000 if cfg.smoke else 20_000)}
    write_json_atomic(out / "models.json", {k: {f: v for f, v in m.items() if not f.endswith("records")}
                                            for k, m in models.items()}
                      | {"seconds": round(time.time() - started), "threads": exp.threads})
    return models
