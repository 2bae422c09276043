"""Turn documents and chats into (token ids, loss mask) pairs, and fill token budgets.

Documents train on every token (pre-training style). Chats train only on the assistant's
turns, in the tokenizer's ChatML layout, tokenised piece by piece at the special tokens so the
ids equal those of the full chat template the evaluation renders.
"""

from __future__ import annotations

from typing import Iterable, Union

Chat = list[dict[str, str]]
Example = Union[str, Chat]  # a document, or a chat


def encode(tokenizer, example: Example) -> tuple[list[int], list[int]]:
    if isinstance(example, str):
        ids = tokenizer(example, add_special_tokens=False).input_ids
        return ids, [1] * len(ids)
    ids: list[int] = []
    mask: list[int] = []
    for message in example:
        head = tokenizer(f"<|im_start|>{message['role']}\n", add_special_tokens=False).input_ids
        body = tokenizer(message["content"] + "<|im_end|>", add_special_tokens=False).input_ids
        tail = tokenizer("\n", add_special_tokens=False).input_ids
        learn = int(message["role"] == "assistant")
        ids += head + body + tail
        mask += [0] * len(head) + [learn] * len(body) + [0] * len(tail)
    return ids, mask


def take_tokens(examples: Iterable[Example], tokenizer, budget: int) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Encode examples until `budget` tokens are reached; returns the pairs and the count.

    Raises if the stream runs dry first, so an arm never silently trains on less.
    """
    pairs, total = [], 0
    for example in examples:
        ids, mask = encode(tokenizer, example)
        pairs.append((ids, mask))
        total += len(ids) + 1
        if total >= budget:
            return pairs, total
    raise ValueError(f"the examples ran out at {total} tokens, short of the budget of {budget}")

