"""float32 against bf16 autocast, training tokens/s on the machine at hand, one run (ratios, not a timed test).

    .venv/bin/python benchmarks/precision.py [--steps 4] [--no-smollm2] [--threads N]

Shapes: the organism's small and medium models at the default run's batch (4 x 640), and
SmolLM2-135M-Instruct with LoRA r16 (1 x 128: a step of it in emulated bf16 takes tens of
seconds). Each figure is forward + backward + AdamW after one untimed step, with the same
function `--precision auto` uses (fabula/train/precision.py). Prints the CPU name and torch's
capability string (AVX2, AVX512, ...), since the answer depends on the CPU: bf16 is only fast
where it is native (AVX512-BF16, AMX). To see what an AVX2-only CPU does on a newer one, run
with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (torch and oneDNN then use AVX2 kernels).
"""

from __future__ import annotations

import argparse

import torch


def shapes(smollm2: bool):
    """(name, build a model, rows, block) per shape; models are built only when timed."""
    from fabula.organism.model import organism_model

    yield "organism small (2.6M), full, 4 x 640", lambda: organism_model("small", 4096, 640, 0, 1, 2), 4, 640
    yield "organism medium (7.2M), full, 4 x 640", lambda: organism_model("medium", 4096, 640, 0, 1, 2), 4, 640
    if smollm2:
        yield "SmolLM2-135M, LoRA r16, 1 x 128", _smollm2_lora, 1, 128


def _smollm2_lora():
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from fabula.backends.smollm2 import smollm2_path
    from fabula.train.sft import LoraSettings

    model = AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.float32)
    return get_peft_model(model, LoraSettings().peft_config())


def main() -> None:
    from fabula.train.precision import PRECISIONS, device_description, time_training

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per figure")
    parser.add_argument("--no-smollm2", action="store_true", help="skip SmolLM2 (minutes where bf16 is emulated)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device: {device_description()}; torch {torch.__version__}")
    print(f"{'shape':42s} {'float32':>10s} {'bfloat16':>10s}  bf16 / float32")
    for name, build, rows, block in shapes(not args.no_smollm2):
        model = build()
        rates = {p: time_training(model, p, rows=rows, block=block, steps=args.steps) for p in PRECISIONS}
        print(f"{name:42s} {rates['float32']:>10,.0f} {rates['bfloat16']:>10,.0f}  "
              f"{rates['bfloat16'] / rates['float32']:.2f}x", flush=True)
        del model


if __name__ == "__main__":
    main()
