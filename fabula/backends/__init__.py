"""Model backends behind one interface (`generate`, `score`), chosen by name on the command line."""

from __future__ import annotations

from functools import partial

from fabula.backends.base import Backend, BackendError, ContinuationScore, GenerateSettings, ScoreRequest

BACKENDS = ("hf", "openai", "anthropic")

__all__ = ["BACKENDS", "Backend", "BackendError", "ContinuationScore", "GenerateSettings", "ScoreRequest",
           "make_backend"]


def make_backend(name: str, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, max_retries: int = 5, retry_base: float = 1.0, timeout: float = 120.0,
                 batch_size: int = 8, dtype: str = "float32", tokenizer: str | None = None) -> Backend:
    """Build a backend, failing early with a clear message on bad names, paths or keys. Remote
    ones are the generation clients (`clients.py`) behind the sync interface (`api.py`)."""
    if name == "hf":
        from fabula.backends.hf import HFBackend

        return HFBackend(model, batch_size=batch_size, dtype=dtype)
    from fabula.backends.api import APIBackend
    from fabula.backends.clients import Retry, make_client

    tok = None
    if tokenizer and name == "openai":
        from fabula.backends.hf import load_tokenizer

        tok = load_tokenizer(tokenizer)
    # No prompt-cache marks: evaluation has always paid the plain input price, never the 125% of cache writes.
    connect = partial(make_client, name, model, base_url=base_url, api_key_env=api_key_env, timeout=timeout,
                      prompt_cache=False)
    return APIBackend(connect, concurrency=concurrency, retry=Retry(max_retries, retry_base), tokenizer=tok)
