#!/usr/bin/env bash
# The organism's gpu preset, one seed, on one GPU: `fabula run --preset gpu --seeds 1`, timed,
# with everything but the weights packed into $OUT/run.tgz and $OUT/cache.tgz (pre-training and
# chat-model metadata: loss curves, token counts, contamination checks).
# One seed took ~14 min on an H200 (before the corpus was drawn in processes). Under a 10-minute
# command limit, run it twice on the same warm machine: the second call resumes from /tmp.
# Where fabula's dependencies are missing (a machine with torch but no package registry), put
# wheels of them in .whl/: on the lent H200 these were datasets, dill, multiprocess, peft, trl,
# pydantic, pydantic_core, annotated_types, typing_inspection. They are installed to /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/organism-gpu-packed}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 FABULA_CACHE=${FABULA_CACHE:-/tmp/fabula-cache}
if [ -d .whl ] && ! python3 -c "import pydantic, datasets, trl, peft" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    mkdir -p /tmp/site/fabula-0.1.0.dist-info
    printf "Metadata-Version: 2.1\nName: fabula\nVersion: 0.1.0\n" > /tmp/site/fabula-0.1.0.dist-info/METADATA
    export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
run=/tmp/organism-gpu
start=$(date +%s)
timeout "${LIMIT:-530}" python3 -m fabula.cli run --preset gpu --seeds 1 --out $run > "$OUT/run.log" 2>&1
echo "fabula run rc=$? took $(( $(date +%s) - start )) s"
tar czf "$OUT/run.tgz" --exclude='*.safetensors' --exclude='*.work' -C $run .
tar czf "$OUT/cache.tgz" --exclude='*.safetensors' --exclude='*.work' -C "$FABULA_CACHE" organism
tr '\r' '\n' < "$OUT/run.log" | grep -E "pre-training|tokens/s|evaluating|rc=|Error|error" | head -40
