"""All-layer, all-pair language similarity (the mPLM-Sim measure) streamed from a store.

For hidden state k and languages a, b with shared sentences P(a, b):

    sim_k(a, b) = mean_{s in P(a, b)} cos(e_k(a, s), e_k(b, s)),   count(a, b) = |P(a, b)|.

With every row L2-normalised and the rows of missing sentences zeroed, the sum of cosines over
shared sentences is one Gram matrix over the concatenated (sentence, hidden) axis,
G_k = X_k X_k^T with X_k = [L, S*H], and count is the Gram of the presence mask P P^T. So all
pairs of all layers are BLAS-3 products, accumulated over sentence blocks of the store (blocks
aligned to its HDF5 chunks), one hidden state at a time, while a background thread reads the
next one. G_k is symmetric: only its upper triangle is computed (BLAS syrk on the CPU: the
block's sentences split in one part per core, each part normalised and multiplied on its own
thread, written in place into reused buffers; GEMMs on blocked halves through torch on the GPU:
5/8 of a full GEMM's work) and mirrored at the end. Only the hidden states asked for are read
from disk. benchmarks/bench_similarity.py measures it against the BLAS floor in the same run.

Conventions: the diagonal is 1 (with count = the language's number of sentences); a pair that
shares no sentence has count 0 and sim NaN (also on the diagonal of a language without any
sentence). A present sentence whose embedding is exactly zero counts, with cosine 0.

Memory bound (L' languages, K' selected layers, H hidden, itemsize of the store, s sentences
per block = one chunk row or more):
    2 raw layer buffers     2 * L' * s * H * itemsize
  + the normalised layer    L' * s * H * 4 (8 with float64)
  + syrk's triangle         L'^2 * 4
  + accumulators            (K' + 1) * L'^2 * 8
  + bootstrap (B > 0)       n_blocks * (K' + 1) * L'(L'-1)/2 * 4   (n_blocks = sentences / bootstrap_block)
e.g. 1000 languages x 13 hidden states x 105 sentences per block x 384 (float16): 0.15 + 0.15 +
0.004 + 0.1 GB ~ 0.4 GB; measured peak RSS of the whole process (torch loaded): 0.9 GiB
(benchmarks/bench_similarity.py; reading whole blocks of all hidden states at once took 2.6 GiB).
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Sequence

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
# CPU backends (the GPU one lives in torch_kernels.TorchGram; same interface)
# ---------------------------------------------------------------------------------------------
class NumpyGram:
    """Streaming accumulator of per-layer Grams of L2-normalised, masked sentence embeddings
    (the NumPy twin of `HybridGram` and of `torch_kernels.TorchGram`): element-wise work in
    NumPy, one triangle of each Gram through BLAS syrk into one reused buffer.

    `add(layers, present, groups, cols)` takes one block: `layers` yields, for each selected
    layer in turn, its rows raw [L, 1, s, H] (store dtype); `cols` the positions of the block's
    s' kept sentences along s (None = all), `present` [L, s'] bool. It adds, per layer, X X^T
    with X = [L, s'*H] (rows normalised per sentence, missing rows zero) and the mask Gram
    P P^T for the counts; products in `precision`, sums in float64. With `groups` (one
    bootstrap group per kept sentence) it also returns each group's Grams.
    """

    def __init__(self, n_languages: int, n_layers: int, precision: str = "float32",
                 mean: np.ndarray | None = None):
        self.dtype = np.float64 if precision == "float64" else np.float32
        L, K = n_languages, int(n_layers)
        self.G = np.zeros((K, L, L), np.float64)
        self.C = np.zeros((L, L), np.float64)
        self.mean = None if mean is None else np.asarray(mean, self.dtype)
        self._tri = np.zeros((L, L), self.dtype)          # syrk's output, reused (see syrk_upper)

    def _normalised(self, raw: np.ndarray, kpos: int, cols: np.ndarray | None, present: np.ndarray
                    ) -> np.ndarray:
        x = raw[:, 0]
        x = (x if cols is None else x[:, cols]).astype(self.dtype)      # [L, s', H]
        if self.mean is not None:
            x -= self.mean[kpos]
        nrm = np.sqrt(np.einsum("lsh,lsh->ls", x, x))
        scale = np.divide(1.0, nrm, out=np.zeros_like(nrm), where=nrm > 0)
        scale *= present
        x *= scale[..., None]
        return x

    def add(self, layers: Iterable[np.ndarray], present: np.ndarray, groups: np.ndarray | None = None,
            cols: np.ndarray | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Accumulate one block (see the class docstring); returns [(group, G_g [K, L, L]
        float32, C_g [L, L])] when `groups`, else []."""
        spans = [(None, None)] if groups is None else \
            [(int(g), np.flatnonzero(groups == g)) for g in np.unique(groups)]
        span_cols = [cols if sel is None else (sel if cols is None else cols[sel]) for _, sel in spans]
        span_present = [present if sel is None else present[:, sel] for _, sel in spans]
        grams: dict = {g: [] for g, _ in spans}
        for kpos, raw in enumerate(layers):
            for (g, _), cs, ps in zip(spans, span_cols, span_present):
                tris = self._gram(raw, kpos, cs, ps)
                for tri in tris:
                    self._accumulate(self.G[kpos], tri)
                if g is not None:
                    grams[g].append((tris[0] if len(tris) == 1 else sum(tris[1:], tris[0])).astype(np.float32))
        out = []
        for (g, _), ps in zip(spans, span_present):
            pf = ps.astype(np.float32)
            Cg = pf @ pf.T                                 # exact: integer counts < 2^24
            self.C += Cg
            if g is not None:
                out.append((g, np.stack(grams[g]), Cg.astype(np.float64)))
        return out

    def _gram(self, raw: np.ndarray, kpos: int, cols: np.ndarray | None, present: np.ndarray
              ) -> list[np.ndarray]:
        """[upper triangle of X X^T] for this layer's kept sentences (a list: see HybridGram)."""
        L = present.shape[0]
        return [syrk_upper(self._normalised(raw, kpos, cols, present).reshape(L, -1), out=self._tri)]

    @staticmethod
    def _accumulate(acc: np.ndarray, tri: np.ndarray) -> None:
        acc += tri

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(G [K, L, L] float64 sums, valid on the upper triangles; C [L, L] int64 counts)."""
        return self.G, np.rint(self.C).astype(np.int64)


def syrk_upper(X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Upper triangle (diagonal included; strict lower part 0) of X X^T for X [L, n], through BLAS
    syrk (`ssyrk`/`dsyrk` of SciPy): half the multiply-adds of a GEMM. X.T of a C-ordered X is
    the Fortran-ordered [n, L] matrix BLAS wants, so nothing is copied. `out`: a C-ordered
    [L, L] buffer of X's dtype, zeros at first, reused between calls (syrk writes only the
    triangle, in place: no [L, L] temporary per call); the result is then `out` itself."""
    from scipy.linalg import blas
    X = np.ascontiguousarray(X)
    f = blas.dsyrk if X.dtype == np.float64 else blas.ssyrk
    if out is None:
        return f(1.0, X.T, trans=1)
    # out.T is Fortran-ordered: its lower triangle, which syrk fills, is out's upper triangle
    c = f(1.0, X.T, beta=0.0, c=out.T, trans=1, lower=1, overwrite_c=1)
    if not np.shares_memory(c, out):               # pragma: no cover - a wrong dtype or order
        raise ValueError("syrk_upper: `out` must be a C-ordered [L, L] array of X's dtype")
    return out


def symmetrise_upper(G: np.ndarray) -> np.ndarray:
    """[..., L, L] from its upper triangles (the strict lower part is ignored and overwritten)."""
    L = G.shape[-1]
    il = np.tril_indices(L, -1)
    out = np.array(G, copy=True)
    out[..., il[0], il[1]] = out[..., il[1], il[0]]
    return out


class HybridGram(NumpyGram):
    """The CPU default: the kept sentences of a block are split into one part per core, and
    each part runs on its own thread, start to end: one fused Numba pass for the element-wise
    work (float16 decoded by the CPU's conversion instruction, norms in float64, scaling,
    masking) into the thread's reused buffer, which is the [L, s_t*H] operand of BLAS syrk as is
    (one triangle into the thread's reused output), both with the GIL released and BLAS on one
    thread (`threadpoolctl`, for the duration of `add`). The triangles are then added to the
    float64 sums. OpenBLAS's own threaded syrk synchronises its threads many times per product:
    with other jobs on the 2 cores (load 4-6) it took 1.7x the CPU time of two single-threaded
    halves at 1000 languages, and 34x the wall time for one [204, 40320] product."""

    def __init__(self, *args, threads: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        import numba
        self.threads = max(1, int(threads or numba.get_num_threads()))
        L = self.G.shape[1]
        self._bufs = [np.empty(0, self.dtype) for _ in range(self.threads)]
        self._tris = [self._tri] + [np.zeros((L, L), self.dtype) for _ in range(self.threads - 1)]
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="babelmap-gram") \
            if self.threads > 1 else None

    def add(self, layers, present, groups=None, cols=None):
        with _one_blas_thread():
            return super().add(layers, present, groups, cols)

    def _part(self, t: int, raw: np.ndarray, kpos: int, cols: np.ndarray, present: np.ndarray) -> np.ndarray:
        from babelmap.kernels.numba_kernels import normalise_layer, syrk_upper_nogil
        L, n, H = present.shape[0], len(cols), raw.shape[3]
        if self._bufs[t].size < L * n * H:
            self._bufs[t] = np.empty(L * n * H, self.dtype)
        x = self._bufs[t][:L * n * H].reshape(L, n, H)
        mean = None if self.mean is None else self.mean[kpos]
        normalise_layer(raw, 0, present, self.dtype, mean, x, cols, parallel=False)
        return syrk_upper_nogil(x.reshape(L, -1), self._tris[t])

    def _gram(self, raw: np.ndarray, kpos: int, cols: np.ndarray | None, present: np.ndarray
              ) -> list[np.ndarray]:
        cols = np.arange(raw.shape[2]) if cols is None else np.asarray(cols)
        parts = np.array_split(np.arange(len(cols)), min(self.threads, max(1, len(cols))))
        if len(parts) == 1:
            return [self._part(0, raw, kpos, cols, present)]
        futures = [self._pool.submit(self._part, t, raw, kpos, cols[p], present[:, p])
                   for t, p in enumerate(parts)]
        return [f.result() for f in futures]

    @staticmethod
    def _accumulate(acc: np.ndarray, tri: np.ndarray) -> None:
        from babelmap.kernels.numba_kernels import add_upper
        add_upper(acc, tri)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _one_blas_thread():
    """A context in which the BLAS libraries run on the calling thread only (threadpoolctl).
    The controller is made anew each time: a BLAS loaded since (numpy's, torch's) is limited too."""
    from threadpoolctl import ThreadpoolController

    import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS loaded: the controller sees what is loaded)
    return ThreadpoolController().limit(limits=1, user_api="blas")


def layer_sum_np(raw: np.ndarray, present: np.ndarray) -> np.ndarray:
    """[H] float64 sum of one layer's rows raw [L, 1, s, H] over languages and present sentences."""
    return np.einsum("ls,lsh->h", present.astype(np.float64), raw[:, 0].astype(np.float64))


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
    """Reads the plan's blocks one hidden state at a time ([L', 1, s, H]: the asked languages
    and the block's chunk rows), with one read of prefetch in a background thread.

    Iterating yields per block (i, cols, mask [L', s'], layers): `cols` the positions of the
    kept sentences along s (None = all); `layers` an iterator over the asked hidden states in
    the order asked (to be consumed before the next block). From an HDF5 store each read goes
    with `read_direct` into one of two small reused buffers (one layer of one block), through
    /embeddings opened again without HDF5's chunk cache (`_uncached_embeddings`): the bytes go
    from the file straight into the buffer. A fresh array per block (the former way: 1 GiB at 1000 languages x 13 hidden
    states x 105 sentences x 384) cost ~2 s of page faults per GiB on this VM, 10x the read
    itself. A buffer is overwritten two reads later. Arrays in memory (`ArraySource`) go
    through `block`. One pass: iterate once."""

    def __init__(self, src, plan, languages, layers: Sequence[int] | None = None):
        self.src, self.plan, self.languages = src, plan, languages
        self.mask_all = np.asarray(src.mask, bool)
        self.rows = None if languages is None else [src.index(l) for l in languages]
        self.layers = list(range(src.shape[1])) if layers is None else [int(k) for k in layers]
        self.file = self.dset = None                     # opened by __iter__
        dtype = np.dtype(src.dtype).newbyteorder("=")
        self._bufs = [np.empty(0, dtype), np.empty(0, dtype)]
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="babelmap-prefetch")
        self.read_seconds = 0.0

    def _runs(self) -> list[tuple[int, int, int]]:
        """(position in the output, first store row, count) of runs of consecutive rows."""
        if self.rows is None:
            return [(0, 0, self.src.shape[0])]
        runs: list[list[int]] = []
        for j, r in enumerate(self.rows):
            if runs and r == runs[-1][1] + runs[-1][2]:
                runs[-1][2] += 1
            else:
                runs.append([j, r, 1])
        return [tuple(x) for x in runs]

    def _read(self, n: int, i: int, k: int) -> np.ndarray:
        start, stop, _ = self.plan[i]
        t0 = time.perf_counter()
        if self.dset is None:
            raw = self.src.block(slice(start, stop), [k], self.languages)
        else:
            L = self.src.shape[0] if self.rows is None else len(self.rows)
            shape = (L, 1, stop - start, self.src.shape[3])
            size = int(np.prod(shape))
            slot = n % 2
            if self._bufs[slot].size < size:
                self._bufs[slot] = np.empty(size, self._bufs[slot].dtype)
            raw = self._bufs[slot][:size].reshape(shape)
            for j, r, c in self._runs_cache:
                self.dset.read_direct(raw[j:j + c], np.s_[r:r + c, k:k + 1, start:stop, :])
        self.read_seconds += time.perf_counter() - t0
        return raw

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None, np.ndarray, Iterator[np.ndarray]]]:
        units = [(i, k) for i in range(len(self.plan)) for k in self.layers]
        if not units:
            return
        self._runs_cache = self._runs()
        self.file, self.dset = _uncached_embeddings(self.src)
        state = {"n": 0, "fut": self.pool.submit(self._read, 0, *units[0])}

        def next_layer() -> np.ndarray:
            raw = state["fut"].result()
            state["n"] += 1
            if state["n"] < len(units):
                state["fut"] = self.pool.submit(self._read, state["n"], *units[state["n"]])
            return raw

        try:
            for i, (start, stop, local) in enumerate(self.plan):
                m = self.mask_all[:, start:stop] if self.rows is None else self.mask_all[self.rows, start:stop]
                if local is not None:
                    m = m[:, local]
                layers = (next_layer() for _ in self.layers)
                yield i, local, m, layers
                for _ in layers:                  # a consumer that stopped early: keep in step
                    pass
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            if self.file is not None:
                self.file.close()
                self.file = self.dset = None


def _uncached_embeddings(src):
    """(file, /embeddings) of the store opened again without HDF5's chunk cache, or (None, None)
    when `src` is not an HDF5 store (arrays in memory). HDF5 shares one chunk cache among all
    handles of a dataset in files opened through the same driver, so the Store's own handle
    (1 MiB cache, which one ~1 MiB chunk of all layers fills) would impose its cache: reading one
    layer then pulled whole chunks through it, 13x the bytes at 13 layers (measured 1.3 s of CPU
    against 0.2 s). Opened through the `stdio` driver the file gets its own shared state."""
    from babelmap.engine.store import Store
    if not isinstance(src, Store):
        return None, None
    import h5py
    f = h5py.File(src.path, "r", driver="stdio", rdcc_nbytes=0)
    return f, f["embeddings"]


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
    backend (CPU only): "hybrid" (default: fused Numba element-wise pass + BLAS syrk triangle,
    `HybridGram`; "torch" is its former name), "numpy" (NumPy + BLAS syrk) or "torch-all" (the
    GPU code path, `TorchGram`, run on the CPU); the GPU always uses TorchGram. See the module
    docstring for the memory bound. measure: "cosine-mean" here; "mexa" and "retrieval@K" go to
    `kernels.mexa.compute_alignment` with `backend` (numpy, numba or torch; "torch-all" means
    torch, "hybrid" its default) and `block_sentences` (same result format; `pivot` restricts to
    pairs with one language).
    """
    if measure != "cosine-mean":
        from babelmap.kernels.mexa import compute_alignment
        if center:
            raise BabelmapError(f"center is only available for cosine-mean, not {measure!r}")
        return compute_alignment(store, measure=measure, layers=layers, languages=languages,
                                 sentences=sentences, device=device, precision=precision, bootstrap=bootstrap,
                                 progress=progress, seed=seed, bootstrap_block=bootstrap_block, ci=ci,
                                 backend=_alignment_backend(backend), block_sentences=block_sentences,
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
    acc = None
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

        mean = None
        if center:
            mean = _mean_pass(src, plan, lang_arg, layer_pos, dev, backend, progress)

        reader = _Reader(src, plan, lang_arg, layer_pos)     # only the asked hidden states are read
        if backend == "torch-all":
            from babelmap.kernels.torch_kernels import TorchGram
            acc = TorchGram(L, K, precision, dev, mean)
        elif backend == "hybrid":
            acc = HybridGram(L, K, precision, mean)
        else:
            acc = NumpyGram(L, K, precision, mean)

        boot = groups_all = None
        unit = {}
        if bootstrap:
            from babelmap.kernels.bootstrap import BlockGrams, bootstrap_groups
            groups_all, unit = bootstrap_groups(src, selected, bootstrap_unit, documents, bootstrap_block)
            boot = BlockGrams(L, K, n_blocks=unit["bootstrap_groups"])
        t0 = time.perf_counter()
        pos = 0
        with _progress(len(selected), "similarity", progress) as bar:
            for _, cols, m, layers_of_block in reader:
                s = m.shape[1]
                groups = groups_all[pos:pos + s] if boot is not None else None
                parts = acc.add(layers_of_block, m, groups, cols)
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
        if acc is not None and hasattr(acc, "close"):
            acc.close()
        if owned:
            src.close()


def _alignment_backend(backend: str | None) -> str | None:
    """compute_similarity's `backend` for mexa / retrieval@K: "torch" and "torch-all" are the
    torch path of `kernels.mexa`, "numpy" and "numba" pass as they are, None or "hybrid" (the
    cosine-mean default's name) its default (Numba on the CPU)."""
    if backend in (None, "hybrid"):
        return None
    return "torch" if backend == "torch-all" else backend


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
    """sim = G / count (float64 -> float32) from G's upper triangles, mirrored; NaN where count
    is 0, diagonal 1 where count > 0 (one Numba pass: `numba_kernels.sim_from_upper`)."""
    from babelmap.kernels.numba_kernels import sim_from_upper
    return sim_from_upper(G, C)


def _mean_pass(src, plan, lang_arg, layer_pos, dev, backend, progress) -> np.ndarray:
    """Per-layer mean embedding over languages and present sentences (for center=True)."""
    from babelmap.kernels.torch_kernels import layer_sums
    H = src.shape[3]
    reader = _Reader(src, plan, lang_arg, layer_pos)
    total = np.zeros((len(reader.layers), H), np.float64)
    n = 0
    with _progress(sum((p[1] - p[0]) if p[2] is None else len(p[2]) for p in plan), "mean (center)",
                   progress) as bar:
        for _, cols, m, layers_of_block in reader:
            for kpos, raw in enumerate(layers_of_block):
                raw = raw if cols is None else raw[:, :, cols]
                total[kpos] += layer_sums(raw, m, [0], dev)[0] if backend == "torch-all" else layer_sum_np(raw, m)
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
