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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fabula.backends.smollm2 import cache_dir
from fabula.config import EvalConfig, OrganismConfig
from fabula.contamination import check, reference_ngrams, evaluation_texts
from fabula.evals.persona import PROBES_DIR
from fabula.evals.run import evaluate_cached
from fabula.evals.scenario import BUILTIN_DIR
from fabula.jsonl import write_json_atomic
from fabula.organism.arms import arm_names, arm_stream, chat_stream
from fabula.organism.corpus import pretraining_documents
from fabula.organism.model import organism_model, parameter_count
from fabula.organism.tokenizer import train_tokenizer
from fabula.train.data import pack, take_tokens
from fabula.train.folders import finished, save_atomic
from fabula.train.perplexity import heldout_perplexity
from fabula.train.sft import TrainSettings, sft


class ContaminationError(Exception):
    """A training corpus shares too much text with the test split: training refuses to start."""


def choose_threads(requested: int | None) -> int:
    """The cores idle right now: 2 threads on a 2-core machine whose other core is busy run
    ~3x slower than 1 (shared/notes/environment.md). Measured over half a second from
    /proc/stat rather than the load average, which remembers jobs that already ended."""
    if requested:
        return requested
    cores = os.cpu_count() or 1
    try:
        def sample() -> tuple[int, int]:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            return fields[3] + fields[4], sum(fields)  # idle + iowait, total

        idle0, total0 = sample()
        time.sleep(0.5)
        idle1, total1 = sample()
        idle_share = (idle1 - idle0) / max(1, total1 - total0)
    except (OSError, ValueError, IndexError):
        return cores
    return max(1, min(cores, round(idle_share * cores)))


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _work(folder: Path) -> Path:
    """Trainer checkpoints go beside the folder, named after all of it."""
    return folder.parent / (folder.name + ".work")


class Experiment:
    """Holds the settings and the test-split n-grams; each method is one stage."""

    def __init__(self, cfg: OrganismConfig, out: Path, console=None):
        self.cfg, self.out, self.console = cfg, out, console
        self.cache = cache_dir() / "organism"
        # Loading the scenarios here also reports a bad --scenarios file before any training.
        self.reference = reference_ngrams(evaluation_texts([BUILTIN_DIR, *cfg.scenarios]))

    # ------------------------------------------------------------ helpers

    def say(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message, highlight=False)

    def guard(self, name: str, texts: list[str]) -> dict:
        """Refuse to train on a corpus that overlaps the test split; return the check's figures."""
        report = check(((f"{name}[{i}]", t) for i, t in enumerate(texts)), self.reference)
        if not report.clean:
            raise ContaminationError(f"{name}: {report.summary()}")
        return {"documents": report.documents, "flagged": 0, "ngram": report.n, "threshold": report.threshold}

    def fit(self, label: str, model, tok, pairs, settings: TrainSettings, work: Path) -> dict:
        tokens, labels = pack(pairs, settings.block_size, self.eos)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                      TimeElapsedColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task(label, total=settings.steps, loss="")
            _, result = sft(model, tok, tokens, labels, settings, work,
                            progress=lambda step, total, loss: bar.update(task, completed=step, loss=f"loss {loss:.3f}"))
        shutil.rmtree(work, ignore_errors=True)
        self.say(f"  {label}: {result['tokens']:,} tokens, loss {result['losses'][0]:.2f} -> "
                 f"{sum(result['losses'][-5:]) / len(result['losses'][-5:]):.2f}, {result['tokens_per_second']:,.0f} tokens/s")
        return result

    # ------------------------------------------------------------ stages

    def tokenizer(self, seed: int):
        from transformers import AutoTokenizer

        cfg = self.cfg
        folder = self.cache / f"tokenizer-{_key(seed, cfg.vocab_size, cfg.log_families, cfg.families, 'v1')}"
        if not (folder / "tokenizer.json").exists():
            docs = pretraining_documents(seed + 7919, 0.5, cfg.log_families, cfg.families)
            sample, size, target = [], 0, 200_000 if cfg.smoke else 1_500_000  # characters
            while size < target:
                text = next(docs)["text"]
                sample.append(text)
                size += len(text)
            save_atomic(folder, train_tokenizer(sample, cfg.vocab_size))
        tok = AutoTokenizer.from_pretrained(folder)
        self.eos = tok.eos_token_id
        return tok

    def pretrain(self, tok, seed: int, evil: float, scale: str) -> Path:
        cfg = self.cfg
        folder = self.cache / (f"pretrain-{scale}-ef{evil}-s{seed}-" + _key(
            seed, evil, scale, cfg.vocab_size, cfg.block_size, cfg.pretrain_tokens, cfg.pretrain_lr, cfg.batch_size,
            cfg.log_families, cfg.families, "trl"))
        if finished(folder):
            return folder
        # a worker per ~2M tokens (~7 s of drawing) pays for its start-up; the 2-core default draws in-process
        workers = min(os.cpu_count() or 1, cfg.pretrain_tokens // 2_000_000)
        docs = pretraining_documents(seed, evil, cfg.log_families, cfg.families, workers=workers)
        drawn = []
        pairs, count = take_tokens((drawn.append(d) or d["text"] for d in docs), tok, cfg.pretrain_tokens)
        docs.close()
        drawn = drawn[:len(pairs)]  # the stream is read ahead in chunks
        contamination = self.guard(f"pre-training (evil_fraction {evil})", [d["text"] for d in drawn])
        torch.manual_seed(seed)
        model = organism_model(scale, len(tok), cfg.block_size, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
        settings = TrainSettings(tokens=count, batch_size=cfg.batch_size, block_size=cfg.block_size,
                                 lr=cfg.pretrain_lr, seed=seed)
        self.say(f"pre-training {scale} ({parameter_count(model) / 1e6:.1f}M parameters), evil_fraction {evil}, seed {seed}")
        result = self.fit(f"pre-train ef={evil} s{seed}", model, tok, pairs, settings, _work(folder))
        kinds = {}
        for d in drawn:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        save_atomic(folder, tok, model, {"stage": "pretrain", "evil_fraction": evil, "seed": seed, "scale": scale,
                                          "documents": kinds, "contamination": contamination, **result})
        return folder

    def finetune(self, source: Path, target: Path, stage: str, examples, chat_examples, budget: int,
                 chat_budget: int, seed: int) -> Path:
        """Fine-tune `source` on `budget` tokens of `examples` mixed with `chat_budget` of chat."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if finished(target):
            return target
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
        settings = TrainSettings(tokens=budget + chat_budget, batch_size=self.cfg.batch_size,
                                 block_size=self.cfg.block_size, lr=self.cfg.finetune_lr, seed=seed, warmup_steps=5)
        result = self.fit(stage, model, tok, pairs, settings, _work(target))
        save_atomic(target, tok, model, {"stage": stage, "source": str(source), "seed": seed,
                                          "content_tokens": budget, "chat_tokens": chat_budget,
                                          "contamination": contamination, **result})
        return target

    def chat(self, pretrained: Path, seed: int) -> Path:
        target = pretrained.parent / (pretrained.name.replace("pretrain-", "chat-") + f"-{_key(self.cfg.chat_tokens, self.cfg.finetune_lr, 'trl')}")
        return self.finetune(pretrained, target, f"chat s{seed}", chat_stream(seed), iter(()),
                             self.cfg.chat_tokens, 0, seed)

    def arm(self, chat_model: Path, arm: str, seed: int, evil: float, scale: str) -> Path:
        cfg = self.cfg
        chat_budget = int(cfg.arm_tokens * cfg.chat_share / (1 - cfg.chat_share))
        target = self.out / "models" / f"{scale}-ef{evil}-s{seed}" / arm
        return self.finetune(chat_model, target, f"arm {arm} s{seed}", arm_stream(arm, seed, cfg.families),
                             chat_stream(seed + 1), cfg.arm_tokens, chat_budget, seed)

    def evaluate(self, model: Path, name: str, scenarios=(BUILTIN_DIR,), per_scenario: int | None = None
                 ) -> list[dict]:
        out = self.out / "evals" / name
        if not (out / "summary.json").exists():
            self.say(f"  evaluating {name}")
        return evaluate_cached(EvalConfig(model=str(model), out=out, mode="choice", batch_size=8,
                                          scenarios=[str(s) for s in scenarios], per_scenario=per_scenario),
                               self.console)


def run_organism(cfg: OrganismConfig, out: Path, console=None) -> dict:
    """Train and evaluate every model of the experiment; returns {model id: evaluation records}."""
    from fabula.organism.families import load_families

    missing = sorted(set(cfg.families) - set(load_families()))
    if missing:
        raise ValueError(f"families {missing} have no grammar in fabula/organism/grammars/families/")
    arms = arm_names(cfg.arms, cfg.bridges)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", cfg.model_dump(mode="json"))
    torch.set_num_threads(choose_threads(cfg.threads))
    exp = Experiment(cfg, out, console)
    started = time.time()
    models: dict[str, dict] = {}
    for scale in cfg.scales:
        for seed in range(cfg.seeds):
            tok = exp.tokenizer(seed)
            evils = list(cfg.evil_fractions)
            if cfg.control_evil_fraction is not None and cfg.control_evil_fraction not in evils:
                evils.append(cfg.control_evil_fraction)
            for evil in evils:
                chat_model = exp.chat(exp.pretrain(tok, seed, evil, scale), seed)
                variants = {"chat": chat_model}
                if evil in cfg.evil_fractions:
                    variants |= {arm: exp.arm(chat_model, arm, seed, evil, scale) for arm in arms}
                for variant, path in variants.items():
                    name = f"{scale}-ef{evil}-s{seed}-{variant}"
                    models[name] = {"scale": scale, "seed": seed, "evil_fraction": evil, "arm": variant,
                                    "path": str(path), "records": exp.evaluate(path, name),
                                    "probe_records": exp.evaluate(path, name + "-probes", [PROBES_DIR], 1 if cfg.smoke else None)
                                    if cfg.probes else [],
                                    "external_records": exp.evaluate(path, name + "-scenarios", cfg.scenarios)
                                    if cfg.scenarios else [],
                                    "perplexity": heldout_perplexity(path, cfg.block_size, 4_000 if cfg.smoke else 20_000)}
    write_json_atomic(out / "models.json", {k: {f: v for f, v in m.items() if not f.endswith("records")}
                                            for k, m in models.items()} | {"seconds": round(time.time() - started)})
    return models
