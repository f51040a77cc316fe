"""All-layer, all-pair language similarity (the mPLM-Sim measure) streamed from a store.

For hidden state k and languages a, b with shared sentences P(a, b):

    sim_k(a, b) = mean_{s in P(a, b)} cos(e_k(a, s), e_k(b, s)),   count(a, b) = |P(a, b)|.

With every row L2-normalised and the rows of missing sentences zeroed, the sum of cosines over
shared sentences is one Gram matrix over the concatenated (sentence, hidden) axis,
G_k = X_k X_k^T with X_k = [L, S*H], and count is the Gram of the presence mask P P^T. So all
pairs of all layers are BLAS-3 products, accumulated over sentence blocks of the store (blocks
aligned to its HDF5 chunks), while a background thread reads the next block. G_k is symmetric:
only its upper triangle is computed (BLAS syrk for the NumPy backend; GEMMs on blocked halves
through torch for the default and GPU backends: 5/8 of a full GEMM's work) and mirrored at the end. Only the hidden states asked for are read from disk.

Conventions: the diagonal is 1 (with count = the language's number of sentences); a pair that
shares no sentence has count 0 and sim NaN (also on the diagonal of a language without any
sentence). A present sentence whose embedding is exactly zero counts, with cosine 0.

Memory bound (L' languages, K' selected layers, H hidden, itemsize of the store):
    2 raw blocks            2 * L' * K' * s * H * itemsize    (s = one chunk row or more: >= 2 * L' MiB * K'/K)
  + one layer's work        ~3 * L' * s * H * 4 (8 with float64)
  + accumulators            (K' + 1) * L'^2 * 8
  + bootstrap (B > 0)       n_blocks * (K' + 1) * L'(L'-1)/2 * 4   (n_blocks = sentences / bootstrap_block)
e.g. 1000 languages x 49 hidden states (H = 1024, float16): 2 GB + 0.1 GB + 0.4 GB ~ 2.5 GB.
Measured peak RSS (whole process, with torch loaded): 1000 x 13 x 200 x 384 float16
(benchmarks/bench_similarity.py) 2.5 GiB; 1000 languages x 49 hidden states x 20 sentences x 1024
float16 (10 sentences per chunk) 2.7 GiB.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError, StoreError
from babelmap.kernels.result import SimilarityResult

TARGET_BLOCK_BYTES = 64 << 20


# ---------------------------------------------------------------------------------------------
# sources: a store, or arrays in memory with the same reading interface
# ---------------------------------------------------------------------------------------------
class ArraySource:
    """In-memory embeddings [L, K, S, H] (+ mask [L, S]) behind the store's reading interface,
    so the streamed kernel also serves arrays (tests, small jobs, the API). `layers`: the
    hidden-state ids of the K axis (default 0..K-1); `documents`: one label per sentence."""

    def __init__(self, embeddings: np.ndarray, mask: np.ndarray | None = None,
                 languages: Sequence[str] | None = None, sentence_ids: Sequence[str] | None = None,
                 attrs: dict | None = None, chunk_sentences: int | None = None,
                 layers: Sequence[int] | None = None, documents: Sequence[str] | None = None):
        self._emb = np.asarray(embeddings)
        self._layers = list(range(self._emb.shape[1])) if layers is None else [int(k) for k in layers]
        self.documents = None if documents is None else list(documents)
        L, K, S, H = self._emb.shape
        self._mask = np.ones((L, S), bool) if mask is None else np.asarray(mask, bool)
        self.languages = list(languages) if languages is not None else [f"lang{i}" for i in range(L)]
        self.sentence_ids = list(sentence_ids) if sentence_ids is not None else [str(i) for i in range(S)]
        self.attrs = dict(attrs or {})
        self.chunk_sentences = int(chunk_sentences or max(1, min(S, 64)))
        self.path = None
        self._index = {l: i for i, l in enumerate(self.languages)}

    shape = property(lambda self: tuple(self._emb.shape))
    layers = property(lambda self: list(self._layers))        # hidden-state ids of the K axis
    dtype = property(lambda self: self._emb.dtype)
    mask = property(lambda self: self._mask)

    def index(self, lang: str) -> int:
        try:
            return self._index[lang]
        except KeyError:
            raise StoreError(f"language {lang!r} is not in these embeddings") from None

    def block(self, sentences=None, layers=None, languages=None) -> np.ndarray:
        sl = sentences if sentences is not None else slice(None)
        rows = slice(None) if languages is None else [self.index(l) for l in languages]
        data = self._emb[rows][:, :, sl]
        # rows of missing sentences are zero in a store; mimic that
        m = self._mask[rows][:, sl]
        data = np.where(m[:, None, :, None], data, np.zeros((), data.dtype))
        return data if layers is None else data[:, list(layers)]


def _open(store):
    if isinstance(store, (str, os.PathLike)):
        from babelmap.engine.store import open_store
        return open_store(store), True
    return store, False


# ---------------------------------------------------------------------------------------------
# NumPy backend (the torch one lives in torch_kernels.TorchGram; same interface)
# ---------------------------------------------------------------------------------------------
class NumpyGram:
    """NumPy/BLAS twin of `torch_kernels.TorchGram` (see there)."""

    def __init__(self, n_languages: int, layer_index: Sequence[int], precision: str = "float32",
                 mean: np.ndarray | None = None):
        self.dtype = np.float64 if precision == "float64" else np.float32
        self.layer_index = list(layer_index)
        L, K = n_languages, len(self.layer_index)
        self.G = np.zeros((K, L, L), np.float64)
        self.C = np.zeros((L, L), np.float64)
        self.mean = None if mean is None else np.asarray(mean, self.dtype)

    def _normalised(self, raw: np.ndarray, present: np.ndarray, kpos: int) -> np.ndarray:
        x = raw[:, self.layer_index[kpos]].astype(self.dtype)          # [L, s, H]
        if self.mean is not None:
            x -= self.mean[kpos]
        nrm = np.sqrt(np.einsum("lsh,lsh->ls", x, x))
        scale = np.divide(1.0, nrm, out=np.zeros_like(nrm), where=nrm > 0)
        scale *= present
        x *= scale[..., None]
        return x

    def _gram(self, X: np.ndarray) -> np.ndarray:
        return syrk_upper(X)

    def add(self, block: np.ndarray, present: np.ndarray, groups: np.ndarray | None = None):
        block = np.ascontiguousarray(block)
        pres = present.astype(self.dtype)
        L, s = pres.shape
        spans = [(None, slice(None))] if groups is None else \
            [(int(g), np.flatnonzero(groups == g)) for g in np.unique(groups)]
        grams = {g: [] for g, _ in spans}
        for kpos in range(len(self.layer_index)):
            x = self._normalised(block, pres, kpos)
            for g, sel in spans:
                X = (x if g is None else x[:, sel]).reshape(L, -1)
                Gk = self._gram(X)
                self.G[kpos] += Gk
                if g is not None:
                    grams[g].append(Gk.astype(np.float32))
        out = []
        for g, sel in spans:
            ps = pres if g is None else pres[:, sel]
            Cg = ps @ ps.T
            self.C += Cg
            if g is not None:
                out.append((g, np.stack(grams[g]), Cg.astype(np.float64)))
        return out

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(G [K, L, L] float64 from the accumulated upper triangles, C [L, L] int64)."""
        return symmetrise_upper(self.G), np.rint(self.C).astype(np.int64)


def syrk_upper(X: np.ndarray) -> np.ndarray:
    """Upper triangle (diagonal included; strict lower = 0) of X X^T for X [L, n], through BLAS
    syrk (`ssyrk`/`dsyrk` of SciPy): half the multiply-adds of a GEMM. X.T of a C-ordered X is
    the Fortran-ordered [n, L] matrix BLAS wants, so nothing is copied."""
    from scipy.linalg import blas
    X = np.ascontiguousarray(X)
    f = blas.dsyrk if X.dtype == np.float64 else blas.ssyrk
    return f(1.0, X.T, trans=1)


def symmetrise_upper(G: np.ndarray) -> np.ndarray:
    """[..., L, L] from its upper triangles (the strict lower part is ignored and overwritten)."""
    L = G.shape[-1]
    il = np.tril_indices(L, -1)
    out = np.array(G, copy=True)
    out[..., il[0], il[1]] = out[..., il[1], il[0]]
    return out


class HybridGram(NumpyGram):
    """The CPU default: one fused Numba pass for the element-wise work (float16 decode, norms in
    float64, scaling, masking: measured ~2x faster than the NumPy sequence and ~4x faster than
    torch's CPU element-wise kernels here) and one triangle of the Gram through torch/MKL GEMMs
    on blocked halves (`torch_kernels.syrk_upper_torch`: in CPU time as fast as OpenBLAS's
    ssyrk at 1000 languages and twice as fast at 600 on this machine, see
    benchmarks/bench_similarity.py); zero-copy between the two, one reused layer buffer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import torch

        from babelmap.kernels.torch_kernels import syrk_upper_torch
        self.torch, self._tri = torch, syrk_upper_torch
        self._buf = None

    def _gram(self, X: np.ndarray) -> np.ndarray:
        return self._tri(self.torch.from_numpy(np.ascontiguousarray(X))).numpy()

    def _normalised(self, raw: np.ndarray, present: np.ndarray, kpos: int) -> np.ndarray:
        from babelmap.kernels.numba_kernels import normalise_layer
        L, _, s, H = raw.shape
        if self._buf is None or self._buf.shape != (L, s, H):
            self._buf = np.empty((L, s, H), self.dtype)
        mean = None if self.mean is None else self.mean[kpos]
        return normalise_layer(raw, self.layer_index[kpos], present > 0, self.dtype, mean, self._buf)


def layer_sums_np(block: np.ndarray, present: np.ndarray, layer_index: Sequence[int]) -> np.ndarray:
    """[K', H] float64 sums of the raw embeddings over languages and present sentences."""
    p = present.astype(np.float64)
    return np.stack([np.einsum("ls,lsh->h", p, block[:, k].astype(np.float64)) for k in layer_index])


# ---------------------------------------------------------------------------------------------
# selection and blocking
# ---------------------------------------------------------------------------------------------
def select_sentences(sentence_ids: Sequence[str], sentences) -> np.ndarray:
    """Sorted sentence indices from None (all), a slice, a boolean mask, ints or sentence ids."""
    S = len(sentence_ids)
    if sentences is None:
        return np.arange(S)
    if isinstance(sentences, slice):
        return np.arange(S)[sentences]
    arr = np.asarray(list(sentences))
    if arr.dtype == bool:
        if arr.shape != (S,):
            raise BabelmapError(f"sentence mask has {arr.shape[0]} entries, the store has {S} sentences")
        return np.flatnonzero(arr)
    if arr.size and arr.dtype.kind in ("U", "S", "O"):
        pos = {s: i for i, s in enumerate(sentence_ids)}
        missing = [s for s in arr.tolist() if s not in pos]
        if missing:
            raise BabelmapError(f"{len(missing)} sentence ids are not in the store, e.g. {missing[:3]}")
        return np.unique(np.array([pos[s] for s in arr.tolist()], dtype=np.int64))
    idx = np.unique(arr.astype(np.int64))
    if idx.size and (idx[0] < 0 or idx[-1] >= S):
        raise BabelmapError(f"sentence indices must be in [0, {S}), got {idx[0]}..{idx[-1]}")
    return idx


def plan_blocks(selected: np.ndarray, chunk: int, block_sentences: int) -> list[tuple[int, int, np.ndarray | None]]:
    """Chunk-aligned read ranges [start, stop) of `block_sentences` (rounded up to whole chunks)
    that contain selected sentences, with the local positions to keep (None = all)."""
    per = max(1, math.ceil(block_sentences / chunk)) * chunk
    out = []
    if selected.size == 0:
        return out
    sel_set = np.zeros(int(selected[-1]) + 1, bool)
    sel_set[selected] = True
    for start in range((int(selected[0]) // per) * per, int(selected[-1]) + 1, per):
        stop = min(start + per, len(sel_set))
        local = np.flatnonzero(sel_set[start:stop])
        if local.size == 0:
            continue
        if local.size == stop - start:
            out.append((start, stop, None))
        else:
            out.append((start, int(start + local[-1] + 1), local))
    return out


def default_block_sentences(n_languages: int, n_layers: int, hidden: int, itemsize: int, chunk: int) -> int:
    """Whole chunk rows, as many as fit TARGET_BLOCK_BYTES (at least one)."""
    row = n_languages * n_layers * chunk * hidden * itemsize
    return chunk * max(1, TARGET_BLOCK_BYTES // max(1, row))


class _Reader:
    """Reads blocks (languages x the asked hidden states x sentences x H) with one block of
    prefetch; `layers` None reads every stored hidden state."""

    def __init__(self, src, plan, languages, layers: Sequence[int] | None = None):
        self.src, self.plan, self.languages, self.layers = src, plan, languages, layers
        self.mask_all = np.asarray(src.mask, bool)
        self.rows = None if languages is None else [src.index(l) for l in languages]
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="babelmap-prefetch")
        self.read_seconds = 0.0

    def _read(self, i):
        start, stop, local = self.plan[i]
        t0 = time.perf_counter()
        raw = self.src.block(slice(start, stop), self.layers, self.languages)
        m = self.mask_all[:, start:stop] if self.rows is None else self.mask_all[self.rows, start:stop]
        if local is not None:
            raw, m = raw[:, :, local], m[:, local]
        self.read_seconds += time.perf_counter() - t0
        return raw, m

    def __iter__(self):
        if not self.plan:
            return
        fut = self.pool.submit(self._read, 0)
        try:
            for i in range(len(self.plan)):
                raw, m = fut.result()
                if i + 1 < len(self.plan):
                    fut = self.pool.submit(self._read, i + 1)
                yield i, raw, m
                del raw
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="sent", disable=not enabled, leave=False)


# ---------------------------------------------------------------------------------------------
# the public kernel
# ---------------------------------------------------------------------------------------------
def compute_similarity(store, *, layers: Sequence[int] | None = None, languages: Sequence[str] | None = None,
                       sentences=None, device: str = "auto", precision: str = "float32", bootstrap: int = 0,
                       center: bool = False, block_sentences: int | None = None, progress: bool = True,
                       seed: int = 0, bootstrap_block: int = 16, ci: float = 0.95,
                       backend: str | None = None, bootstrap_unit: str = "auto",
                       documents: Sequence | None = None, measure: str = "cosine-mean",
                       pivot: str | None = None) -> SimilarityResult:
    """sim and count for all selected layers and language pairs, streamed from a store.

    store: a path, an open `Store`, or an `ArraySource`. layers: hidden states (default all; only
    these are read from disk); languages: ids (default all, in store order); sentences: slice,
    indices, ids or a boolean mask. device: auto | cpu | cuda. precision: float32 (products in
    float32, sums in float64) or float64.
    bootstrap: B > 0 adds stderr and a `ci` percentile interval per pair and layer by resampling
    groups of sentences (kernels.bootstrap): `bootstrap_unit` "document" (one group per
    document: `documents`, one label per store sentence, else the store's own `documents`),
    "block" (`bootstrap_block` consecutive selected sentences) or "auto" (documents where known,
    else blocks); the unit is recorded in the result's attrs.
    center: subtract each layer's mean embedding over the selected languages and present sentences
    (one extra pass) before normalising; off by default (not the reference measure).
    backend (CPU only): "hybrid" (default: fused Numba element-wise pass + torch/MKL triangle, `HybridGram`;
    "torch" is its former name), "numpy" (NumPy + BLAS syrk) or "torch-all" (the GPU code path,
    `TorchGram`, run on the CPU); the GPU always uses TorchGram. See the module docstring for the
    memory bound. measure: "cosine-mean" here; "mexa" and "retrieval@K" go to
    `kernels.mexa.compute_alignment` (same result format; `pivot` restricts to pairs with one
    language).
    """
    if measure != "cosine-mean":
        from babelmap.kernels.mexa import compute_alignment
        if center:
            raise BabelmapError(f"center is only available for cosine-mean, not {measure!r}")
        return compute_alignment(store, measure=measure, layers=layers, languages=languages,
                                 sentences=sentences, device=device, precision=precision, bootstrap=bootstrap,
                                 progress=progress, seed=seed, bootstrap_block=bootstrap_block, ci=ci,
                                 backend=None if backend in (None, "hybrid", "torch") else backend,
                                 bootstrap_unit=bootstrap_unit, documents=documents, pivot=pivot)
    if pivot is not None:
        raise BabelmapError("--pivot is for mexa and retrieval@K; cosine-mean computes every pair at the cost of one")
    if precision not in ("float32", "float64"):
        raise BabelmapError(f"precision must be float32 or float64, got {precision!r}")
    from babelmap.kernels.torch_kernels import resolve_device
    dev = resolve_device(device)
    backend = "hybrid" if backend == "torch" else backend
    backend = "torch-all" if dev != "cpu" else (backend or "hybrid")
    if backend not in ("hybrid", "numpy", "torch-all"):
        raise BabelmapError(f"backend must be hybrid, numpy or torch-all, got {backend!r}")
    src, owned = _open(store)
    try:
        L_all, K_all, S_all, H = src.shape
        langs, lang_arg = resolve_languages(src, languages)
        layer_list, layer_pos = resolve_layers(src, layers)
        selected = select_sentences(src.sentence_ids, sentences)
        chunk = int(getattr(src, "chunk_sentences", 64) or 64)
        bs = block_sentences or default_block_sentences(len(langs), len(layer_list), H,
                                                        np.dtype(src.dtype).itemsize, chunk)
        plan = plan_blocks(selected, chunk, bs)
        L, K = len(langs), len(layer_list)
        positions = list(range(K))              # the reader returns only the asked hidden states

        mean = None
        if center:
            mean = _mean_pass(src, plan, lang_arg, layer_pos, dev, backend, progress)

        if backend == "torch-all":
            from babelmap.kernels.torch_kernels import TorchGram
            acc = TorchGram(L, positions, precision, dev, mean)
        elif backend == "hybrid":
            acc = HybridGram(L, positions, precision, mean)
        else:
            acc = NumpyGram(L, positions, precision, mean)

        boot = groups_all = None
        unit = {}
        if bootstrap:
            from babelmap.kernels.bootstrap import BlockGrams, bootstrap_groups
            groups_all, unit = bootstrap_groups(src, selected, bootstrap_unit, documents, bootstrap_block)
            boot = BlockGrams(L, K, n_blocks=unit["bootstrap_groups"])
        t0 = time.perf_counter()
        # every hidden state in store order: read them as one slice (an h5py list selection is slower)
        reader = _Reader(src, plan, lang_arg, None if layer_pos == list(range(K_all)) else layer_pos)
        pos = 0
        with _progress(len(selected), "similarity", progress) as bar:
            for _, raw, m in reader:
                s = m.shape[1]
                groups = groups_all[pos:pos + s] if boot is not None else None
                parts = acc.add(raw, m, groups)
                if boot is not None:
                    for g, Gg, Cg in parts:
                        boot.add(g, Gg, Cg)
                pos += s
                bar.update(s)
        G, C = acc.result()
        wall = time.perf_counter() - t0
        sim = finish_sim(G, C)
        nan_inputs = find_nan_inputs(src, langs, layer_list, layer_pos, selected, sim, C)
        attrs = dict(src.attrs)
        if nan_inputs:
            attrs["nan_inputs"] = nan_inputs
        attrs.update(measure="cosine-mean", precision=precision, center=bool(center), device=dev,
                     backend=backend, n_sentences=int(len(selected)), store=str(getattr(src, "path", "") or ""),
                     nan_policy="sim is NaN where count is 0", bootstrap=int(bootstrap),
                     seconds=round(wall, 3), read_seconds=round(reader.read_seconds, 3))
        stderr = ci_low = ci_high = None
        if boot is not None:
            stderr, ci_low, ci_high = boot.resample(bootstrap, seed=seed, ci=ci, progress=progress)
            attrs.update(unit, bootstrap_seed=int(seed), ci_level=float(ci))
        return SimilarityResult(langs, layer_list, sim, C.astype(np.int32), stderr, ci_low, ci_high, attrs)
    finally:
        if owned:
            src.close()


def resolve_languages(src, languages: Sequence[str] | None) -> tuple[list[str], list[str] | None]:
    """(the ids asked for, in order, checked against the store; the argument for `block`)."""
    langs = list(src.languages) if languages is None else list(languages)
    for l in langs:
        src.index(l)
    if len(set(langs)) != len(langs):
        raise BabelmapError("duplicate languages asked for")
    return langs, (None if languages is None else langs)


def resolve_layers(src, layers: Sequence[int] | None) -> tuple[list[int], list[int]]:
    """(the hidden states asked for, default every one the store holds; their positions along
    the store's layer axis, which `block(layers=...)` takes), checked. A store may keep only
    some hidden states (`src.layers`, e.g. [0, 6, 12])."""
    held = [int(k) for k in src.layers]
    layer_list = held if layers is None else [int(k) for k in layers]
    bad = [k for k in layer_list if k not in held]
    if bad:
        raise BabelmapError(f"layers {bad} are not in the store (it holds hidden states "
                            f"{_ranges(held)})")
    return layer_list, [held.index(k) for k in layer_list]


def _ranges(xs: Sequence[int]) -> str:
    xs = list(xs)
    if xs and xs == list(range(xs[0], xs[-1] + 1)):
        return f"{xs[0]}..{xs[-1]}"
    return ", ".join(map(str, xs))


def find_nan_inputs(src, langs: Sequence[str], layer_list: Sequence[int], layer_pos: Sequence[int],
                    selected: np.ndarray, sim: np.ndarray, C: np.ndarray) -> list[dict]:
    """Where a NaN in the store made similarities NaN: [{language, layer, sentences}] (each
    reported once on the `babelmap` logger as a warning). A NaN anywhere in a language's row
    spreads to every pair of that language at that layer; only then are the languages involved
    re-read (one layer each), so a clean store costs nothing."""
    import logging
    bad = np.isnan(sim) & (C > 0)[None]
    if not bad.any():
        return []
    out = []
    for kpos, layer in enumerate(layer_list):
        for i in np.flatnonzero(bad[kpos].any(axis=1)):
            x = np.asarray(src.block(None, [layer_pos[kpos]], [langs[i]])[0, 0])[selected]
            n = int(np.isnan(x).any(axis=1).sum())
            if n:
                out.append({"language": langs[i], "layer": int(layer), "sentences": n})
    log = logging.getLogger("babelmap")
    for d in out:
        log.warning("the store holds NaN in %s at layer %d (%d sentences): its similarities at that "
                    "layer are NaN", d["language"], d["layer"], d["sentences"])
    return out


def finish_sim(G: np.ndarray, C: np.ndarray) -> np.ndarray:
    """sim = G / count (float64 -> float32), NaN where count is 0, diagonal 1 where count > 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(C[None] > 0, G / np.maximum(C[None], 1), np.nan)
    d = np.arange(C.shape[0])
    sim[:, d, d] = np.where(C[d, d] > 0, 1.0, np.nan)
    return sim.astype(np.float32)


def _mean_pass(src, plan, lang_arg, layer_list, dev, backend, progress) -> np.ndarray:
    """Per-layer mean embedding over languages and present sentences (for center=True)."""
    from babelmap.kernels.torch_kernels import layer_sums
    H = src.shape[3]
    total = np.zeros((len(layer_list), H), np.float64)
    n = 0
    with _progress(sum((p[1] - p[0]) if p[2] is None else len(p[2]) for p in plan), "mean (center)",
                   progress) as bar:
        positions = list(range(len(layer_list)))
        for _, raw, m in _Reader(src, plan, lang_arg, layer_list):
            total += layer_sums(raw, m, positions, dev) if backend == "torch-all" else \
                layer_sums_np(raw, m, positions)
            n += int(m.sum())
            bar.update(m.shape[1])
    if n == 0:
        raise BabelmapError("center=True but no sentence is present in the selection")
    return total / n


def similarity_from_arrays(embeddings: np.ndarray, mask: np.ndarray | None = None,
                           languages: Sequence[str] | None = None, **kwargs) -> SimilarityResult:
    """`compute_similarity` over in-memory embeddings [L, K, S, H] (+ mask [L, S])."""
    return compute_similarity(ArraySource(embeddings, mask, languages), **{"progress": False, **kwargs})


def sentence_similarities(store, a: str, b: str, layer: int, device: str = "auto") -> tuple[list[str], np.ndarray]:
    """The per-sentence view of one matrix cell: (sentence ids, cos(e_layer(a, s), e_layer(b, s))
    for every sentence, NaN where either language lacks it). Its nanmean is sim_layer(a, b)."""
    from babelmap.kernels.numba_kernels import paired_cosines
    src, owned = _open(store)
    try:
        ia, ib = src.index(a), src.index(b)
        mask = np.asarray(src.mask, bool)
        ea = src.block(None, [layer], [a])[0, 0]
        eb = src.block(None, [layer], [b])[0, 0]
        dev = device if device != "auto" else "cpu"
        cos = paired_cosines(ea, eb, mask[ia], mask[ib], device=dev)
        if not isinstance(cos, np.ndarray):
            cos = cos.cpu().numpy()
        return list(src.sentence_ids), cos
    finally:
        if owned:
            src.close()
