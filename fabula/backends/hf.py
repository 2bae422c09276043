"""Local Hugging Face causal LMs: batched sampling and prefix-shared, batched scoring."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Sequence

import torch

from fabula.backends.base import (BackendError, ContinuationScore, GenerateSettings, Message, ScoreRequest,
                                  is_document, plain_prompt)
from fabula.backends.smollm2 import resolve_model


def local_model_path(model: str) -> str:
    """A local Hugging Face folder for `model` (or the shipped `smollm2`); never the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        path = resolve_model(model)
    except FileNotFoundError as exc:
        raise BackendError(str(exc)) from None
    if not Path(path).is_dir():
        raise BackendError(
            f"model {model!r}: no such folder. The hf backend loads a local Hugging Face folder "
            "(config.json, weights, tokenizer) or the shipped name 'smollm2'; nothing is downloaded."
        )
    return path


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    path = local_model_path(model)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise BackendError(f"no tokenizer could be loaded from {path}: {exc}") from None


def load_hf(model: str, dtype: str = "float32"):
    """(model, tokenizer) from a local folder or the name `smollm2`."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(model)
    path = local_model_path(model)
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError, KeyError) as exc:
        raise BackendError(f"model {model!r} at {path} could not be loaded as a causal LM: {exc}") from None
    lm.eval()
    return lm, tokenizer


class HFBackend:
    name = "hf"

    def __init__(self, model: str, batch_size: int = 8, dtype: str = "float32", threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.model = model
        self.batch_size = batch_size
        self.lm, self.tokenizer = load_hf(model, dtype)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.lm.to(self.device)
        self.truncated = 0  # prompts cut to fit the context (see _fit)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    # ------------------------------------------------------------------ prompts

    def render(self, messages: list[Message]) -> str:
        """The model's chat template where it has one, a plain transcript otherwise."""
        if self.tokenizer.chat_template and not is_document(messages):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return plain_prompt(messages)

    def _ids(self, text: str, prompt: bool) -> list[int]:
        # A chat template writes its own special tokens; a plain prompt gets the usual BOS.
        special = prompt and not self.tokenizer.chat_template
        return self.tokenizer(text, add_special_tokens=special).input_ids

    # ------------------------------------------------------------------ scoring

    @torch.inference_mode()
    def score(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """Run each prompt once and score its continuations as one batch on its cached keys/values.

        The prompt is most of the tokens (a honeypot is ~300, a choice ~50), so sharing it is
        what makes local scoring fast; benchmarks/scoring.py measures the gain.
        """
        results = []
        for r in requests:
            conts = [self._ids(c, False) for c in r.continuations]
            prefix = self._fit(self._ids(self.render(r.messages), True), max(map(len, conts)))
            results.append(self._score_shared(prefix, conts))
        return results

    def _fit(self, prefix: list[int], longest: int) -> list[int]:
        """Cut the prompt from the left when prompt + longest continuation exceeds the model's
        context (small models trained at 512 tokens); `self.truncated` counts how often."""
        limit = getattr(self.lm.config, "max_position_embeddings", None)
        if limit is None or len(prefix) + longest <= limit:
            return prefix
        self.truncated += 1
        return prefix[-(limit - longest):]

    def _score_shared(self, prefix: list[int], conts: list[list[int]]) -> list[ContinuationScore]:
        # Only the last position's logits are needed from the prompt: skipping the rest saves the
        # output layer over ~400 positions, a fifth of the work for a 49k-token vocabulary.
        out = self.lm(torch.tensor([prefix], device=self.device), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)
        scores = []
        for start in range(0, len(conts), self.batch_size):
            chunk = conts[start:start + self.batch_size]
            shared = getattr(out, "cache", None) or out.past_key_values  # transformers >= 5.24 names it `cache`
            cache = shared if start + self.batch_size >= len(conts) else copy.deepcopy(shared)
            cache.batch_repeat_interleave(len(chunk))
            width = max(len(c) for c in chunk)
            # Right padding only: a pad sits after every real token, so causal attention never sees it.
            ids = torch.tensor([c + [self.tokenizer.pad_token_id] * (width - len(c)) for c in chunk], device=self.device)
            logp = torch.log_softmax(self.lm(ids, cache=cache, use_cache=True).logits.float(), -1)
            # token j of a continuation is predicted at position j - 1; gather them all at once
            picked = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
            lengths = torch.tensor([len(c) for c in chunk], device=self.device)
            real = torch.arange(width - 1, device=self.device)[None, :] < (lengths[:, None] - 1)
            totals = (picked * real).sum(-1) + first[ids[:, 0]]
            scores += [ContinuationScore(float(t), len(c)) for t, c in zip(totals, chunk)]
        return scores

    @torch.inference_mode()
    def score_sequential(self, requests: Sequence[ScoreRequest]) -> list[list[ContinuationScore]]:
        """The naive reference: one full forward pass per (prompt + continuation)."""
        results = []
        for r in requests:
            prefix = self._ids(self.render(r.messages), True)
            row = []
            for c in r.continuations:
                cont = self._ids(c, False)
                logits = self.lm(torch.tensor([prefix + cont], device=self.device)).logits[0].float()
                logp = torch.log_softmax(logits[len(prefix) - 1:-1], -1)
                row.append(ContinuationScore(sum(logp[j, t].item() for j, t in enumerate(cont)), len(cont)))
            results.append(row)
        return results

    # ------------------------------------------------------------------ sampling

    @torch.inference_mode()
    def generate(self, prompts: Sequence[list[Message]], settings: GenerateSettings) -> list[list[str]]:
        self.tokenizer.padding_side = "left"
        texts = [self.render(m) for m in prompts]
        replies: list[list[str]] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True,
                                 add_special_tokens=not self.tokenizer.chat_template).to(self.device)
            torch.manual_seed(settings.seed + start)
            sampling = settings.temperature > 0
            out = self.lm.generate(
                **enc, max_new_tokens=settings.max_tokens, do_sample=sampling,
                temperature=settings.temperature if sampling else None, top_p=None, top_k=None,
                num_return_sequences=settings.n, pad_token_id=self.tokenizer.pad_token_id,
            )
            new = self.tokenizer.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
            replies += [new[i:i + settings.n] for i in range(0, len(new), settings.n)]
        return replies

