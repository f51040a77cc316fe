"""Representation change between two stores: CKA per language and layer (issue 11).

Two stores of the same corpus from two checkpoints of one architecture (a base model and a
fine-tuned copy) give, for each language and hidden state k, two sentence-embedding matrices
X, Y [n, H] over the n sentences present in both. This module measures how far Y is from X:

- linear CKA (Kornblith et al. 2019): ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), c = centred;
- debiased linear CKA: the same ratio built from the unbiased HSIC estimator of Song et al.
  (2012), as used by Nguyen, Raghu and Kornblith (2021);
- RBF CKA (optional): Gaussian-kernel Gram matrices, bandwidth from the median heuristic;
- the mean cosine between matched embeddings cos(x_i, y_i);

and `change = 1 - CKA`.

Feature-space streaming. Linear and debiased CKA never form an n x n matrix. For every
(language, layer) we accumulate over sentence blocks, after subtracting a per-(language,
layer) shift vector (the first present row; it keeps the sums small and every quantity below
is exactly shift-invariant; a constant representation, e.g. CLS pooling at hidden state 0,
becomes exactly zero and gets CKA = NaN):

    n, sx = X^T 1, sy = Y^T 1                          (counts, column sums)
    Sxy = X^T Y, Sxx = X^T X, Syy = Y^T Y              (H x H, batched with torch.bmm)
    a_i = ||x_i||^2, b_i = ||y_i||^2                   (row norms)
    sum a, sum b, sum a^2, sum b^2, sum a*b            (scalars)
    X^T a, X^T b, Y^T a, Y^T b                         (H-vectors)

Biased: Xc^T Yc = Sxy - sx sy^T / n (likewise Sxx, Syy), so linear CKA needs only the H x H sums.
Debiased: with K = X X^T, L = Y Y^T and K~, L~ their copies with zeroed diagonal,

    HSIC_u(K, L) = [tr(K~L~) + (1'K~1)(1'L~1)/((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))
    tr(K~L~)  = ||Sxy||_F^2 - sum a*b
    1'K~1     = ||sx||^2 - sum a,        1'L~1 = ||sy||^2 - sum b
    1'K~L~1   = (X sx - a)'(Y sy - b) = sx' Sxy sy - sx'(X^T b) - (Y^T a)' sy + sum a*b

and HSIC_u(K, K), HSIC_u(L, L) the same with (X, X), (Y, Y). The unbiased estimator is
invariant to translating the features (it is a U-statistic of a translation-invariant
quantity), so no centring is needed. It needs n >= 4; below that the debiased value is NaN.

Costs. Linear/debiased: 3 H x H x n multiply-adds per (language, layer) (vs 2 n x n x H for
the Gram form, so the feature form wins whenever n > 1.5 H), memory 3 H^2 accumulators per
(language, layer) in flight: languages are processed in groups sized to `memory_gb`, all
layers and all languages of a group in one bmm. RBF needs the n x n Gram matrices of each
language and layer: O(n^2 H) time and O(n^2) memory per layer (n = 10,000 sentences is
800 MB per float64 Gram), computed one language at a time, all of its sentences at once.

Precision: accumulation in `precision` (float32 by default; float64 on request), TF32 off on
CUDA; the final combination (centring corrections, norms, ratios) is always float64.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.errors import StoreError
from babelmap.engine.store import PROVENANCE_KEYS, Store, open_store

FORMAT = "babelmap.cka"
MEASURES = ("cka_linear", "cka_debiased", "cka_rbf", "cosine")


# --------------------------------------------------------------------------------------------
# result type
# --------------------------------------------------------------------------------------------
@dataclass
class CKAResult:
    """Per layer and language: CKA between two stores' embeddings (arrays are [K', L] float64).

    `count[L]` = sentences present in both stores for that language. `attrs` holds both
    stores' provenance as `base_<key>` / `tuned_<key>` plus the settings of the computation.
    """

    languages: list[str]
    layers: list[int]
    cka_linear: np.ndarray
    cka_debiased: np.ndarray
    cosine: np.ndarray
    count: np.ndarray
    cka_rbf: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.languages = list(self.languages)
        self.layers = [int(k) for k in self.layers]
        shape = (len(self.layers), len(self.languages))
        for name in MEASURES:
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != shape:
                raise ValueError(f"{name} must be {list(shape)} [layers, languages], got {list(arr.shape)}")
            setattr(self, name, arr)
        self.count = np.asarray(self.count, dtype=np.int64)
        self._index = {l: i for i, l in enumerate(self.languages)}

    def change(self, measure: str = "cka_linear") -> np.ndarray:
        """1 - `measure` (cka_linear, cka_debiased, cka_rbf, or cosine: 1 - the mean matched
        cosine), [K', L]."""
        if measure not in MEASURES:
            raise ValueError(f"change is defined for {', '.join(MEASURES)}, not {measure!r}")
        arr = getattr(self, measure)
        if arr is None:
            raise ValueError(f"{measure} was not computed (run compare with --rbf)")
        return 1.0 - arr

    def get(self, lang: str, layer: int, measure: str = "cka_linear") -> float:
        """One value: `measure` for `lang` at hidden state `layer`."""
        arr = getattr(self, measure)
        if arr is None:
            raise ValueError(f"{measure} was not computed")
        return float(arr[self.layers.index(int(layer)), self._index[lang]])

    def to_pandas(self):
        """Long table: one row per (language, layer) with every measure, change and count."""
        import pandas as pd
        K, L = len(self.layers), len(self.languages)
        data = {"language": np.tile(np.array(self.languages, dtype=object), K),
                "layer": np.repeat(np.array(self.layers), L)}
        for name in MEASURES:
            arr = getattr(self, name)
            if arr is not None:
                data[name] = arr.reshape(-1)
        data["change_linear"] = 1.0 - self.cka_linear.reshape(-1)
        data["change_debiased"] = 1.0 - self.cka_debiased.reshape(-1)
        if self.cka_rbf is not None:
            data["change_rbf"] = 1.0 - self.cka_rbf.reshape(-1)
        data["change_cosine"] = 1.0 - self.cosine.reshape(-1)
        data["count"] = np.tile(self.count, K)
        return pd.DataFrame(data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write HDF5 (`/languages`, `/layers`, `/cka_*`, `/cosine`, `/count`, attrs) atomically."""
        import h5py
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        s = h5py.string_dtype("utf-8")
        try:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("languages", data=np.array(self.languages, dtype=object), dtype=s)
                f.create_dataset("layers", data=np.array(self.layers, dtype=np.int64))
                for name in MEASURES:
                    arr = getattr(self, name)
                    if arr is not None:
                        f.create_dataset(name, data=arr)
                f.create_dataset("count", data=self.count)
                f.attrs["format"] = FORMAT
                for k, v in self.attrs.items():
                    f.attrs[k] = "" if v is None else v
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CKAResult":
        """Read a file written by `save`."""
        import h5py
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no CKA result at {path}")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise StoreError(f"{path} is not a babelmap CKA result (format {f.attrs.get('format')!r})")
            dec = lambda a: [x.decode() if isinstance(x, bytes) else x for x in a]  # noqa: E731
            arrays = {name: (f[name][()] if name in f else None) for name in MEASURES}
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items() if k != "format"}
            return cls(dec(f["languages"][()]), list(f["layers"][()]), arrays["cka_linear"],
                       arrays["cka_debiased"], arrays["cosine"], f["count"][()], arrays["cka_rbf"], attrs)

    @classmethod
    def concat(cls, results: Sequence["CKAResult"]) -> "CKAResult":
        """Join results over disjoint languages at the same layers (e.g. stores extracted in
        language chunks) into one; attributes of the first, with `parts` = how many joined."""
        if not results:
            raise ValueError("nothing to join")
        first = results[0]
        seen: set[str] = set()
        for r in results:
            if r.layers != first.layers:
                raise ValueError(f"results at other layers ({r.layers} vs {first.layers}) cannot be joined")
            if (r.cka_rbf is None) != (first.cka_rbf is None):
                raise ValueError("some results have RBF CKA and some do not")
            dup = seen & set(r.languages)
            if dup:
                raise ValueError(f"languages in more than one result: {', '.join(sorted(dup)[:5])}")
            seen |= set(r.languages)
        cat = lambda name: (None if getattr(first, name) is None  # noqa: E731
                            else np.concatenate([getattr(r, name) for r in results], axis=1))
        return cls([l for r in results for l in r.languages], list(first.layers), cat("cka_linear"),
                   cat("cka_debiased"), cat("cosine"), np.concatenate([r.count for r in results]),
                   cat("cka_rbf"), dict(first.attrs, parts=len(results)))

    def __repr__(self) -> str:
        return (f"<CKAResult: {len(self.languages)} languages x {len(self.layers)} layers"
                f"{', rbf' if self.cka_rbf is not None else ''}>")


# --------------------------------------------------------------------------------------------
# one pair of matrices (NumPy, float64): convenient for users and small data
# --------------------------------------------------------------------------------------------
def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two [n, H] matrices (rows matched), feature-space form, float64."""
    return float(_finish(_moments_np(x, y))["cka_linear"][0])


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA (unbiased HSIC estimator) of two [n, H] matrices, float64."""
    return float(_finish(_moments_np(x, y))["cka_debiased"][0])


def rbf_cka(x: np.ndarray, y: np.ndarray, sigma: float | None = None, threshold: float = 1.0) -> float:
    """RBF-kernel CKA of two [n, H] matrices (n x n Grams, float64). `sigma` None = median
    heuristic per matrix: sigma^2 = threshold^2 * median of all squared distances (the
    convention of Kornblith et al.'s reference code, diagonal zeros included)."""
    import torch
    t = torch.as_tensor
    out = _rbf_cka_torch(t(np.asarray(x, np.float64))[None], t(np.asarray(y, np.float64))[None], sigma, threshold)
    return float(out[0])


def _moments_np(x: np.ndarray, y: np.ndarray) -> dict:
    import torch
    x = torch.as_tensor(np.asarray(x, np.float64))[None]
    y = torch.as_tensor(np.asarray(y, np.float64))[None]
    acc = _Accumulator(1, x.shape[-1], torch.float64, torch.device("cpu"), hidden_y=y.shape[-1])
    acc.update(x, y, torch.ones(x.shape[:2], dtype=torch.float64))
    return acc.reduce()


# --------------------------------------------------------------------------------------------
# streamed, batched accumulation (torch, CPU or CUDA)
# --------------------------------------------------------------------------------------------
class _Accumulator:
    """Sums over sentence blocks for B (language, layer) pairs at once; see the module docstring."""

    def __init__(self, batch: int, hidden: int, dtype, device, hidden_y: int | None = None):
        import torch
        z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        B, H, G = batch, hidden, hidden if hidden_y is None else hidden_y
        self.dtype, self.device = dtype, device
        self.shift_x, self.shift_y = z(B, H), z(B, G)
        self.has_shift = torch.zeros(B, dtype=torch.bool, device=device)
        self.n = z(B)
        self.sx, self.sy = z(B, H), z(B, G)
        self.Sxy, self.Sxx, self.Syy = z(B, H, G), z(B, H, H), z(B, G, G)
        self.sa, self.sb, self.saa, self.sbb, self.sab = z(B), z(B), z(B), z(B), z(B)
        self.Xa, self.Xb, self.Ya, self.Yb = z(B, H), z(B, H), z(B, G), z(B, G)
        self.cos = z(B) if G == H else torch.full((B,), float("nan"), dtype=dtype, device=device)

    def update(self, x, y, m) -> None:
        """x, y [B, s, H] raw embeddings (any float dtype), m [B, s] 1 where the sentence is in both."""
        import torch
        x = x.to(self.device)  # converted to self.dtype by the shift below (one pass)
        y = y.to(self.device)
        m = m.to(self.device, self.dtype)
        cnt = m.sum(1)
        # shift: the first present row (exactly invariant, keeps the sums well scaled, and a
        # constant representation becomes exactly 0, so its CKA is NaN rather than noise)
        new = (~self.has_shift) & (cnt > 0)
        if bool(new.any()):
            first = m.argmax(1)
            rows = torch.arange(x.shape[0], device=x.device)
            self.shift_x[new] = x[rows, first][new].to(self.dtype)
            self.shift_y[new] = y[rows, first][new].to(self.dtype)
            self.has_shift |= new
        # shift (new tensors in self.dtype), then mask in place
        x = torch.sub(x.to(self.dtype) if x.dtype.itemsize > self.dtype.itemsize else x, self.shift_x[:, None, :])
        y = torch.sub(y.to(self.dtype) if y.dtype.itemsize > self.dtype.itemsize else y, self.shift_y[:, None, :])
        if not bool((m == 1).all()):
            mm = m[..., None]
            x.mul_(mm)
            y.mul_(mm)
        a = x.norm(dim=-1).square_()  # row norms of the shifted rows
        b = y.norm(dim=-1).square_()
        # cosine of the raw rows (x' + sx, y' + sy), from the shifted ones: only the
        # rowwise x'.y' is a new pass; x'.sx, x'.sy, y'.sx, y'.sy are thin matmuls
        if x.shape[-1] == y.shape[-1]:
            sxy = torch.stack([self.shift_x, self.shift_y], 2)  # [B, H, 2]
            xs = torch.bmm(x, sxy)  # [B, s, 2]: x'.sx, x'.sy
            ys = torch.bmm(y, sxy)  # y'.sx, y'.sy
            ssx = (self.shift_x * self.shift_x).sum(-1, keepdim=True)
            ssy = (self.shift_y * self.shift_y).sum(-1, keepdim=True)
            sxsy = (self.shift_x * self.shift_y).sum(-1, keepdim=True)
            nx2 = a + 2 * xs[..., 0] + ssx
            ny2 = b + 2 * ys[..., 1] + ssy
            num = torch.linalg.vecdot(x, y) + xs[..., 1] + ys[..., 0] + sxsy
            den = (nx2 * ny2).clamp_min(0).sqrt().clamp_min(torch.finfo(self.dtype).tiny)
            self.cos += (num / den * m).sum(1)
        xt = x.transpose(1, 2)
        self.n += cnt
        self.sx += x.sum(1)
        self.sy += y.sum(1)
        self.Sxy.baddbmm_(xt, y)
        self.Sxx.baddbmm_(xt, x)
        self.Syy.baddbmm_(y.transpose(1, 2), y)
        self.sa += a.sum(1)
        self.sb += b.sum(1)
        self.saa += (a * a).sum(1)
        self.sbb += (b * b).sum(1)
        self.sab += (a * b).sum(1)
        ab = torch.stack([a, b], 1)  # [B, 2, s]
        xab = torch.bmm(ab, x)       # [B, 2, H]: X^T a, X^T b
        yab = torch.bmm(ab, y)
        self.Xa += xab[:, 0]
        self.Xb += xab[:, 1]
        self.Ya += yab[:, 0]
        self.Yb += yab[:, 1]

    def reduce(self, chunk: int = 64) -> dict:
        """Everything CKA needs as float64 NumPy arrays [B]: the H x H sums are reduced to
        scalars on the device, `chunk` entries at a time in float64 (bounded memory)."""
        import torch
        f64 = torch.float64
        dot = lambda u, v: (u * v).sum(-1)  # noqa: E731
        fro = lambda a: (a * a).sum((-2, -1))  # noqa: E731
        quad = lambda u, S, v: torch.einsum("bh,bhk,bk->b", u, S, v)  # noqa: E731
        out: dict[str, list] = {}
        B = self.n.shape[0]
        for lo in range(0, B, chunk):
            sl = slice(lo, min(B, lo + chunk))
            g = lambda name: getattr(self, name)[sl].to(f64)  # noqa: E731
            n, sx, sy = g("n"), g("sx"), g("sy")
            Sxy, Sxx, Syy = g("Sxy"), g("Sxx"), g("Syy")
            inv = torch.where(n > 0, 1.0 / n.clamp_min(1), torch.zeros_like(n))[:, None, None]
            part = {
                "n": n,
                # biased linear CKA: Frobenius norms of the centred cross-covariances
                "fxy_c": fro(Sxy - inv * sx[:, :, None] * sy[:, None, :]),
                "fxx_c": fro(Sxx - inv * sx[:, :, None] * sx[:, None, :]),
                "fyy_c": fro(Syy - inv * sy[:, :, None] * sy[:, None, :]),
                # debiased: uncentred pieces
                "fxy": fro(Sxy), "fxx": fro(Sxx), "fyy": fro(Syy),
                "kx": dot(sx, sx) - g("sa"), "ky": dot(sy, sy) - g("sb"),
                "cross_xy": quad(sx, Sxy, sy) - dot(sx, g("Xb")) - dot(g("Ya"), sy) + g("sab"),
                "cross_xx": quad(sx, Sxx, sx) - 2 * dot(sx, g("Xa")) + g("saa"),
                "cross_yy": quad(sy, Syy, sy) - 2 * dot(sy, g("Yb")) + g("sbb"),
                "saa": g("saa"), "sbb": g("sbb"), "sab": g("sab"), "cos": g("cos"),
            }
            for k, v in part.items():
                out.setdefault(k, []).append(v.cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


def _hsic_u(fro2, s_ab, one_k_one, one_l_one, cross, n):
    """Unbiased HSIC (Song et al. 2012) from the n x n-free pieces (arrays over the batch)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tr = fro2 - s_ab
        val = (tr + one_k_one * one_l_one / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))
    return np.where(n >= 4, val, np.nan)


def _finish(r: dict) -> dict:
    """CKA values (float64 [B]) from `_Accumulator.reduce()`."""
    n = r["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = r["fxy_c"] / np.sqrt(r["fxx_c"] * r["fyy_c"])
        lin = np.where((n >= 2) & (r["fxx_c"] > 0) & (r["fyy_c"] > 0), lin, np.nan)
        h_xy = _hsic_u(r["fxy"], r["sab"], r["kx"], r["ky"], r["cross_xy"], n)
        h_xx = _hsic_u(r["fxx"], r["saa"], r["kx"], r["kx"], r["cross_xx"], n)
        h_yy = _hsic_u(r["fyy"], r["sbb"], r["ky"], r["ky"], r["cross_yy"], n)
        deb = h_xy / np.sqrt(h_xx * h_yy)
        deb = np.where((h_xx > 0) & (h_yy > 0), deb, np.nan)
        cos = np.where(n > 0, r["cos"] / np.maximum(n, 1), np.nan)
    return {"cka_linear": lin, "cka_debiased": deb, "cosine": cos, "count": n}


# --------------------------------------------------------------------------------------------
# RBF CKA (n x n Grams)
# --------------------------------------------------------------------------------------------
def _rbf_gram(x, sigma: float | None, threshold: float):
    """Gaussian Gram [B, n, n] of x [B, n, H] (float64); sigma None = median heuristic."""
    import torch
    x = x - x[:, :1]  # translation-invariant; a constant representation becomes exactly 0
    sq = (x * x).sum(-1)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * torch.bmm(x, x.transpose(1, 2))).clamp_min(0)
    if sigma is None:
        flat = d2.reshape(d2.shape[0], -1)
        N = flat.shape[1]  # median as NumPy defines it (mean of the two middle values)
        lo = flat.kthvalue((N + 1) // 2, dim=1).values
        hi = flat.kthvalue(N // 2 + 1, dim=1).values
        s2 = (threshold ** 2) * 0.5 * (lo + hi)
    else:
        s2 = torch.full((x.shape[0],), float(sigma) ** 2, dtype=x.dtype, device=x.device)
    s2 = torch.where(s2 > 0, s2, torch.ones_like(s2))
    return torch.exp(-d2 / (2 * s2[:, None, None]))


def _center(k):
    return k - k.mean(1, keepdim=True) - k.mean(2, keepdim=True) + k.mean((1, 2), keepdim=True)


def _rbf_cka_torch(x, y, sigma: float | None = None, threshold: float = 1.0) -> np.ndarray:
    """RBF CKA for a batch: x [B, n, Hx], y [B, n, Hy] -> float64 [B] (biased HSIC, centred Grams)."""
    import torch
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    if x.shape[1] < 2:
        return np.full(x.shape[0], np.nan)
    kc = _center(_rbf_gram(x, sigma, threshold))
    lc = _center(_rbf_gram(y, sigma, threshold))
    hxy = (kc * lc).sum((1, 2))
    hxx = (kc * kc).sum((1, 2))
    hyy = (lc * lc).sum((1, 2))
    out = (hxy / torch.sqrt(hxx * hyy)).cpu().numpy()
    return np.where((hxx > 0).cpu().numpy() & (hyy > 0).cpu().numpy(), out, np.nan)


# --------------------------------------------------------------------------------------------
# two stores
# --------------------------------------------------------------------------------------------
def _as_store(s: Store | str | os.PathLike) -> Store:
    return s if isinstance(s, Store) else open_store(s)


def _diff(a: Sequence[str], b: Sequence[str], n: int = 5) -> str:
    only_a = [x for x in a if x not in set(b)][:n]
    only_b = [x for x in b if x not in set(a)][:n]
    return f"only in the first: {only_a or 'none'}; only in the second: {only_b or 'none'}"


def check_compatible(base: Store, tuned: Store) -> list[str]:
    """Refuse (StoreError) two stores that are not one corpus and one architecture.

    Same corpus: corpus_fingerprint (when both record one), languages, sentence ids.
    Same architecture: hidden states K and hidden size H; same pooling. A different
    model_fingerprint is expected (that is the point); an identical one gives a warning,
    returned as a list of strings."""
    a, b = base.attrs, tuned.attrs
    where = f"{base.path} vs {tuned.path}"
    warnings: list[str] = []
    fa, fb = str(a.get("corpus_fingerprint", "") or ""), str(b.get("corpus_fingerprint", "") or "")
    if fa and fb and fa != fb:
        raise StoreError(f"the stores are not from the same corpus ({where}): corpus_fingerprint "
                         f"{fa[:12]} ({a.get('corpus_name', '?')}) vs {fb[:12]} ({b.get('corpus_name', '?')}); "
                         "extract both models from the same corpus files and selection")
    if not (fa and fb):
        warnings.append("a store records no corpus_fingerprint; checked languages and sentence ids only")
    if list(base.languages) != list(tuned.languages):
        raise StoreError(f"the stores do not have the same languages ({where}): {_diff(base.languages, tuned.languages)}; "
                         "extract both with the same --langs")
    if list(base.sentence_ids) != list(tuned.sentence_ids):
        raise StoreError(f"the stores do not have the same sentence ids ({where}): "
                         f"{_diff(base.sentence_ids, tuned.sentence_ids)}; extract both from the same corpus selection")
    La, Ka, Sa, Ha = base.shape
    Lb, Kb, Sb, Hb = tuned.shape
    if (Ka, Ha) != (Kb, Hb):
        raise StoreError(f"the stores are not from one architecture ({where}): {Ka} hidden states x {Ha} dims "
                         f"vs {Kb} x {Hb}; compare two checkpoints of the same model (base and fine-tuned)")
    pa, pb = str(a.get("pooling", "")), str(b.get("pooling", ""))
    if pa != pb:
        raise StoreError(f"the stores were pooled differently ({where}): {pa!r} vs {pb!r}; "
                         "extract both with the same --pooling")
    ma, mb = str(a.get("model_fingerprint", "")), str(b.get("model_fingerprint", ""))
    if ma and ma == mb:
        warnings.append(f"both stores come from the same model weights (model_fingerprint {ma[:12]}); "
                        "expect CKA = 1 everywhere")
    return warnings


def _group_sizes(n_layers: int, hidden: int, itemsize: int, chunk: int, memory_gb: float) -> tuple[int, int]:
    """(languages per group, sentences per block) so the accumulators take about 30% of
    `memory_gb` and a block with its temporaries about half, with blocks of >= 256 sentences
    where the budget allows (rounded to the store's chunk)."""
    budget = memory_gb * (1 << 30)
    per_lang = n_layers * (3 * hidden * hidden + 12 * hidden) * itemsize
    group = max(1, int(budget * 0.3 // per_lang))
    # blocks of at least ~256 sentences keep the batched matmuls efficient: fewer languages
    # per group rather than short blocks when the budget is tight
    per_sentence_lang = n_layers * hidden * itemsize * 6
    while group > 1 and budget * 0.5 // (group * per_sentence_lang) < 256:
        group -= 1
    s = max(1, int(budget * 0.5 // (group * per_sentence_lang)))
    s = max(chunk, (s // chunk) * chunk)
    return group, s


def compare_stores(base: Store | str | os.PathLike, tuned: Store | str | os.PathLike, *,
                   layers: Sequence[int] | None = None, languages: Sequence[str] | None = None,
                   rbf: bool = False, rbf_sigma: float | None = None, rbf_threshold: float = 1.0,
                   device: str = "auto", precision: str = "float32", memory_gb: float = 1.0,
                   block_sentences: int | None = None, progress: bool = True) -> CKAResult:
    """CKA (linear, debiased, optionally RBF) and mean matched cosine between two stores, per
    language and layer, over the sentences present in both. Streams sentence blocks of a
    group of languages, all layers of the group in one batched matmul (see module docstring).

    `precision` is the accumulation dtype (float32 or float64); `memory_gb` bounds the
    accumulators and blocks in flight; `device` auto|cpu|cuda."""
    import logging

    import torch
    from tqdm.auto import tqdm

    from babelmap.engine.models.loading import resolve_device

    log = logging.getLogger("babelmap")
    base, tuned = _as_store(base), _as_store(tuned)
    for w in check_compatible(base, tuned):
        log.warning(w)
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be float32 or float64, not {precision!r}")
    dtype = torch.float32 if precision == "float32" else torch.float64
    dev = resolve_device(device)
    all_layers = base.layers
    layers = list(all_layers if layers is None else layers)
    bad = [k for k in layers if k not in all_layers]
    if bad:
        raise StoreError(f"layers {bad} are not in {base.path} (hidden states 0..{len(all_layers) - 1})")
    langs = list(base.languages if languages is None else languages)
    for l in langs:
        base.index(l)  # raises StoreError with suggestions
    rows = [base.index(l) for l in langs]
    joint = base.mask[rows] & tuned.mask[rows]  # [L, S]
    L, K, S, H = len(langs), len(layers), len(base.sentence_ids), base.hidden_size
    itemsize = 4 if dtype == torch.float32 else 8
    group, block = _group_sizes(K, H, itemsize, base.chunk_sentences, memory_gb)
    if block_sentences:
        block = int(block_sentences)
    block = max(1, min(block, max(S, 1)))
    count = joint.sum(1).astype(np.int64)

    def read(rows: list[int], sl: slice):
        glangs = [langs[i] for i in rows]
        return (base.block(sentences=sl, layers=layers, languages=glangs),
                tuned.block(sentences=sl, layers=layers, languages=glangs))

    old_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        out = stream_cka(read, joint, K, H, group=group, block=block, dtype=dtype, device=dev, progress=progress)
        rbf_arr = None
        if rbf:
            rbf_arr = np.full((K, L), np.nan)
            for i, lang in enumerate(tqdm(langs, desc="cka-rbf", unit="lang", disable=not progress)):
                keep = np.flatnonzero(joint[i])
                if len(keep) < 2:
                    continue
                xs = base.block(layers=layers, languages=[lang])[0][:, keep]
                ys = tuned.block(layers=layers, languages=[lang])[0][:, keep]
                for k in range(K):  # one n x n Gram at a time
                    xt = torch.from_numpy(np.asarray(xs[k], np.float64)).to(dev)[None]
                    yt = torch.from_numpy(np.asarray(ys[k], np.float64)).to(dev)[None]
                    rbf_arr[k, i] = _rbf_cka_torch(xt, yt, rbf_sigma, rbf_threshold)[0]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old_tf32
    attrs = _provenance(base, tuned)
    attrs.update({"precision": precision, "device": str(dev), "measure": "cka",
                  "rbf_sigma": "median" if rbf_sigma is None else float(rbf_sigma),
                  "rbf_threshold": float(rbf_threshold) if rbf else ""})
    return CKAResult(langs, layers, out["cka_linear"], out["cka_debiased"], out["cosine"], count, rbf_arr, attrs)


def stream_cka(read, joint: np.ndarray, n_layers: int, hidden: int, *, group: int, block: int, dtype,
               device, progress: bool = True) -> dict[str, np.ndarray]:
    """The streamed core: linear and debiased CKA and mean cosine, [K, L] float64 each.

    `read(rows, sentence_slice)` returns the two models' embeddings (array-likes [G, K, s, H])
    of languages `rows` (indices into `joint`'s first axis) for a sentence slice; `joint`
    [L, S] marks sentences present in both. Languages go in groups of `group` (all their layers
    in one batched matmul), sentences in blocks of `block`. Used by `compare_stores` (reading
    two stores) and by the benchmark (reading synthetic arrays)."""
    import torch
    from tqdm.auto import tqdm

    L, S = joint.shape
    K, H = n_layers, hidden
    out = {m: np.full((K, L), np.nan) for m in ("cka_linear", "cka_debiased", "cosine")}
    starts = list(range(0, S, block))
    n_groups = math.ceil(L / group) if L else 0
    bar = tqdm(total=n_groups * len(starts), desc="cka", unit="block", disable=not progress)
    for g0 in range(0, L, group):
        g = list(range(g0, min(L, g0 + group)))
        acc = _Accumulator(len(g) * K, H, dtype, device)
        for s0 in starts:
            sl = slice(s0, min(S, s0 + block))
            m = joint[g, sl]
            if m.any():
                xb, yb = read(g, sl)
                xb = torch.from_numpy(np.ascontiguousarray(xb))
                yb = torch.from_numpy(np.ascontiguousarray(yb))
                s = xb.shape[2]
                mt = torch.from_numpy(m).to(dtype)[:, None, :].expand(len(g), K, s).reshape(len(g) * K, s)
                acc.update(xb.reshape(len(g) * K, s, H), yb.reshape(len(g) * K, s, H), mt)
            bar.update(1)
        res = _finish(acc.reduce())
        for name in out:
            out[name][:, g] = res[name].reshape(len(g), K).T
        del acc
    bar.close()
    return out


def _provenance(base: Store, tuned: Store) -> dict:
    from babelmap.engine.store import default_attrs
    attrs = {k: v for k, v in default_attrs().items() if k not in ("format", "format_version", "dtype")}
    for tag, st in (("base", base), ("tuned", tuned)):
        a = st.attrs
        attrs[f"{tag}_path"] = str(st.path)
        for k in PROVENANCE_KEYS:
            v = a.get(k, "")
            attrs[f"{tag}_{k}"] = "" if v is None else v
    return attrs
