"""Bootstrap over sentences for the similarity measure, without re-reading the store.

While streaming, `compute_similarity` hands each block of `bootstrap_block` consecutive selected
sentences' Grams here (G_b[K, L, L] and mask Gram C_b[L, L]); only the upper triangles are kept,
in float32. A replicate draws n_blocks blocks with replacement (multinomial weights w_rb) and is

    sim_r(a, b) = sum_b w_rb G_b(a, b) / sum_b w_rb C_b(a, b)

i.e. the same mean of per-sentence cosines over the resampled sentences (a ratio estimator,
exact under missing sentences). Standard error = std of the replicates (ddof 1); the interval
is the percentile interval at level `ci`. Resampling blocks rather than single sentences keeps
memory at n_blocks * (K + 1) * L(L-1)/2 * 4 bytes and respects correlation between neighbouring
sentences (verses of one chapter, lines of one document).
"""
from __future__ import annotations

import os

import numpy as np

from babelmap.engine.errors import BabelmapError

MAX_BYTES = float(os.environ.get("BABELMAP_BOOTSTRAP_MAX_GB", "16")) * 2**30


class BlockGrams:
    """Per-block upper-triangle Grams and counts, filled while streaming, resampled at the end."""

    def __init__(self, n_languages: int, n_layers: int, n_blocks: int):
        L = n_languages
        self.L, self.K, self.n_blocks = L, n_layers, int(n_blocks)
        self.iu = np.triu_indices(L, k=1)
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
