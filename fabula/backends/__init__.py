"""Model backends behind one interface (`generate`, `score`), chosen by name on the command line."""

from __future__ import annotations

from fabula.backends.base import Backend, BackendError, ContinuationScore, GenerateSettings, ScoreRequest

BACKENDS = ("hf", "openai", "anthropic")

__all__ = ["BACKENDS", "Backend", "BackendError", "ContinuationScore", "GenerateSettings", "ScoreRequest",
           "make_backend"]


def make_backend(name: str, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0, batch_size: int = 8,
                 dtype: str = "float32", tokenizer: str | None = None) -> Backend:
    """Build a backend, failing early with a clear message on bad names, paths or keys."""
    if name == "hf":
        from fabula.backends.hf import HFBackend

        return HFBackend(model, batch_size=batch_size, dtype=dtype)
    if name == "openai":
        from fabula.backends.api import OpenAIBackend

        tok = None
        if tokenizer:
            from fabula.backends.hf import load_tokenizer

            tok = load_tokenizer(tokenizer)
        return OpenAIBackend(model, base_url=base_url, api_key_env=api_key_env or "OPENAI_API_KEY",
                             concurrency=concurrency, max_retries=max_retries, timeout=timeout, tokenizer=tok)
    if name == "anthropic":
        from fabula.backends.api import AnthropicBackend

        return AnthropicBackend(model, base_url=base_url, api_key_env=api_key_env or "ANTHROPIC_API_KEY",
                                concurrency=concurrency, max_retries=max_retries, timeout=timeout)
    raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
