"""Model folders written whole or not at all: every trained model is an ordinary Hugging Face
folder (config, safetensors, tokenizer) plus `train.json`, saying what made it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from fabula.jsonl import write_json_atomic


def finished(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "train.json").exists()


def save_atomic(folder: Path, tokenizer, model=None, record: dict | None = None) -> None:
    """Write the folder beside its final place, then rename: a folder that exists is whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    tokenizer.save_pretrained(tmp)
    if model is not None:
        model.save_pretrained(tmp)
    if record is not None:
        write_json_atomic(tmp / "train.json", record)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
