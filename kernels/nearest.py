"""Nearest languages: the top-k most similar languages per language (and layer) with faiss.

What is exact here. sim(a, b) is a mean of per-sentence cosines over the sentences a and b share,
so with missing sentences it is G[a, b] / count[a, b] with a pair-dependent denominator: no
fixed vector per language has inner products equal to sim, and a flat index over concatenated
embeddings would rank by the wrong quantity whenever counts differ. The exact representation
is the similarity matrix itself: query with row a of `sim` against the identity basis e_b
(`IndexFlatIP`), so <sim[a], e_b> = sim[a, b] with a single non-zero product term, i.e. bit-exact.

NaN pairs (no shared sentence) and the language itself are replaced by a sentinel far below any
cosine and never returned (index -1 when fewer than k languages qualify). `faiss-cpu` by
default; the faiss GPU index when faiss was built with GPUs and `device="cuda"`, otherwise
`torch.topk` on the GPU (same results up to the order of exact ties).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SENTINEL = -1e30


def _prepare(sim: np.ndarray, rows: np.ndarray, exclude_self: bool) -> np.ndarray:
    q = np.array(sim[rows], dtype=np.float32, copy=True)
    q[~np.isfinite(q)] = SENTINEL
    if exclude_self:
        q[np.arange(len(rows)), rows] = SENTINEL
    return np.ascontiguousarray(q)


def _finish(vals: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad = vals <= SENTINEL / 2
    idx = np.where(bad, -1, idx).astype(np.int64)
    vals = np.where(bad, np.nan, vals).astype(np.float32)
    return idx, vals


def _faiss_gpu_available() -> bool:
    try:
        import faiss
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except ImportError:
        return False


def top_k(sim: np.ndarray, k: int, rows: Sequence[int] | None = None, device: str = "cpu",
          exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each requested row of a square similarity matrix `sim[L, L]`.

    Returns (indices [R, k] int64, values [R, k] float32), most similar first; index -1 and value
    NaN where fewer than k languages have a value. `device`: "cpu", "cuda" or "auto"."""
    sim = np.asarray(sim)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be a square [L, L] matrix, got {sim.shape}")
    L = sim.shape[0]
    rows_a = np.arange(L) if rows is None else np.asarray(list(rows), dtype=np.int64)
    k = int(min(max(k, 0), L))
    if k == 0 or len(rows_a) == 0:
        return np.zeros((len(rows_a), k), np.int64), np.zeros((len(rows_a), k), np.float32)
    q = _prepare(sim, rows_a, exclude_self)
    if device == "auto":
        from babelmap.kernels.torch_kernels import resolve_device
        device = resolve_device("auto")
    if device.startswith("cuda") and not _faiss_gpu_available():
        import torch
        t = torch.from_numpy(q).to(device)
        v, i = torch.topk(t, k, dim=1, largest=True, sorted=True)
        return _finish(v.cpu().numpy(), i.cpu().numpy())
    import faiss
    index = faiss.IndexFlatIP(L)
    if device.startswith("cuda"):
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    index.add(np.eye(L, dtype=np.float32))
    vals, idx = index.search(q, k)
    return _finish(vals, idx)


def nearest_table(sim: np.ndarray, languages: Sequence[str], k: int = 10, device: str = "cpu"
                  ) -> dict[str, list[tuple[str, float]]]:
    """For every language, its k nearest languages as (id, similarity), most similar first."""
    idx, vals = top_k(sim, k, device=device)
    langs = list(languages)
    return {langs[i]: [(langs[j], float(v)) for j, v in zip(idx[i], vals[i]) if j >= 0]
            for i in range(len(langs))}
