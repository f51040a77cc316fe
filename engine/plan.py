"""Units of work, formed from the corpus alone, and their assignment to processes.

A unit is a deterministic group of *blocks*; a block is one language's contiguous range of
corpus sentence positions [start, stop) (a whole language, or a piece of a big one). Small
languages are packed together until a unit holds `target` sentences (enough to sort well
across languages); a language above `cap` sentences (the pooled output one unit may hold in
memory) is cut into equal pieces. Units depend on the corpus mask and the two sizes only,
never on the number of processes, so a store never depends on how many processes ran.

Units are assigned to processes greedily, largest first, to the least loaded process (LPT
scheduling), weighed by characters (a proxy for tokens known before tokenizing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_UNIT_BYTES = 512 << 20       # pooled output of one unit held in memory at most
MIN_UNIT_SENTENCES = 2048            # a unit smaller than this sorts poorly across lengths


@dataclass(frozen=True)
class PlannedBlock:
    """Language `lang` (index `lang_index`), sentence positions [start, stop), of which
    `sentences` (ascending) are present."""

    lang: str
    lang_index: int
    start: int
    stop: int
    sentences: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return int(self.sentences.shape[0])

    def key(self) -> tuple:
        """What a finished part must record for this block to count as done."""
        return (self.lang, self.start, self.stop, self.sentences.tobytes())


@dataclass(frozen=True)
class Unit:
    """Blocks embedded together (one tokenization pass, one length sort, mixed batches)."""

    uid: str
    blocks: tuple[PlannedBlock, ...]
    cost: int                 # characters of its present sentences (for balancing)

    @property
    def n_sentences(self) -> int:
        return sum(len(b) for b in self.blocks)

    @property
    def languages(self) -> list[int]:
        return sorted({b.lang_index for b in self.blocks})


def unit_sizes(token_budget: int, row_bytes: int, unit_bytes: int = DEFAULT_UNIT_BYTES,
               unit_sentences: int | None = None) -> tuple[int, int]:
    """(target, cap) sentences per unit. `cap` bounds the pooled output in memory
    (`row_bytes` per sentence); `target` is a few dozen batches of short sentences, so a
    unit sorts well. `unit_sentences` (tests, tuning) sets both."""
    if unit_sentences is not None:
        if unit_sentences < 1:
            raise ValueError(f"unit sentences must be positive, got {unit_sentences}")
        return unit_sentences, unit_sentences
    cap = max(1, unit_bytes // max(1, row_bytes))
    target = min(cap, max(MIN_UNIT_SENTENCES, token_budget // 2))
    return target, cap


def plan_units(languages: Sequence[str], mask: np.ndarray, chars: np.ndarray | None = None, *,
               target: int = MIN_UNIT_SENTENCES, cap: int | None = None) -> list[Unit]:
    """The units of a corpus with presence `mask` [L, S] (and character counts `chars` [L, S]
    for the cost; sentence counts when None): languages in order, each a block or, above
    `cap` sentences, equal pieces; consecutive blocks packed until a unit reaches `target`
    sentences, never above `cap`."""
    mask = np.asarray(mask, bool)
    L, S = mask.shape
    cap = max(1, cap or max(target, 1))
    target = max(1, min(target, cap))
    blocks: list[PlannedBlock] = []
    for i, lang in enumerate(languages):
        pos = np.flatnonzero(mask[i]).astype(np.int64)
        if pos.size == 0:
            continue
        pieces = math.ceil(pos.size / cap)
        cuts = [round(k * pos.size / pieces) for k in range(pieces + 1)]
        for k in range(pieces):
            a, b = cuts[k], cuts[k + 1]
            start = 0 if k == 0 else int(pos[a])
            stop = S if k == pieces - 1 else int(pos[b])
            blocks.append(PlannedBlock(lang, i, start, stop, pos[a:b]))

    def cost(b: PlannedBlock) -> int:
        return int(chars[b.lang_index, b.sentences].sum()) if chars is not None else len(b)

    units: list[Unit] = []
    group: list[PlannedBlock] = []

    def close() -> None:
        if group:
            first, last = group[0], group[-1]
            uid = f"{len(units):05d}-{first.lang}.{first.start}-{last.lang}.{last.stop}"
            units.append(Unit(uid, tuple(group), sum(cost(b) for b in group)))
            group.clear()

    n = 0
    for b in blocks:
        if group and n + len(b) > cap:
            close()
            n = 0
        group.append(b)
        n += len(b)
        if n >= target:
            close()
            n = 0
    close()
    return units


def assign(units: Sequence[Unit], num_processes: int) -> list[list[Unit]]:
    """Largest unit first to the least loaded process; deterministic (ties by unit order).
    Each share keeps plan order."""
    loads = [0] * num_processes
    shares: list[list[int]] = [[] for _ in range(num_processes)]
    for i in sorted(range(len(units)), key=lambda i: (-units[i].cost, i)):
        p = min(range(num_processes), key=lambda q: (loads[q], q))
        shares[p].append(i)
        loads[p] += units[i].cost
    return [[units[i] for i in sorted(s)] for s in shares]
