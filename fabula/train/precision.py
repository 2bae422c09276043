"""Training precision, chosen by measuring this machine rather than assumed.

bf16 autocast is 1.3x-1.8x faster than float32 on a CPU with native bf16 (AVX512-BF16, AMX) and
13x-27x *slower* on one without (AVX2 only, most AMD and consumer Intel CPUs: docs/results.md). So
`auto` times a few training steps of both at the model's own shape, keeps the faster, and
caches the figures per machine and shape in FABULA_CACHE/precision.json (the timing costs
seconds for the organism, about a minute for SmolLM2 on an AVX2-only CPU, once). On a GPU
`auto` is bf16 where the GPU supports it, float32 elsewhere, without timing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import torch

Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")
CHOICES = ("auto", *PRECISIONS)

# the rows, block length and steps a timing trains: a whole step of SmolLM2 LoRA on 128 tokens is
# ~1 s in float32 and ~30 s in emulated bf16, so the probe stays short where bf16 is slow
PROBE_ROWS, PROBE_BLOCK, PROBE_STEPS = 1, 128, 2


@dataclass
class Choice:
    precision: Precision
    reason: str                                  # why, in a few words, for the log
    rates: dict[str, float] | None = None        # tokens/s per precision, when measured
    cached: bool = False

    def describe(self) -> str:
        rates = "" if not self.rates else " (" + ", ".join(
            f"{name} {rate:,.0f} tokens/s" for name, rate in self.rates.items()) + ")"
        return f"precision {self.precision}: {self.reason}{rates}{', cached' if self.cached else ''}"

    def record(self) -> dict:
        return asdict(self)


def _cpuinfo(field: str) -> str | None:
    """A field of the first CPU in /proc/cpuinfo (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name, for cache keys and printed timings."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def device_description() -> str:
    """What a timing ran on: the CPU, torch's capability string (the kernels it runs: AVX2,
    AVX512...) and whether the CPU's flags name native bf16; or the GPU."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    native = sorted(set((_cpuinfo("flags") or "").split()) & {"avx512_bf16", "amx_bf16"})
    return (f"{cpu_name()}, {torch.backends.cpu.get_cpu_capability()} kernels, "
            f"{'bf16 in the CPU flags (' + ', '.join(native) + ')' if native else 'no bf16 in the CPU flags'}, "
            f"{torch.get_num_threads()} threads")


def time_training(model, precision: Precision, rows: int = PROBE_ROWS, block: int = PROBE_BLOCK,
                  steps: int = PROBE_STEPS) -> float:
    """Tokens/s of forward + backward + AdamW on a copy of `model` (the model itself is untouched),
    after one untimed step. Autocast is what the Trainer's `bf16=True` does on a CPU."""
    trial = copy.deepcopy(model).train()
    trainable = [p for p in trial.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-6)
    ids = torch.randint(0, trial.config.vocab_size, (rows, block), generator=torch.Generator().manual_seed(0))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trial.to(device)
    ids = ids.to(device)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss = trial(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return rows * block * steps / max(time.perf_counter() - began, 1e-9)


def shape_key(model) -> str:
    """The model's architecture (config without ids and names) and which weights train."""
    config = model.config.to_dict()
    for field in ("_name_or_path", "bos_token_id", "eos_token_id", "pad_token_id", "transformers_version",
                  "torch_dtype", "dtype", "quantization_config"):
        config.pop(field, None)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return json.dumps({"config": config, "trainable": trainable}, sort_keys=True, default=str)


def machine_key() -> str:
    return json.dumps([cpu_name(), torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(),
                       torch.__version__], default=str)


def choose_precision(requested: str, model, cache: Path | None = None,
                     timer: Callable[[object, Precision], float] = time_training) -> Choice:
    """The precision to train `model` in. `auto` on a CPU takes the faster of the two, timed by
    `timer(model, precision) -> tokens/s` (a parameter so tests can make either one slow)."""
    if requested not in CHOICES:
        raise ValueError(f"precision {requested!r}: one of {', '.join(CHOICES)}")
    if requested != "auto":
        return Choice(requested, "asked for")
    if torch.cuda.is_available():
        native = torch.cuda.is_bf16_supported()
        return Choice("bfloat16" if native else "float32",
                      "GPU with bf16" if native else "GPU without bf16")
    key = hashlib.sha256((machine_key() + shape_key(model)).encode()).hexdigest()[:16]
    known = _read(cache).get(key) if cache else None
    if known:
        rates = known["rates"]
        cached = True
    else:
        rates = {name: round(timer(model, name), 1) for name in PRECISIONS}
        cached = False
        if cache:
            from fabula.jsonl import write_json_atomic

            write_json_atomic(cache, _read(cache) | {key: {"rates": rates, "device": device_description(),
                                                           "measured": time.strftime("%Y-%m-%d %H:%M")}})
    fastest = max(PRECISIONS, key=lambda name: rates[name])
    ratio = rates[fastest] / max(min(rates.values()), 1e-9)
    return Choice(fastest, f"measured {ratio:.1f}x faster than {_other(fastest)} on "
                           f"{torch.backends.cpu.get_cpu_capability()}", rates, cached)


def _other(precision: Precision) -> Precision:
    return "bfloat16" if precision == "float32" else "float32"


def _read(cache: Path | None) -> dict:
    if cache is None or not cache.exists():
        return {}
    try:
        return json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged cache only costs a new timing
