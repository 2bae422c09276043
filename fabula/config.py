"""Settings for every command, in one place, each default with its reason.

The CLI and config files only override these; the resolved settings are saved beside every
output (run.json), so a result always says how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from fabula.evals.scenario import BUILTIN_DIR


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str                                   # HF folder or `smollm2` (hf); model name (APIs)
    backend: Literal["hf", "openai", "anthropic"] = "hf"
    scenarios: list[str] = [str(BUILTIN_DIR)]
    mode: Literal["choice", "sample"] = "choice"
    split: Literal["test", "train", "all"] = "test"  # test: never what training saw
    families: list[str] | None = None            # None: every family in the files
    limit: int | None = Field(None, ge=1)        # first N instances, for quick looks
    out: Path

    # sample mode
    n: int = Field(1, ge=1)                      # samples per instance
    temperature: float = Field(1.0, ge=0)        # 1.0: the model's own distribution
    max_tokens: int = Field(400, ge=1)           # room for reasoning plus one tool call
    seed: int = 0
    judge_backend: Literal["hf", "openai", "anthropic"] | None = None
    judge_model: str | None = None
    judge_base_url: str | None = None
    combine: Literal["any", "gates", "judge"] = "any"  # any: a gate OR a 'yes' from the judge

    # backend plumbing (not part of what a run measures; may change on resume)
    base_url: str | None = None
    api_key_env: str | None = None               # name of the variable holding the key, never the key
    tokenizer: str | None = None                 # chat template for openai scoring
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(5, ge=0)
    timeout: float = Field(120.0, gt=0)
    batch_size: int = Field(8, ge=1)             # continuations or prompts per forward pass (hf)
    dtype: Literal["float32", "bfloat16"] = "float32"  # float32: exact scores on CPU

    # settings that may differ between a run and its resumption
    PLUMBING: ClassVar[frozenset] = frozenset({"out", "base_url", "api_key_env", "concurrency", "max_retries",
                                     "timeout", "batch_size", "judge_base_url"})
