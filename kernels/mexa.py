"""MEXA alignment and sentence retrieval for every language pair and layer, streamed from a store.

For hidden state k and languages a, b with shared sentences P = P(a, b) (n = |P|), let
M[i, j] = cos(e_k(a, i), e_k(b, j)) over i, j in P (rows: a, columns: b). Per sentence i:

    row_i = #{j in P, j != i : M[i, j] >= M[i, i]}     (b's sentences at least as close to a's i)
    col_i = #{j in P, j != i : M[j, i] >= M[i, i]}     (a's sentences at least as close to b's i)

- `mexa`: the fraction of i with row_i = col_i = 0, i.e. the translation is the *strict*
  maximum of both its row and its column (MEXA, Kargaran et al. 2024, `cisnlp/MEXA`
  compute_mexa.py: `diag > max(row without diag)` and the same for the column). A tie is not
  a hit, as there. Symmetric in a and b.
- `retrieval@K`: one direction, queries in the row language a, candidates in b: the fraction
  of i with row_i < K (top-K accuracy, ties counted against the query: a candidate as close as
  the translation ranks before it). sim[a, b] = a -> b, sim[b, a] = b -> a.

Missing sentences: the reference assumes fully parallel files and truncates to the shorter
one; here a pair is scored on the sentences both languages have (P(a, b)), candidates
included, so `count` = |P| as for cosine-mean; a pair sharing no sentence is NaN; with one
shared sentence the translation is trivially the strict maximum (1.0). The diagonal is 1 by
definition where the language has sentences (as for cosine-mean). With `pivot`, only pairs
with the pivot are computed (L - 1 pairs instead of L(L-1)/2); other pairs have count 0, NaN.

Cost and memory: one [n, n] product per pair and layer (n^2 H multiply-adds; all pairs: L^2/2
of them), the S x S block of one pair (CPU) or of a bounded batch of pairs (torch, at most
`pair_block_bytes`) at a time, never all pairs at once; a layer of one group of languages
normalised in memory (groups of at most `lang_block_bytes`); per-group hit counts per pair
for the bootstrap (kernels.bootstrap, documents or sentence blocks).
"""
from __future__ import annotations

import re
import time
from typing import Sequence

import numba as nb
import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.kernels.result import SimilarityResult

_MEASURE = re.compile(r"^(mexa|retrieval@([1-9][0-9]*))$")


def parse_measure(name: str) -> tuple[str, int]:
    """("mexa", 0) or ("retrieval", K) from "mexa" / "retrieval@K"; anything else is an error."""
    m = _MEASURE.match(str(name).strip().lower())
    if not m:
        raise BabelmapError(f"unknown measure {name!r}: use cosine-mean, mexa or retrieval@K (e.g. retrieval@1)")
    return ("mexa", 0) if m.group(1) == "mexa" else ("retrieval", int(m.group(2)))


# ---------------------------------------------------------------------------------------------
# the per-pair counts: three backends, same numbers
# ---------------------------------------------------------------------------------------------
@nb.njit(parallel=True, cache=True)
def _row_ge_nb(M, out):
    n = M.shape[0]
    for i in nb.prange(n):
        d = M[i, i]
        c = 0
        for j in range(n):
            if j != i and M[i, j] >= d:
                c += 1
        out[i] = c


def rank_counts_numba(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row_i, col_i) of a dense [n, n] similarity matrix (see the module docstring)."""
    n = M.shape[0]
    row, col = np.empty(n, np.int64), np.empty(n, np.int64)
    _row_ge_nb(np.ascontiguousarray(M), row)
    _row_ge_nb(np.ascontiguousarray(M.T), col)
    return row, col


def rank_counts_numpy(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of `rank_counts_numba` (the diagonal always satisfies >=, hence the - 1)."""
    d = np.diagonal(M)
    return (M >= d[:, None]).sum(1) - 1, (M >= d[None, :]).sum(0) - 1


def rank_counts_torch(Xa, Xb, P):
    """Batched torch version over pairs: Xa, Xb [p, S, H] normalised (missing rows zero), P [p, S]
    bool (shared sentences). Returns (row, col) [p, S] int64, meaningful where P."""
    import torch
    M = torch.bmm(Xa, Xb.transpose(1, 2))                             # [p, S, S]
    d = torch.diagonal(M, dim1=1, dim2=2)                               # [p, S]
    row = ((M >= d[:, :, None]) & P[:, None, :]).sum(2) - 1
    col = ((M >= d[:, None, :]) & P[:, :, None]).sum(1) - 1
    return row, col


# ---------------------------------------------------------------------------------------------
# reading one layer of a group of languages, normalised
# ---------------------------------------------------------------------------------------------
def _layer_rows(src, plan, langs: list[str], layer: int, pos: int, dtype, nan_seen: dict
                ) -> tuple[np.ndarray, np.ndarray]:
    """(X [g, S', H] L2-normalised rows of hidden state `layer` (at `pos` in the store),
    missing rows zero; mask [g, S']).
    Rows holding NaN are zeroed and recorded in `nan_seen[(language, layer)] = sentences`."""
    from babelmap.kernels.numba_kernels import normalise_layer
    mask_all = np.asarray(src.mask, bool)
    rows = [src.index(l) for l in langs]
    xs, ms = [], []
    for start, stop, local in plan:
        raw = src.block(slice(start, stop), [pos], langs)                # [g, 1, s, H]
        m = mask_all[rows, start:stop]
        if local is not None:
            raw, m = raw[:, :, local], m[:, local]
        xs.append(normalise_layer(raw, 0, m, dtype))
        ms.append(m)
    H = src.shape[3]
    if not xs:
        return np.zeros((len(langs), 0, H), dtype), np.zeros((len(langs), 0), bool)
    X, M = np.concatenate(xs, axis=1), np.concatenate(ms, axis=1)
    nan_rows = np.isnan(X).any(axis=2) & M
    if nan_rows.any():                          # a NaN would compare False everywhere: a false hit
        X[nan_rows] = 0
        for i in np.flatnonzero(nan_rows.any(axis=1)):
            nan_seen.setdefault((langs[i], int(layer)), int(nan_rows[i].sum()))
    return X, M


def _groups(n: int, per: int) -> list[range]:
    return [range(i, min(n, i + per)) for i in range(0, n, per)]


# ---------------------------------------------------------------------------------------------
# the public kernel
# ---------------------------------------------------------------------------------------------
def compute_alignment(store, *, measure: str = "mexa", **kwargs) -> SimilarityResult:
    """One alignment measure ("mexa" or "retrieval@K") as a SimilarityResult; see
    `compute_alignment_measures` for the options."""
    return compute_alignment_measures(store, measures=[measure], **kwargs)[measure]


def compute_alignment_measures(store, *, measures: Sequence[str] = ("mexa",), layers: Sequence[int] | None = None,
                               languages: Sequence[str] | None = None, sentences=None, pivot: str | None = None,
                               device: str = "auto", precision: str = "float32", backend: str | None = None,
                               bootstrap: int = 0, bootstrap_unit: str = "auto", documents: Sequence | None = None,
                               bootstrap_block: int = 16, seed: int = 0, ci: float = 0.95,
                               block_sentences: int | None = None, pair_block_bytes: int = 256 << 20,
                               lang_block_bytes: int = 1 << 30, progress: bool = True
                               ) -> dict[str, SimilarityResult]:
    """MEXA and/or retrieval@K for all selected layers and language pairs (or pairs with `pivot`),
    from one pass over the pairs: {measure name: SimilarityResult} in the cosine-mean format
    (values in `sim`, `count`, the measure in attrs; bootstrap `stderr`/`ci_*` when B > 0).

    backend: "numpy" (vectorised NumPy counts), "numba" (default on the CPU: Numba counts) or
    "torch" (batched over pairs; the GPU path, also on the CPU); each pair's product is a BLAS
    GEMM in `precision`. See the module docstring for the definitions, ties and missing sentences.
    """
    from babelmap.kernels.bootstrap import BlockGrams, bootstrap_groups
    from babelmap.kernels.similarity import (_open, _progress, default_block_sentences, plan_blocks,
                                             resolve_languages, resolve_layers, select_sentences)
    from babelmap.kernels.torch_kernels import resolve_device
    parsed = {m: parse_measure(m) for m in measures}
    if precision not in ("float32", "float64"):
        raise BabelmapError(f"precision must be float32 or float64, got {precision!r}")
    dev = resolve_device(device)
    backend = "torch" if dev != "cpu" else (backend or "numba")
    if backend not in ("numpy", "numba", "torch"):
        raise BabelmapError(f"backend must be numpy, numba or torch for {', '.join(measures)}, got {backend!r}")
    dtype = np.float64 if precision == "float64" else np.float32
    src, owned = _open(store)
    try:
        L_all, K_all, S_all, H = src.shape
        langs, _ = resolve_languages(src, languages)
        layer_list, layer_pos = resolve_layers(src, layers)
        selected = select_sentences(src.sentence_ids, sentences)
        chunk = int(getattr(src, "chunk_sentences", 64) or 64)
        bs = block_sentences or default_block_sentences(len(langs), 1, H, np.dtype(src.dtype).itemsize, chunk)
        plan = plan_blocks(selected, chunk, bs)
        L, K, S = len(langs), len(layer_list), len(selected)
        if pivot is not None and pivot not in langs:
            src.index(pivot)
            raise BabelmapError(f"pivot {pivot!r} is not among the languages asked for")
        per = max(1, int(lang_block_bytes // max(1, S * H * np.dtype(dtype).itemsize)))
        if pivot is None:
            lgroups = _groups(L, per)
            gpairs = [(A, B) for ai, A in enumerate(lgroups) for B in lgroups[ai:]]
        else:
            p = langs.index(pivot)
            others = [i for i in range(L) if i != p]
            pa = [p]  # one list for every group, so the pivot's rows are read once per layer (cache by id)
            gpairs = [(pa, [others[j] for j in g]) for g in _groups(len(others), per)]

        mask = np.asarray(src.mask, bool)[[src.index(l) for l in langs]][:, selected]      # [L, S]
        C = (mask.astype(np.float64) @ mask.T.astype(np.float64)).round().astype(np.int64)
        computed = np.zeros((L, L), bool)
        hits = {m: np.zeros((K, L, L), np.float64) for m in measures}
        groups = boot = None
        unit = {}
        if bootstrap:
            groups, unit = bootstrap_groups(src, selected, bootstrap_unit, documents, bootstrap_block)
            ng = unit["bootstrap_groups"]
            boot = {m: BlockGrams(L, K, ng, symmetric=parsed[m][0] == "mexa") for m in measures}

        nan_seen: dict = {}
        n_pairs = sum(len(A) * len(B) - (len(A) * (len(A) + 1) // 2 if A is B else 0) for A, B in gpairs)
        t0 = time.perf_counter()
        with _progress(n_pairs * K, f"{'/'.join(measures)}", progress) as bar:
            for kpos, layer in enumerate(layer_list):
                cache = {}
                for A, B in gpairs:
                    XA, MA = cache.get(id(A)) or _layer_rows(src, plan, [langs[i] for i in A], layer, layer_pos[kpos], dtype, nan_seen)
                    cache = {id(A): (XA, MA)}
                    XB, MB = (XA, MA) if A is B else _layer_rows(src, plan, [langs[i] for i in B], layer, layer_pos[kpos], dtype, nan_seen)
                    pairs = [(ia, ib) for ia in range(len(A)) for ib in range(len(B))
                             if not (A is B and ib <= ia)]
                    for (ia, ib), row, col, P in _pair_counts(XA, XB, MA, MB, pairs, backend, dev,
                                                              pair_block_bytes):
                        a, b = A[ia], B[ib]
                        computed[a, b] = computed[b, a] = True
                        _accumulate(parsed, hits, boot, kpos, a, b, row, col, P, groups)
                        bar.update(1)
        wall = time.perf_counter() - t0
        base_attrs = dict(src.attrs)
        store_path = str(getattr(src, "path", "") or "")
    finally:
        if owned:
            src.close()

    Cm = np.where(computed | np.eye(L, dtype=bool), C, 0)
    nan_inputs = [{"language": l, "layer": k, "sentences": n} for (l, k), n in sorted(nan_seen.items())]
    if nan_inputs:
        import logging
        for d in nan_inputs:
            logging.getLogger("babelmap").warning(
                "the store holds NaN in %s at layer %d (%d sentences): its %s values at that layer are NaN",
                d["language"], d["layer"], d["sentences"], "/".join(measures))
    out = {}
    for m in measures:
        kind, k = parsed[m]
        with np.errstate(invalid="ignore", divide="ignore"):
            sim = np.where(Cm[None] > 0, hits[m] / np.maximum(Cm[None], 1), np.nan)
        for dct in nan_inputs:
            kp, a = layer_list.index(dct["layer"]), langs.index(dct["language"])
            sim[kp, a, :] = sim[kp, :, a] = np.nan
        d = np.arange(L)
        sim[:, d, d] = np.where(Cm[d, d] > 0, 1.0, np.nan)
        attrs = dict(base_attrs)
        if nan_inputs:
            attrs["nan_inputs"] = nan_inputs
        attrs.update(measure=m, precision=precision, device=dev, backend=backend, n_sentences=int(S),
                     store=store_path, bootstrap=int(bootstrap),
                     pivot=pivot or "", seconds=round(wall, 3),
                     nan_policy="sim is NaN where count is 0" + (" (pairs without the pivot: count 0)"
                                                                  if pivot else ""),
                     definition=("fraction of shared sentences whose translation is the strict maximum of "
                                 "its row and column of the cosine matrix (ties are not hits)") if kind == "mexa"
                     else (f"top-{k} retrieval accuracy, queries in the row language, candidates the shared "
                           "sentences of the column language (ties counted against)"))
        stderr = ci_low = ci_high = None
        if boot is not None:
            stderr, ci_low, ci_high = boot[m].resample(bootstrap, seed=seed, ci=ci, progress=progress)
            attrs.update(unit, bootstrap_seed=int(seed), ci_level=float(ci))
            if pivot:
                for arr in (stderr, ci_low, ci_high):
                    arr[:, ~(computed | np.eye(L, dtype=bool))] = np.nan
        out[m] = SimilarityResult(langs, layer_list, sim.astype(np.float32), Cm.astype(np.int32),
                                  stderr, ci_low, ci_high, attrs)
    return out


def _pair_counts(XA, XB, MA, MB, pairs, backend, dev, pair_block_bytes):
    """Yield ((ia, ib), row, col, P) per pair: counts over the shared sentences P (bool [S]);
    row/col are given for the P positions only, in order."""
    if backend != "torch":
        counts = rank_counts_numba if backend == "numba" else rank_counts_numpy
        for ia, ib in pairs:
            P = MA[ia] & MB[ib]
            if not P.any():
                yield (ia, ib), np.zeros(0, np.int64), np.zeros(0, np.int64), P
                continue
            M = XA[ia][P] @ XB[ib][P].T
            row, col = counts(M)
            yield (ia, ib), row, col, P
        return
    import torch
    from babelmap.kernels.torch_kernels import _no_tf32
    _no_tf32()
    S = XA.shape[1]
    per = max(1, int(pair_block_bytes // max(1, 3 * S * S * 4)))
    tA = torch.from_numpy(XA).to(dev)
    tB = tA if XB is XA else torch.from_numpy(XB).to(dev)
    mA = torch.from_numpy(MA).to(dev)
    mB = mA if MB is MA else torch.from_numpy(MB).to(dev)
    for p0 in range(0, len(pairs), per):
        chunk = pairs[p0:p0 + per]
        ia = torch.tensor([p[0] for p in chunk], device=dev)
        ib = torch.tensor([p[1] for p in chunk], device=dev)
        P = mA[ia] & mB[ib]
        row, col = rank_counts_torch(tA[ia], tB[ib], P)
        row, col, P = row.cpu().numpy(), col.cpu().numpy(), P.cpu().numpy()
        for j, pr in enumerate(chunk):
            yield pr, row[j][P[j]], col[j][P[j]], P[j]


def _accumulate(parsed, hits, boot, kpos, a, b, row, col, P, groups):
    """Add one pair's hits (and per-group hits for the bootstrap) for every measure."""
    g = None if groups is None else groups[P]
    for m, (kind, k) in parsed.items():
        if kind == "mexa":
            h = ((row == 0) & (col == 0)).astype(np.float64)
            hits[m][kpos, a, b] += h.sum()
            hits[m][kpos, b, a] += h.sum()
            dirs = [(a, b, h)]
        else:
            hab, hba = (row < k).astype(np.float64), (col < k).astype(np.float64)
            hits[m][kpos, a, b] += hab.sum()
            hits[m][kpos, b, a] += hba.sum()
            dirs = [(a, b, hab), (b, a, hba)]
        if boot is not None:
            nb_ = boot[m].n_blocks
            cnt = np.bincount(g, minlength=nb_).astype(np.float64) if kpos == 0 else None
            for x, y, h in dirs:
                boot[m].add_pair(kpos, x, y, np.bincount(g, weights=h, minlength=nb_),
                                 cnt)
