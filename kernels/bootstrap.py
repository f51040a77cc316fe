"""Bootstrap over groups of sentences for the similarity measures, without re-reading the store.

The resampling unit is a group of sentences: a document where the store (or the caller) knows
them (FLORES article, Bible chapter, UDHR article), else a block of `bootstrap_block`
consecutive selected sentences (`bootstrap_groups` decides and says which). While streaming,
the kernel hands each group's sums here (for the mean cosine: its Grams G_b[K, L, L] and mask
Gram C_b[L, L]; for MEXA and retrieval: its hit counts and shared sentences per pair); only the
pairs that can differ are kept (the upper triangle for a symmetric measure, every off-diagonal
pair for an asymmetric one such as retrieval), in float32. A replicate draws n_blocks groups with
replacement (multinomial weights w_rb) and is

    sim_r(a, b) = sum_b w_rb G_b(a, b) / sum_b w_rb C_b(a, b)

i.e. the same mean over the resampled sentences (a ratio estimator, exact under missing
sentences). Standard error = std of the replicates (ddof 1); the interval is the percentile
interval at level `ci`. Resampling groups rather than single sentences keeps memory at
n_blocks * (K + 1) * pairs * 4 bytes and respects correlation between neighbouring sentences:
consecutive FLORES sentences come from one article, so the first N sentences are a few
articles, not a sample, and only document resampling covers a new sample (benchmarks/bench_coverage.py).
"""
from __future__ import annotations

import os

import numpy as np

from babelmap.engine.errors import BabelmapError

MAX_BYTES = float(os.environ.get("BABELMAP_BOOTSTRAP_MAX_GB", "16")) * 2**30


class BlockGrams:
    """Per-group sums per pair (the upper triangle, or every off-diagonal pair when not
    `symmetric`) and counts, filled while streaming, resampled at the end."""

    def __init__(self, n_languages: int, n_layers: int, n_blocks: int, symmetric: bool = True):
        L = n_languages
        self.L, self.K, self.n_blocks, self.symmetric = L, n_layers, int(n_blocks), bool(symmetric)
        if symmetric:
            self.iu = np.triu_indices(L, k=1)
        else:
            off = ~np.eye(L, dtype=bool)
            self.iu = np.nonzero(off)
        self.pair_of = np.full((L, L), -1, np.int64)
        self.pair_of[self.iu] = np.arange(len(self.iu[0]))
        if symmetric:
            self.pair_of[self.iu[1], self.iu[0]] = np.arange(len(self.iu[0]))
        T = len(self.iu[0])
        need = self.n_blocks * (n_layers + 1) * T * 4
        if need > MAX_BYTES:
            raise BabelmapError(
                f"the bootstrap would keep {need / 2**30:.1f} GiB of block Grams ({self.n_blocks} blocks x "
                f"{n_layers} layers x {L} languages); use a larger --bootstrap-block, fewer layers or "
                f"languages, or raise BABELMAP_BOOTSTRAP_MAX_GB")
        self.G = np.zeros((self.n_blocks, n_layers, T), np.float32)
        self.C = np.zeros((self.n_blocks, T), np.float32)

    def add(self, block: int, G: np.ndarray, C: np.ndarray) -> None:
        """Add (part of) block `block`'s Grams: G [K, L, L], C [L, L]."""
        self.G[block] += G[:, self.iu[0], self.iu[1]]
        self.C[block] += C[self.iu[0], self.iu[1]]

    def add_pair(self, kpos: int, a: int, b: int, group_sums: np.ndarray,
                 group_counts: np.ndarray | None = None) -> None:
        """Add one pair's per-group sums [n_blocks] at layer position kpos (and, once per pair,
        its per-group shared-sentence counts)."""
        t = self.pair_of[a, b]
        self.G[:, kpos, t] += group_sums
        if group_counts is not None:
            self.C[:, t] += group_counts

    def resample(self, B: int, seed: int = 0, ci: float = 0.95, progress: bool = False,
                 max_chunk_bytes: int = 256 << 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(stderr, ci_low, ci_high), each [K, L, L] float32; the diagonal has stderr 0 and
        interval [1, 1]; NaN where a pair shares no sentence."""
        if B < 2:
            raise BabelmapError(f"bootstrap needs at least 2 replicates, got {B}")
        rng = np.random.default_rng(seed)
        nb = self.n_blocks
        W = rng.multinomial(nb, np.full(nb, 1.0 / nb), size=B).astype(np.float64)   # [B, nb]
        T = self.C.shape[1]
        step = max(1, int(max_chunk_bytes // (8 * B * 3)))
        q = ((1 - ci) / 2, 1 - (1 - ci) / 2)
        se = np.full((self.K, T), np.nan, np.float32)
        lo = np.full((self.K, T), np.nan, np.float32)
        hi = np.full((self.K, T), np.nan, np.float32)
        from tqdm.auto import tqdm
        for c0 in tqdm(range(0, T, step), desc="bootstrap", disable=not progress, leave=False):
            c1 = min(T, c0 + step)
            Cs = W @ self.C[:, c0:c1].astype(np.float64)                 # [B, c]
            for k in range(self.K):
                Gs = W @ self.G[:, k, c0:c1].astype(np.float64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    rep = np.where(Cs > 0, Gs / Cs, np.nan)
                se[k, c0:c1], lo[k, c0:c1], hi[k, c0:c1] = replicate_summary(rep, q)
        return self._square(se, 0.0), self._square(lo, 1.0), self._square(hi, 1.0)

    def _square(self, tri: np.ndarray, diag: float) -> np.ndarray:
        out = np.full((self.K, self.L, self.L), np.nan, np.float32)
        out[:, self.iu[0], self.iu[1]] = tri
        if self.symmetric:
            out[:, self.iu[1], self.iu[0]] = tri
        d = np.arange(self.L)
        out[:, d, d] = diag
        return out


def replicate_summary(rep: np.ndarray, q: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of rep [B, c] (NaN = replicate without support): std (ddof 1) and the two
    quantiles (linear interpolation, as numpy's default), ignoring NaN; NaN when < 2 values."""
    n = np.sum(~np.isnan(rep), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(rep, axis=0) / n
        var = np.nansum((rep - mean) ** 2, axis=0) / (n - 1)
    a = np.sort(rep, axis=0)                                  # NaN sorted last
    cols = np.arange(rep.shape[1])
    out = []
    for p in q:
        h = (np.maximum(n, 1) - 1) * p
        f = np.floor(h).astype(np.int64)
        c = np.minimum(f + 1, np.maximum(n - 1, 0))
        v = a[f, cols] + (h - f) * (a[c, cols] - a[f, cols])
        out.append(np.where(n >= 2, v, np.nan))
    sd = np.where(n >= 2, np.sqrt(var), np.nan)
    return sd, out[0], out[1]


def bootstrap_groups(src, selected: np.ndarray, unit: str = "auto", documents=None,
                     block: int = 16) -> tuple[np.ndarray, dict]:
    """The resampling group (0..n-1) of each selected sentence, and the attrs that record it.

    unit "document": one group per distinct label of `documents` (one label per store sentence;
    default: the store's own `documents`); an empty label or None makes the sentence its own
    group. "block": `block` consecutive selected sentences. "auto": documents where known, else
    blocks. Groups need not be contiguous (a document split by the selection stays one group)."""
    if unit not in ("auto", "document", "block"):
        raise BabelmapError(f"bootstrap unit must be auto, document or block, got {unit!r}")
    if documents is None and unit != "block":
        documents = getattr(src, "documents", None)
        if callable(documents):
            documents = documents()
    if unit == "document" and documents is None:
        raise BabelmapError("a document bootstrap was asked for but the store records no documents "
                            "(re-extract with a corpus that has them, pass documents=..., or use blocks)")
    if unit == "block" or documents is None:
        if block < 1:
            raise BabelmapError(f"bootstrap block must be >= 1 sentence, got {block}")
        groups = np.arange(len(selected)) // block
        return groups, {"bootstrap_unit": "sentence block", "bootstrap_block": int(block),
                        "bootstrap_groups": int(groups[-1] + 1) if len(groups) else 0,
                        "bootstrap_blocks": int(groups[-1] + 1) if len(groups) else 0,
                        "bootstrap_method": "block bootstrap over sentences, percentile interval"}
    labels = np.asarray([("" if d is None else str(d)) for d in documents], dtype=object)
    n_store = len(src.sentence_ids)
    if len(labels) != n_store:
        raise BabelmapError(f"documents has {len(labels)} labels, the store has {n_store} sentences")
    sel = labels[selected]
    empty = sel == ""
    sel = sel.copy()
    sel[empty] = [f"\0sentence-{i}" for i in np.flatnonzero(empty)]
    _, first, inv = np.unique(sel.astype(str), return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    groups = rank[inv]                              # numbered in order of first appearance
    n = int(groups.max() + 1) if len(groups) else 0
    return groups.astype(np.int64), {
        "bootstrap_unit": "document", "bootstrap_groups": n, "bootstrap_blocks": n,
        "bootstrap_method": "bootstrap over documents (cluster bootstrap), percentile interval"}
