"""Numba kernels where BLAS does not fit, with torch twins for the GPU chosen automatically.

- `pool_ragged`: mean pooling of ragged packed token states (values [N_tokens, H] + offsets
  [n + 1], no padding), with an optional token mask and L2 normalisation of each pooled row.
  Padding a batch of very unequal sentences wastes memory and time; packed arrays do not.
- `paired_cosines`: per-sentence cosines of one language pair (the per-sentence similarity
  vector behind one cell of the matrix: for the bootstrap and a per-sentence view).
- `rank_rows`: average-tie ranks per row of a matrix (as `scipy.stats.rankdata(axis=1,
  nan_policy="omit")`), for Spearman correlations over thousands of languages at once.

Each function takes NumPy arrays (Numba, parallel over rows, float64 accumulators) or, with
`device="cuda"` or torch CUDA tensors as input, runs the torch version in `torch_kernels`
(same results to float32 tolerance). `device="auto"` follows the input: NumPy in, Numba.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload


# ---------------------------------------------------------------------------------------------
# Numba bodies
# ---------------------------------------------------------------------------------------------
@nb.njit(parallel=True, cache=True, fastmath=False)
def _pool_ragged_nb(values, offsets, mask, use_mask, normalize, out):
    n = offsets.shape[0] - 1
    H = values.shape[1]
    for i in nb.prange(n):
        acc = np.zeros(H, np.float64)
        cnt = 0
        for t in range(offsets[i], offsets[i + 1]):
            if use_mask and not mask[t]:
                continue
            for h in range(H):
                acc[h] += values[t, h]
            cnt += 1
        if cnt == 0:
            for h in range(H):
                out[i, h] = 0.0
            continue
        for h in range(H):
            acc[h] /= cnt
        scale = 1.0
        if normalize:
            ss = 0.0
            for h in range(H):
                ss += acc[h] * acc[h]
            scale = 1.0 / np.sqrt(ss) if ss > 0 else 0.0
        for h in range(H):
            out[i, h] = acc[h] * scale


@nb.njit(parallel=True, cache=True, fastmath=False)
def _paired_cosines_nb(a, b, present, out):
    S, H = a.shape
    for s in nb.prange(S):
        if not present[s]:
            out[s] = np.nan
            continue
        dot = 0.0
        na = 0.0
        nb_ = 0.0
        for h in range(H):
            x = np.float64(a[s, h])
            y = np.float64(b[s, h])
            dot += x * y
            na += x * x
            nb_ += y * y
        den = np.sqrt(na) * np.sqrt(nb_)
        out[s] = dot / den if den > 0 else 0.0


@nb.njit(parallel=True, cache=True)
def _rank_rows_nb(x, out):
    R, N = x.shape
    for r in nb.prange(R):
        row = x[r]
        order = np.argsort(row)            # NaN sorts last
        m = 0
        for j in range(N):
            if not np.isnan(row[j]):
                m += 1
        i = 0
        while i < m:
            j = i
            while j + 1 < m and row[order[j + 1]] == row[order[i]]:
                j += 1
            avg = (i + j) / 2.0 + 1.0
            for t in range(i, j + 1):
                out[r, order[t]] = avg
            i = j + 1
        for t in range(m, N):
            out[r, order[t]] = np.nan


@nb.njit(inline="always")
def _scale_row(out, l, j, H, ss):
    scale = 1.0 / np.sqrt(ss) if ss > 0 else 0.0
    for h in range(H):
        out[l, j, h] = out[l, j, h] * scale


@intrinsic
def half_to_float(typingctx, bits):
    """The float32 value of a float16 bit pattern (uint16): LLVM's `fpext half to float`, which
    x86 with F16C (and AVX-512) turns into vcvtph2ps, vectorised with the loop around it. Numba
    has no float16 type on the CPU; a 64K-entry lookup table (the former way) cost 2.8x the time."""
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


@nb.njit(cache=True)
def _halves_to_float(bits, out):
    for i in range(bits.shape[0]):
        out[i] = half_to_float(bits[i])


def _value(raw, l, k, c, h):
    """raw[l, k, c, h] as float64; float16 arrives as its uint16 bit pattern (chosen at typing)."""


@overload(_value, inline="always")
def _value_typed(raw, l, k, c, h):
    if raw.dtype == types.uint16:
        return lambda raw, l, k, c, h: np.float64(half_to_float(raw[l, k, c, h]))
    return lambda raw, l, k, c, h: np.float64(raw[l, k, c, h])


@nb.njit(inline="always")
def _normalise_row(raw, k, cols, present, mean, use_mean, out, l, j):
    H = out.shape[2]
    ss = 0.0
    if present[l, j]:
        c = cols[j]
        for h in range(H):
            v = _value(raw, l, k, c, h)
            if use_mean:
                v -= mean[h]
            out[l, j, h] = v
            w = np.float64(out[l, j, h])
            ss += w * w
    else:
        for h in range(H):
            out[l, j, h] = 0.0
    _scale_row(out, l, j, H, ss)


# `reassoc` lets LLVM vectorise the sum of squares (only its order changes: float64 sums of
# float32 values); NaN and inf still propagate (no nnan/ninf), which the NaN report relies on.
@nb.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})
def _normalise_layer_nb(raw, k, cols, present, mean, use_mean, out):
    L, s, H = out.shape
    for i in nb.prange(L * s):
        _normalise_row(raw, k, cols, present, mean, use_mean, out, i // s, i % s)


@nb.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _normalise_layer_1t(raw, k, cols, present, mean, use_mean, out):
    L, s, H = out.shape
    for i in range(L * s):
        _normalise_row(raw, k, cols, present, mean, use_mean, out, i // s, i % s)


@nb.njit(cache=True, nogil=True)
def _add_upper_nb(acc, tri):
    L = acc.shape[0]
    for i in range(L):
        for j in range(i, L):
            acc[i, j] += tri[i, j]


def add_upper(acc: np.ndarray, tri: np.ndarray) -> None:
    """acc[i, j] += tri[i, j] on the upper triangle (diagonal included) of [L, L] arrays, in
    place (acc float64, tri float32 or float64): half the work of `acc += tri`, without a
    temporary; one thread (waking a thread pool for ~1 ms of work costs more under load)."""
    _add_upper_nb(acc, tri)


@nb.njit(parallel=True, cache=True, nogil=True)
def _sim_from_upper_nb(G, C, out):
    K, L, _ = G.shape
    for t in nb.prange(K * L):
        k = t // L
        i = t - k * L
        out[k, i, i] = 1.0 if C[i, i] > 0 else np.nan
        for j in range(i + 1, L):
            c = C[i, j]
            v = np.float32(G[k, i, j] / c) if c > 0 else np.float32(np.nan)
            out[k, i, j] = v
            out[k, j, i] = v


def sim_from_upper(G: np.ndarray, C: np.ndarray) -> np.ndarray:
    """float32 [K, L, L] mean cosines from the upper triangles of the sums G [K, L, L] (float64;
    the strict lower part is not read) and the counts C [L, L]: G / C mirrored, NaN where C is
    0, the diagonal 1 (NaN for a language without sentences). One pass, no temporaries."""
    out = np.empty(G.shape, np.float32)
    _sim_from_upper_nb(np.ascontiguousarray(G), np.ascontiguousarray(C, dtype=np.float64), out)
    return out


def normalise_layer(raw: np.ndarray, k: int, present: np.ndarray, dtype=np.float32,
                    mean: np.ndarray | None = None, out: np.ndarray | None = None,
                    columns: np.ndarray | None = None, parallel: bool = True) -> np.ndarray:
    """Rows of hidden state k of a store block raw [L, K, s, H], L2-normalised (after
    subtracting `mean` [H] when given), missing rows (present False) zero: [L, s', H] in `dtype`.
    `columns`: the positions along raw's sentence axis to take (s' of them, default all), so a
    block read whole can be used in part without a copy; `present` is [L, s'].
    One fused pass (float16 decoded by the CPU's conversion instruction, norms summed in
    float64), on Numba's threads, or on the calling thread only (`parallel=False`: the GIL is
    released, so several Python threads can run it at once)."""
    L, _, s, H = raw.shape
    cols = np.arange(s, dtype=np.int64) if columns is None else np.ascontiguousarray(columns, dtype=np.int64)
    if out is None:
        out = np.empty((L, len(cols), H), dtype)
    raw = np.ascontiguousarray(raw)
    src = raw.view(np.uint16) if raw.dtype == np.float16 else raw
    if src.dtype not in (np.uint16, np.float32, np.float64):
        src = src.astype(np.float32)
    m = np.zeros(1, np.float64) if mean is None else np.ascontiguousarray(mean, dtype=np.float64)
    p = np.ascontiguousarray(present, dtype=np.bool_)
    (_normalise_layer_nb if parallel else _normalise_layer_1t)(src, int(k), cols, p, m, mean is not None, out)
    return out


# ---------------------------------------------------------------------------------------------
# BLAS syrk without the GIL (SciPy's own BLAS through scipy.linalg.cython_blas and ctypes;
# SciPy's Python wrappers hold the GIL during the call)
# ---------------------------------------------------------------------------------------------
def _cython_blas(name: str):
    """A ctypes function for SciPy's Fortran-convention BLAS routine `name` (all arguments by
    pointer: addresses), called with the GIL released."""
    import ctypes

    from scipy.linalg import cython_blas
    cap = cython_blas.__pyx_capi__[name]
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype, api.PyCapsule_GetName.argtypes = ctypes.c_char_p, [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    addr = api.PyCapsule_GetPointer(cap, api.PyCapsule_GetName(cap))
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 10)(addr)


_SYRK = {}


def syrk_upper_nogil(X: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out's upper triangle (diagonal included) := X X^T for a C-ordered X [L, n] (float32 or
    float64) and a C-ordered out [L, L] of the same dtype; the strict lower part is not
    written. BLAS syrk through ctypes, which releases the GIL during the call: several Python
    threads can each run one on their own part of the sentences (with BLAS itself on one
    thread). out's memory read in Fortran order is out^T, whose lower triangle is filled."""
    import ctypes
    if not (X.flags.c_contiguous and out.flags.c_contiguous and X.dtype == out.dtype
            and X.dtype in (np.float32, np.float64) and out.shape == (X.shape[0], X.shape[0])):
        raise ValueError("syrk_upper_nogil: X [L, n] and out [L, L], C-ordered, both float32 or float64")
    single = X.dtype == np.float32
    name = "ssyrk" if single else "dsyrk"
    if name not in _SYRK:
        _SYRK[name] = _cython_blas(name)
    scalar = ctypes.c_float if single else ctypes.c_double
    L, n = X.shape
    ints = (ctypes.c_int * 4)(L, n, n, L)                       # n, k, lda, ldc
    alpha, beta = scalar(1.0), scalar(0.0)
    uplo, trans = ctypes.c_char(b"L"), ctypes.c_char(b"T")
    step = ctypes.sizeof(ctypes.c_int)
    base = ctypes.addressof(ints)
    _SYRK[name](ctypes.addressof(uplo), ctypes.addressof(trans), base, base + step, ctypes.addressof(alpha),
                X.ctypes.data, base + 2 * step, ctypes.addressof(beta), out.ctypes.data, base + 3 * step)
    return out


# ---------------------------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------------------------
def _is_cuda_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and getattr(x, "is_cuda", False)


def _use_torch(device: str, *xs) -> bool:
    if device == "auto":
        return any(_is_cuda_tensor(x) for x in xs)
    if device.startswith("cuda"):
        from babelmap.kernels.torch_kernels import resolve_device
        resolve_device(device)
        return True
    return False


def _np(x) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _float(x) -> np.ndarray:
    """Contiguous float32/float64 (Numba has no float16 on the CPU: widen to float32)."""
    a = _np(x)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def pool_ragged(values, offsets, mask=None, normalize: bool = True, device: str = "auto"):
    """Mean of the (unmasked) token rows of each segment values[offsets[i]:offsets[i+1]],
    then L2-normalised when `normalize`. Returns [n, H] float32; a segment with no (unmasked)
    token gives a zero row (a missing sentence)."""
    if _use_torch(device, values):
        from babelmap.kernels.torch_kernels import pool_ragged_torch
        return pool_ragged_torch(values, offsets, mask, normalize, "cuda" if device == "auto" else device)
    v = _float(values)
    off = np.ascontiguousarray(_np(offsets), dtype=np.int64)
    if off.ndim != 1 or off[0] != 0 or off[-1] != v.shape[0] or np.any(np.diff(off) < 0):
        raise ValueError(f"offsets must rise from 0 to N_tokens={v.shape[0]}")
    m = np.ones(1, np.bool_) if mask is None else np.ascontiguousarray(_np(mask), dtype=np.bool_)
    if mask is not None and m.shape != (v.shape[0],):
        raise ValueError(f"mask must be [{v.shape[0]}], got {m.shape}")
    out = np.empty((len(off) - 1, v.shape[1]), np.float32)
    _pool_ragged_nb(v, off, m, mask is not None, bool(normalize), out)
    return out


def paired_cosines(a, b, mask_a=None, mask_b=None, device: str = "auto"):
    """cos(a[s], b[s]) for every sentence s (float64 on the CPU); NaN where either side is
    missing (mask False); 0 for a present all-zero row."""
    if _use_torch(device, a, b):
        from babelmap.kernels.torch_kernels import paired_cosines_torch
        return paired_cosines_torch(a, b, mask_a, mask_b, "cuda" if device == "auto" else device)
    A, B = _float(a), _float(b)
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(f"a and b must both be [S, H], got {A.shape} and {B.shape}")
    present = np.ones(A.shape[0], np.bool_)
    if mask_a is not None:
        present &= _np(mask_a).astype(bool)
    if mask_b is not None:
        present &= _np(mask_b).astype(bool)
    out = np.empty(A.shape[0], np.float64)
    if A.dtype != B.dtype:
        A, B = A.astype(np.float64), B.astype(np.float64)
    _paired_cosines_nb(A, B, present, out)
    return out


def rank_rows(x, device: str = "auto"):
    """Average-tie ranks (1-based) along each row of x [R, N]; NaN stays NaN and is left out of
    the ranking (scipy.stats.rankdata(x, axis=1, nan_policy="omit")). Returns float64 (CPU)."""
    if _use_torch(device, x):
        from babelmap.kernels.torch_kernels import rank_rows_torch
        return rank_rows_torch(x, "cuda" if device == "auto" else device)
    X = np.asarray(_np(x), dtype=np.float64)
    one = X.ndim == 1
    X = np.ascontiguousarray(np.atleast_2d(X))
    out = np.empty_like(X)
    _rank_rows_nb(X, out)
    return out[0] if one else out


def spearman_rows(x, y, device: str = "auto") -> np.ndarray:
    """Spearman correlation of matching rows of x and y [R, N] over the columns where both
    have a value (rank, then Pearson): one number per row, NaN when fewer than 3 pairs."""
    X, Y = np.asarray(_np(x), np.float64), np.asarray(_np(y), np.float64)
    both = ~(np.isnan(X) | np.isnan(Y))
    X, Y = np.where(both, X, np.nan), np.where(both, Y, np.nan)
    rx, ry = _np(rank_rows(X, device)), _np(rank_rows(Y, device))
    n = both.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = np.nansum(rx, 1) / n, np.nansum(ry, 1) / n
        dx, dy = np.where(both, rx - mx[:, None], 0), np.where(both, ry - my[:, None], 0)
        r = (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    return np.where(n >= 3, r, np.nan)
