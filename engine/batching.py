"""Length-sorted, mixed-language batches that waste little padding.

Inside a unit (engine.plan) every sentence is tokenized once (`token_ids`); the token counts
come from that pass. All the unit's sentences, whatever their language, are sorted by length
(longest first, ties in unit order) and cut greedily into batches whose padded size
(rows x longest) stays within the token budget *and* whose useful share (real tokens /
padded tokens) stays >= `min_useful` (a batch of one is always allowed). The batches are a
pure function of the token counts and the two limits, so every process and every resumed run
forms the very same batches. `collate` pads a batch's ids exactly as the tokenizer would.

`make_batches` (one language at a time, longest first, budget only) is the previous scheme,
kept for engine.throughput and as the benchmark baseline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "cuda": 65536}
# real tokens / padded tokens, per batch (the target is >= 0.9): on CPU a batch of a few rows
# costs what its tokens cost, so padding is cut harder; on GPU rows are cheap, batches big
MIN_USEFUL = {"cpu": 0.98, "cuda": 0.95}


def min_useful(device: str) -> float:
    """The useful-token floor per batch for the device kind ("cpu" or "cuda...")."""
    return MIN_USEFUL["cuda" if str(device).startswith("cuda") else "cpu"]


def default_token_budget(device: str) -> int:
    """A budget that fits comfortably on the device kind ("cpu" or "cuda...")."""
    return DEFAULT_TOKEN_BUDGET["cuda" if str(device).startswith("cuda") else "cpu"]


@dataclass(frozen=True)
class SortedBatch:
    """Rows (indices into the unit's sentence list), longest first, and their sizes."""

    rows: np.ndarray   # int64 [B]
    width: int         # padded length (the longest row)
    tokens: int        # real tokens

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def cost(self) -> int:
        """Padded tokens the forward pass sees."""
        return len(self) * self.width


def sort_batches(lengths: np.ndarray, token_budget: int, min_useful: float = MIN_USEFUL["cuda"]) -> list[SortedBatch]:
    """Batches over rows 0..n-1 with token counts `lengths`: one length sort (stable),
    greedy cuts bounded by `token_budget` padded tokens and by `min_useful` real/padded."""
    if token_budget < 1:
        raise ValueError(f"token budget must be positive, got {token_budget}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    srt = lengths[order]
    out: list[SortedBatch] = []
    i, n = 0, len(order)
    while i < n:
        width = int(srt[i])
        most = max(1, token_budget // max(1, width))
        j = min(n, i + most)
        # the useful share of rows i..k falls as k grows (lengths descend): keep the longest
        # prefix whose share stays >= min_useful
        if j - i > 1 and width > 0:
            share = np.cumsum(srt[i:j]) / (width * np.arange(1, j - i + 1))
            bad = np.flatnonzero(share < min_useful)
            if bad.size:
                j = i + max(1, int(bad[0]))
        out.append(SortedBatch(order[i:j].copy(), width, int(srt[i:j].sum())))
        i = j
    return out


def padding_share(batches: Sequence[SortedBatch]) -> float:
    """Real tokens / padded tokens over `batches` (1.0 when empty)."""
    cost = sum(b.cost for b in batches)
    return sum(b.tokens for b in batches) / cost if cost else 1.0


def token_ids(lm: Any, texts: Sequence[str], lang: str | None = None) -> list[list[int]]:
    """Token ids per text as `lm.tokenize` gives them (prefix, specials, truncation to the
    model's max_length), unpadded: the one tokenization pass of a unit."""
    setter = getattr(lm, "_set_language", None)
    if setter is not None:
        setter(lang)
    enc = lm.tokenizer([lm.prefix + t for t in texts], truncation=True, max_length=lm.max_length)
    return list(enc["input_ids"])


def collate(ids: Sequence[Sequence[int]], rows: np.ndarray, width: int, tokenizer: Any,
            pin: bool = False) -> dict:
    """The padded tensors (`input_ids`, `attention_mask`, and `token_type_ids` when the
    tokenizer makes them) of `ids[rows]`, padded to `width` on the tokenizer's padding side."""
    import torch
    B = len(rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    input_ids = np.full((B, width), pad, dtype=np.int64)
    mask = np.zeros((B, width), dtype=np.int64)
    for r, j in enumerate(rows):
        seq = ids[j]
        n = len(seq)
        if left:
            input_ids[r, width - n:] = seq
            mask[r, width - n:] = 1
        else:
            input_ids[r, :n] = seq
            mask[r, :n] = 1
    out = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        out["token_type_ids"] = torch.zeros((B, width), dtype=torch.int64)
    if pin:
        out = {k: v.pin_memory() for k, v in out.items()}
    return out


# -- the previous scheme (per language, budget only) ---------------------------------------
@dataclass(frozen=True)
class Batch:
    """Sentence positions (into the corpus sentence axis) and the padded token cost."""

    sentences: np.ndarray  # int64 [n], longest first
    cost: int              # n * longest, the padded tokens the forward pass sees

    def __len__(self) -> int:
        return int(self.sentences.shape[0])


def make_batches(positions: np.ndarray, lengths: np.ndarray, token_budget: int) -> list[Batch]:
    """One language's `positions` sorted by `lengths` (longest first), cut into batches of
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
