"""The one small interface every model backend implements: sample text, score continuations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

Message = dict[str, str]


class BackendError(Exception):
    """A backend could not do what was asked: the message says what and where, for the user."""


@dataclass(frozen=True)
class ScoreRequest:
    """Score each continuation as the assistant's reply after `messages`."""

    messages: list[Message]
    continuations: list[str]


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # sum of the continuation's token log-probabilities
    n_tokens: int

    @property
    def mean(self) -> float:
        return self.logprob / max(self.n_tokens, 1)


@dataclass(frozen=True)
class GenerateSettings:
    n: int = 1
    temperature: float = 1.0
    max_tokens: int = 400
    seed: int = 0


class Backend(Protocol):
    name: str
    model: str

    def generate(self, prompts: Sequence[list[Message]], settings: GenerateSettings) -> list[list[str]]:
        """`settings.n` replies per prompt."""
        ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """Log-probabilities of each request's continuations; BackendError where unsupported."""
        ...


def is_document(chat: list[dict[str, str]]) -> bool:
    """A single `document` message: plain text to continue, rendered without a chat template."""
    return len(chat) == 1 and chat[0]["role"] == "document"


def plain_prompt(chat: list[dict[str, str]]) -> str:
    """A transcript for models without a chat template (and completions-only servers)."""
    if is_document(chat):
        return chat[0]["content"]
    parts = [f"{m['role'].capitalize()}: {m['content']}" for m in chat]
    return "\n\n".join(parts) + "\n\nAssistant:\n"
