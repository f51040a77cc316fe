"""Length-sorted batches bounded by a token budget.

Sentences of one language are sorted by token count (longest first, ties in corpus order)
and cut into batches whose *padded* size (sentences x longest sentence) stays within the
budget. Longest first makes an out-of-memory batch show up at once, and sorting keeps
padding small. The batches are a pure function of the token counts and the budget, so
every process, and every resumed run, forms the very same batches: that is what makes a
sharded or resumed store identical to a single uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "cuda": 65536}


@dataclass(frozen=True)
class Batch:
    """Sentence positions (into the corpus sentence axis) and the padded token cost."""

    sentences: np.ndarray  # int64 [n], longest first
    cost: int              # n * longest, the padded tokens the forward pass sees

    def __len__(self) -> int:
        return int(self.sentences.shape[0])


def default_token_budget(device: str) -> int:
    """A budget that fits comfortably on the device kind ("cpu" or "cuda...")."""
    return DEFAULT_TOKEN_BUDGET["cuda" if str(device).startswith("cuda") else "cpu"]


def make_batches(positions: np.ndarray, lengths: np.ndarray, token_budget: int) -> list[Batch]:
    """Batches of `positions` (sentence indices) sorted by `lengths` (token counts), each with
    at most `token_budget` padded tokens; a sentence longer than the budget goes alone."""
    if token_budget < 1:
        raise ValueError(f"token budget must be positive, got {token_budget}")
    positions = np.asarray(positions, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if positions.shape != lengths.shape:
        raise ValueError("positions and lengths differ in length")
    order = np.argsort(-lengths, kind="stable")
    batches: list[Batch] = []
    i, n = 0, len(order)
    while i < n:
        longest = int(lengths[order[i]])
        m = max(1, token_budget // max(1, longest))
        idx = order[i:i + m]
        batches.append(Batch(positions[idx], int(len(idx) * longest)))
        i += m
    return batches
