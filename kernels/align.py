"""Word alignments between two languages of a word store: Pharaoh files or the model's own.

Why: the word-level study needs, per sentence pair, which source word translates which
target word. Two sources:

- a Pharaoh file: `engine.alignments.read_pharaoh` (the `Alignment` type lives there too).
- `similarity_align(...)`: the similarity aligner ("argmax" of SimAlign): cosine matrix between
  the two sentences' word embeddings at one layer; a link where i's best target is j *and*
  j's best source is i (both directions intersected), so links are one-to-one by construction.
  Sentences are packed ragged arrays (all words in one [N, H] array plus offsets [S+1]);
  the Numba kernel runs sentence pairs in parallel, the torch version pads batches for the
  GPU. Both give the same links (ties: lowest index, like `np.argmax`).

Every aligner returns an `engine.alignments.Alignment`.
"""
from __future__ import annotations

import numpy as np

from babelmap.engine.alignments import Alignment

try:  # Numba is a dependency; fall back to the NumPy loop only if it cannot be imported
    import numba as _nb
except Exception:  # pragma: no cover
    _nb = None



def normalize_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length; zero rows stay zero."""
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _check_pair(src_off, tgt_off) -> None:
    if len(src_off) != len(tgt_off):
        raise ValueError(f"source has {len(src_off) - 1} sentences, target {len(tgt_off) - 1}")


def _mutual_numpy_one(a: np.ndarray, b: np.ndarray, va: np.ndarray, vb: np.ndarray) -> list[tuple[int, int]]:
    if not va.any() or not vb.any():
        return []
    sim = a @ b.T
    sim[~va, :] = -np.inf
    sim[:, ~vb] = -np.inf
    fwd = sim.argmax(1)
    bwd = sim.argmax(0)
    return [(i, int(fwd[i])) for i in range(len(a)) if va[i] and vb[fwd[i]] and bwd[fwd[i]] == i]


def align_numpy(src: np.ndarray, src_off: np.ndarray, tgt: np.ndarray, tgt_off: np.ndarray,
                src_valid: np.ndarray | None = None, tgt_valid: np.ndarray | None = None) -> Alignment:
    """The similarity aligner as a per-pair NumPy loop (the baseline and reference)."""
    _check_pair(src_off, tgt_off)
    a, b = normalize_rows(src), normalize_rows(tgt)
    va = np.ones(len(a), bool) if src_valid is None else np.asarray(src_valid, bool)
    vb = np.ones(len(b), bool) if tgt_valid is None else np.asarray(tgt_valid, bool)
    links = []
    for s in range(len(src_off) - 1):
        x0, x1, y0, y1 = src_off[s], src_off[s + 1], tgt_off[s], tgt_off[s + 1]
        links.append(_mutual_numpy_one(a[x0:x1], b[y0:y1], va[x0:x1], vb[y0:y1]))
    return Alignment.from_lists(links, attrs={"method": "mutual-argmax", "kernel": "numpy"})


if _nb is not None:
    @_nb.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
    def _mutual_kernel(a, a_off, va, b, b_off, vb, base, out_src, out_tgt, counts):  # pragma: no cover
        S = a_off.shape[0] - 1
        H = a.shape[1]
        for s in _nb.prange(S):
            x0, x1, y0, y1 = a_off[s], a_off[s + 1], b_off[s], b_off[s + 1]
            n, m = x1 - x0, y1 - y0
            c = 0
            if n > 0 and m > 0:
                sim = np.empty((n, m), np.float32)
                for i in range(n):
                    for j in range(m):
                        acc = np.float32(0.0)
                        for h in range(H):
                            acc += a[x0 + i, h] * b[y0 + j, h]
                        sim[i, j] = acc
                bwd = np.full(m, -1, np.int64)
                for j in range(m):
                    if not vb[y0 + j]:
                        continue
                    best = -np.inf
                    for i in range(n):
                        if va[x0 + i] and sim[i, j] > best:
                            best = sim[i, j]
                            bwd[j] = i
                for i in range(n):
                    if not va[x0 + i]:
                        continue
                    best = -np.inf
                    arg = -1
                    for j in range(m):
                        if vb[y0 + j] and sim[i, j] > best:
                            best = sim[i, j]
                            arg = j
                    if arg >= 0 and bwd[arg] == i:
                        out_src[base[s] + c] = i
                        out_tgt[base[s] + c] = arg
                        c += 1
            counts[s] = c

    @_nb.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
    def _argmax_kernel(a, a_off, b, b_off, vb, out):  # pragma: no cover
        S = a_off.shape[0] - 1
        H = a.shape[1]
        for s in _nb.prange(S):
            x0, x1, y0, y1 = a_off[s], a_off[s + 1], b_off[s], b_off[s + 1]
            for i in range(x0, x1):
                best = -np.inf
                arg = -1
                for j in range(y0, y1):
                    if not vb[j]:
                        continue
                    acc = np.float32(0.0)
                    for h in range(H):
                        acc += a[i, h] * b[j, h]
                    if acc > best:
                        best = acc
                        arg = j - y0
                out[i] = arg


def align_numba(src: np.ndarray, src_off: np.ndarray, tgt: np.ndarray, tgt_off: np.ndarray,
                src_valid: np.ndarray | None = None, tgt_valid: np.ndarray | None = None) -> Alignment:
    """The similarity aligner over packed ragged sentences, a parallel Numba kernel."""
    _check_pair(src_off, tgt_off)
    if _nb is None:  # pragma: no cover
        return align_numpy(src, src_off, tgt, tgt_off, src_valid, tgt_valid)
    a, b = normalize_rows(src), normalize_rows(tgt)
    a_off, b_off = np.asarray(src_off, np.int64), np.asarray(tgt_off, np.int64)
    va = np.ones(len(a), np.bool_) if src_valid is None else np.asarray(src_valid, np.bool_)
    vb = np.ones(len(b), np.bool_) if tgt_valid is None else np.asarray(tgt_valid, np.bool_)
    cap = np.minimum(np.diff(a_off), np.diff(b_off))
    base = np.zeros(len(cap), np.int64)
    base[1:] = np.cumsum(cap)[:-1]
    total = int(cap.sum())
    out_src = np.empty(total, np.int64)
    out_tgt = np.empty(total, np.int64)
    counts = np.zeros(len(cap), np.int64)
    _mutual_kernel(a, a_off, va, b, b_off, vb, base, out_src, out_tgt, counts)
    keep = np.repeat(base, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    offsets = np.zeros(len(counts) + 1, np.int64)
    offsets[1:] = np.cumsum(counts)
    return Alignment(offsets, out_src[keep], out_tgt[keep], attrs={"method": "mutual-argmax", "kernel": "numba"})


def align_torch(src: np.ndarray, src_off: np.ndarray, tgt: np.ndarray, tgt_off: np.ndarray,
                src_valid: np.ndarray | None = None, tgt_valid: np.ndarray | None = None,
                device: str = "auto", batch: int = 512) -> Alignment:
    """The similarity aligner in torch (padded sentence batches, `bmm`), for a GPU."""
    import torch

    from babelmap.engine.models.loading import resolve_device
    _check_pair(src_off, tgt_off)
    dev = resolve_device(device)
    a_np, b_np = normalize_rows(src), normalize_rows(tgt)
    a_off, b_off = np.asarray(src_off, np.int64), np.asarray(tgt_off, np.int64)
    va_np = np.ones(len(a_np), bool) if src_valid is None else np.asarray(src_valid, bool)
    vb_np = np.ones(len(b_np), bool) if tgt_valid is None else np.asarray(tgt_valid, bool)
    S, H = len(a_off) - 1, a_np.shape[1]
    links: list[list[tuple[int, int]]] = []
    for s0 in range(0, S, batch):
        ss = range(s0, min(S, s0 + batch))
        n = max([a_off[s + 1] - a_off[s] for s in ss] + [1])
        m = max([b_off[s + 1] - b_off[s] for s in ss] + [1])
        A = np.zeros((len(ss), n, H), np.float32)
        B = np.zeros((len(ss), m, H), np.float32)
        MA = np.zeros((len(ss), n), bool)
        MB = np.zeros((len(ss), m), bool)
        for r, s in enumerate(ss):
            x0, x1, y0, y1 = a_off[s], a_off[s + 1], b_off[s], b_off[s + 1]
            A[r, :x1 - x0], B[r, :y1 - y0] = a_np[x0:x1], b_np[y0:y1]
            MA[r, :x1 - x0], MB[r, :y1 - y0] = va_np[x0:x1], vb_np[y0:y1]
        At, Bt = torch.from_numpy(A).to(dev), torch.from_numpy(B).to(dev)
        mat, mbt = torch.from_numpy(MA).to(dev), torch.from_numpy(MB).to(dev)
        sim = torch.bmm(At, Bt.transpose(1, 2))
        sim = sim.masked_fill(~mat[:, :, None], float("-inf")).masked_fill(~mbt[:, None, :], float("-inf"))
        fwd = sim.argmax(2)  # [b, n]  first maximum, like np.argmax
        bwd = sim.argmax(1)  # [b, m]
        back = torch.gather(bwd, 1, fwd)  # bwd[fwd[i]]
        ok = (back == torch.arange(n, device=dev)[None, :]) & mat & torch.gather(mbt, 1, fwd)
        ok, fwd = ok.cpu().numpy(), fwd.cpu().numpy()
        for r, s in enumerate(ss):
            ii = np.nonzero(ok[r])[0]
            links.append([(int(i), int(fwd[r, i])) for i in ii])
    return Alignment.from_lists(links, attrs={"method": "mutual-argmax", "kernel": f"torch-{dev.type}"})


def similarity_align(src: np.ndarray, src_off: np.ndarray, tgt: np.ndarray, tgt_off: np.ndarray,
                     src_valid: np.ndarray | None = None, tgt_valid: np.ndarray | None = None,
                     device: str = "cpu") -> Alignment:
    """Mutual-argmax alignment: Numba on `cpu`, torch on `cuda`; `auto` picks CUDA when present."""
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return align_numba(src, src_off, tgt, tgt_off, src_valid, tgt_valid)
    return align_torch(src, src_off, tgt, tgt_off, src_valid, tgt_valid, device=device)


def nearest_in_sentence(src: np.ndarray, src_off: np.ndarray, tgt: np.ndarray, tgt_off: np.ndarray,
                        tgt_valid: np.ndarray | None = None) -> np.ndarray:
    """[N_src] for every source word, the index (within its sentence) of the target word of
    the same sentence pair with the highest cosine; -1 where the target sentence is empty."""
    _check_pair(src_off, tgt_off)
    a, b = normalize_rows(src), normalize_rows(tgt)
    vb = np.ones(len(b), np.bool_) if tgt_valid is None else np.asarray(tgt_valid, np.bool_)
    out = np.full(len(a), -1, np.int64)
    if _nb is None:  # pragma: no cover
        for s in range(len(src_off) - 1):
            x0, x1, y0, y1 = src_off[s], src_off[s + 1], tgt_off[s], tgt_off[s + 1]
            if y1 > y0 and x1 > x0:
                sim = a[x0:x1] @ b[y0:y1].T
                sim[:, ~vb[y0:y1]] = -np.inf
                out[x0:x1] = sim.argmax(1)
        return out
    _argmax_kernel(a, np.asarray(src_off, np.int64), b, np.asarray(tgt_off, np.int64), vb, out)
    return out


def align_store(store, src_lang: str, tgt_lang: str, layer: int = 8, device: str = "cpu") -> Alignment:
    """The model's own alignment of two languages of a word store at one layer."""
    if not 0 <= layer < store.num_hidden_states:
        from babelmap.engine.errors import StoreError
        raise StoreError(f"--layer {layer}: the word store {store.path} has {store.num_hidden_states} hidden "
                         f"states (0..{store.num_hidden_states - 1}); choose one of them")
    al = similarity_align(store.embeddings(src_lang, layer), store.offsets(src_lang),
                          store.embeddings(tgt_lang, layer), store.offsets(tgt_lang),
                          store.valid(src_lang), store.valid(tgt_lang), device=device)
    al.src_lang, al.tgt_lang = src_lang, tgt_lang
    al.attrs.update({"layer": layer, "store": str(store.path), "model": str(store.attrs.get("model"))})
    return al
