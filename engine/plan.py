"""Units of work and their assignment to processes, balanced by tokens.

A unit is a contiguous range of one language's length-sorted batches (engine.batching):
a whole language, or a piece of it when the language is larger than a fair share of the
remaining work (or than the per-unit caps that bound memory and the work a kill can lose).
Because units are cut on batch boundaries, splitting never changes what the model computes
for a sentence, so the store does not depend on the number of processes.

Units are assigned to processes greedily, largest first, to the least loaded process
(LPT scheduling), by padded tokens, not by language count.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

DEFAULT_UNIT_TOKENS = 1_000_000      # padded tokens per unit at most (bounds work lost to a kill)
DEFAULT_UNIT_BYTES = 256 << 20       # pooled output of one unit held in memory at most


@dataclass(frozen=True)
class Unit:
    """Batches [batch_start, batch_stop) of language `lang` (index `lang_index`)."""

    lang: str
    lang_index: int
    batch_start: int
    batch_stop: int
    cost: int
    n_sentences: int

    @property
    def uid(self) -> str:
        return f"{self.lang}#b{self.batch_start}-{self.batch_stop}"

    @property
    def filename(self) -> str:
        """A file-system-safe, collision-free part file name."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.lang)
        tag = hashlib.sha1(self.lang.encode("utf-8")).hexdigest()[:6]
        return f"{safe}.{tag}.b{self.batch_start:06d}-{self.batch_stop:06d}.h5"


def _runs(n_batches: int, done: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Maximal ranges of [0, n_batches) not covered by the `done` ranges."""
    covered = [False] * n_batches
    for a, b in done:
        for i in range(a, b):
            covered[i] = True
    runs, i = [], 0
    while i < n_batches:
        if covered[i]:
            i += 1
            continue
        j = i
        while j < n_batches and not covered[j]:
            j += 1
        runs.append((i, j))
        i = j
    return runs


def _split(costs: Sequence[int], sizes: Sequence[int], a: int, b: int, cap_cost: int,
           cap_n: int | None) -> list[tuple[int, int]]:
    """Cut batches [a, b) into ranges of about equal cost, none above `cap_cost` tokens or
    `cap_n` sentences unless it is a single batch: cuts at the batch boundaries nearest to
    the ideal equal-cost boundaries, then any range still over a cap cut greedily."""
    total, n = sum(costs[a:b]), sum(sizes[a:b])
    pieces = max(1, math.ceil(total / cap_cost) if total else 1, math.ceil(n / cap_n) if cap_n else 1)
    pieces = min(pieces, b - a)
    cum = [0]
    for c in costs[a:b]:
        cum.append(cum[-1] + c)
    cuts = {0, b - a}
    for k in range(1, pieces):
        ideal = total * k / pieces
        cuts.add(min(range(1, b - a), key=lambda j: (abs(cum[j] - ideal), j)))
    bounds = sorted(cuts)
    out = []
    for s, e in zip(bounds, bounds[1:]):
        start, acc, cnt = a + s, 0, 0
        for i in range(a + s, a + e):
            if i > start and (acc + costs[i] > cap_cost or (cap_n and cnt + sizes[i] > cap_n)):
                out.append((start, i))
                start, acc, cnt = i, 0, 0
            acc, cnt = acc + costs[i], cnt + sizes[i]
        out.append((start, a + e))
    return out


def plan_units(languages: Sequence[str], batch_costs: Mapping[str, Sequence[int]],
               batch_sizes: Mapping[str, Sequence[int]], done: Mapping[str, Sequence[tuple[int, int]]] | None = None,
               num_processes: int = 1, unit_tokens: int = DEFAULT_UNIT_TOKENS,
               unit_sentences: int | None = None) -> list[Unit]:
    """The units still to do: each language's batches not covered by `done`, as whole
    languages or, when larger than a fair share (remaining tokens / processes) or than the
    caps, as balanced batch ranges."""
    done = done or {}
    runs = []
    for li, lang in enumerate(languages):
        for a, b in _runs(len(batch_costs[lang]), done.get(lang, ())):
            runs.append((li, lang, a, b))
    total = sum(sum(batch_costs[lang][a:b]) for _, lang, a, b in runs)
    fair = math.ceil(total / max(1, num_processes)) if num_processes > 1 else total
    cap = max(1, min(fair, unit_tokens) if total else unit_tokens)
    units = []
    for li, lang, a, b in runs:
        costs, sizes = batch_costs[lang], batch_sizes[lang]
        for s, e in _split(costs, sizes, a, b, cap, unit_sentences):
            units.append(Unit(lang, li, s, e, int(sum(costs[s:e])), int(sum(sizes[s:e]))))
    return units


def assign(units: Sequence[Unit], num_processes: int) -> list[list[Unit]]:
    """Largest unit first to the least loaded process; deterministic (ties by unit order)."""
    loads = [0] * num_processes
    shares: list[list[Unit]] = [[] for _ in range(num_processes)]
    order = sorted(range(len(units)), key=lambda i: (-units[i].cost, i))
    for i in order:
        p = min(range(num_processes), key=lambda q: (loads[q], q))
        shares[p].append(units[i])
        loads[p] += units[i].cost
    for s in shares:
        s.sort(key=lambda u: (u.lang_index, u.batch_start))
    return shares
