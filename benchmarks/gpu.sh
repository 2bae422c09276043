#!/usr/bin/env bash
# GPU throughput, one prepared script (< 8 minutes): LoRA SFT tokens/s and MFU on a Qwen2.5-0.5B-
# shaped model built from a config, our path against TRL's defaults. Needs torch with CUDA,
# transformers, trl, peft, datasets and this repository on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 420 python3 benchmarks/training.py --build 0.5b --steps 30
