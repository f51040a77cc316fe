"""Torch versions of the kernels (GPU, or multithreaded MKL on the CPU), chosen at run time.

Every function here has a NumPy/Numba twin (`similarity.NumpyGram`, `numba_kernels.py`) with the
same results to float32 tolerance. TF32 is switched off for every matmul here: released
similarity matrices crowd near 1 (0.982..0.999 in a top layer), where TF32's 10-bit mantissa
(spacing ~1e-3) would blur the differences we measure.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device."""
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch missing or broken driver
        return False


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error."""
    device = (device or "auto").lower()
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        from babelmap.engine.errors import BabelmapError
        raise BabelmapError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        from babelmap.engine.errors import BabelmapError
        raise BabelmapError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def _no_tf32() -> None:
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def _tdtype(precision: str):
    import torch
    return torch.float64 if precision == "float64" else torch.float32


class TorchGram:
    """Streaming accumulator of per-layer Grams of L2-normalised, masked sentence embeddings
    (the GPU backend; same interface as `similarity.NumpyGram`, see there).

    `add(layers, present, groups, cols)` takes one block: `layers` yields each selected layer's
    rows raw [L, 1, s, H] in turn; it adds X_k X_k^T with X_k = [L, s'*H] (rows normalised per
    sentence, missing rows zero) and the mask Gram P P^T for the counts; products in
    `precision`, sums in float64. With `groups` (one bootstrap group per kept sentence) it also
    returns the per-group Grams for the bootstrap.
    """

    def __init__(self, n_languages: int, n_layers: int, precision: str = "float32",
                 device: str = "cpu", mean: np.ndarray | None = None):
        import torch
        _no_tf32()
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = _tdtype(precision)
        L, K = n_languages, int(n_layers)
        self.G = torch.zeros((K, L, L), dtype=torch.float64, device=self.device)
        self.C = torch.zeros((L, L), dtype=torch.float64, device=self.device)
        self.mean = None if mean is None else torch.as_tensor(mean, dtype=self.dtype, device=self.device)

    def _normalised(self, raw, present, kpos: int):
        x = raw[:, 0].to(self.dtype)                                # [L, s, H]
        if self.mean is not None:
            x = x - self.mean[kpos]
        nrm = self.torch.linalg.vector_norm(x, dim=-1)               # [L, s]
        scale = self.torch.where(nrm > 0, 1.0 / nrm.clamp_min(1e-300 if self.dtype == self.torch.float64
                                                              else 1e-30), self.torch.zeros_like(nrm))
        scale = scale * present
        return x * scale.unsqueeze(-1)

    def add(self, layers, present: np.ndarray, groups: np.ndarray | None = None,
            cols: np.ndarray | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Accumulate one block; returns [(group, G_g[K, L, L] float32, C_g[L, L])] when `groups`."""
        torch = self.torch
        pres = torch.from_numpy(np.ascontiguousarray(present)).to(self.device).to(self.dtype)
        L, s = pres.shape
        if groups is None:
            spans = [(None, slice(None))]
        else:
            spans = [(int(g), torch.from_numpy(np.flatnonzero(groups == g)).to(self.device))
                     for g in np.unique(groups)]
        out = []
        grams = {g: [] for g, _ in spans}
        for kpos, block in enumerate(layers):
            if cols is not None:
                block = block[:, :, cols]
            raw = torch.from_numpy(np.ascontiguousarray(block)).to(self.device, non_blocking=True)
            x = self._normalised(raw, pres, kpos)
            for g, sel in spans:
                xs = x if g is None else x[:, sel]
                X = xs.reshape(L, -1)
                Gk = syrk_upper_torch(X)
                self.G[kpos] += Gk.to(torch.float64)
                if g is not None:
                    grams[g].append(Gk)
        for g, sel in spans:
            ps = pres if g is None else pres[:, sel]
            Cg = ps @ ps.T
            self.C += Cg.to(torch.float64)
            if g is not None:
                out.append((g, torch.stack(grams[g]).float().cpu().numpy(), Cg.double().cpu().numpy()))
        return out

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(G [K, L, L] float64 sums, valid on the upper triangles; C [L, L] int64) as NumPy arrays."""
        return self.G.cpu().numpy(), np.rint(self.C.cpu().numpy()).astype(np.int64)


def syrk_upper_torch(X, min_rows: int = 256):
    """Upper triangle (diagonal blocks in full, strict lower part of off-diagonal blocks 0) of
    X X^T for X [L, n]: torch has no syrk, so split the rows in halves recursively, one GEMM for
    the off-diagonal block and recursion on the two diagonal ones (down to `min_rows`): about
    1/2 + 1/2^(depth+1) of a full GEMM's work, still large GEMMs."""
    import torch
    L = X.shape[0]
    out = torch.zeros((L, L), dtype=X.dtype, device=X.device)

    def fill(r0: int, r1: int) -> None:
        if r1 - r0 <= min_rows:
            x = X[r0:r1]
            out[r0:r1, r0:r1] = x @ x.T
            return
        h = (r0 + r1) // 2
        out[r0:h, h:r1] = X[r0:h] @ X[h:r1].T
        fill(r0, h)
        fill(h, r1)

    fill(0, L)
    return out


def layer_sums(block: np.ndarray, present: np.ndarray, layer_index: Sequence[int], device: str = "cpu"
               ) -> np.ndarray:
    """Sum over languages and present sentences of the raw embeddings, per selected layer:
    [K', H] float64 (the first pass of `center=True`)."""
    import torch
    raw = torch.from_numpy(np.ascontiguousarray(block)).to(device)
    pres = torch.from_numpy(np.ascontiguousarray(present)).to(device).to(torch.float64)
    out = [torch.einsum("ls,lsh->h", pres, raw[:, k].to(torch.float64)) for k in layer_index]
    return torch.stack(out).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# twins of numba_kernels (same semantics; see there)
# ---------------------------------------------------------------------------------------------
def _t(x, device, dtype=None):
    import torch
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    t = t.to(device)
    return t if dtype is None else t.to(dtype)


def pool_ragged_torch(values, offsets, mask=None, normalize: bool = True, device: str = "cuda"):
    """Torch twin of `numba_kernels.pool_ragged` (segment mean via index_add, float64 sums)."""
    import torch
    v = _t(values, device, torch.float64)
    off = _t(offsets, device, torch.int64)
    n = off.numel() - 1
    lengths = off[1:] - off[:-1]
    seg = torch.repeat_interleave(torch.arange(n, device=v.device), lengths)
    w = torch.ones(v.shape[0], dtype=torch.float64, device=v.device) if mask is None else \
        _t(mask, device, torch.float64)
    sums = torch.zeros((n, v.shape[1]), dtype=torch.float64, device=v.device).index_add_(0, seg, v * w[:, None])
    cnt = torch.zeros(n, dtype=torch.float64, device=v.device).index_add_(0, seg, w)
    mean = torch.where(cnt[:, None] > 0, sums / cnt.clamp_min(1)[:, None], torch.zeros_like(sums))
    if normalize:
        nrm = torch.linalg.vector_norm(mean, dim=1, keepdim=True)
        mean = torch.where(nrm > 0, mean / nrm.clamp_min(1e-300), torch.zeros_like(mean))
    return mean.to(torch.float32)


def paired_cosines_torch(a, b, mask_a=None, mask_b=None, device: str = "cuda"):
    """Torch twin of `numba_kernels.paired_cosines` (float64)."""
    import torch
    A, B = _t(a, device, torch.float64), _t(b, device, torch.float64)
    den = torch.linalg.vector_norm(A, dim=1) * torch.linalg.vector_norm(B, dim=1)
    cos = torch.where(den > 0, (A * B).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))
    present = torch.ones(A.shape[0], dtype=torch.bool, device=A.device)
    if mask_a is not None:
        present &= _t(mask_a, device, torch.bool)
    if mask_b is not None:
        present &= _t(mask_b, device, torch.bool)
    return torch.where(present, cos, torch.full_like(cos, float("nan")))


def rank_rows_torch(x, device: str = "cuda"):
    """Torch twin of `numba_kernels.rank_rows`: average rank = (#less + #less-or-equal + 1) / 2,
    from a batched searchsorted on the sorted rows; NaN stays NaN."""
    import torch
    X = _t(x, device, torch.float64)
    one = X.dim() == 1
    X = X.reshape(1, -1) if one else X
    nan = torch.isnan(X)
    Xf = torch.where(nan, torch.full_like(X, float("inf")), X)
    srt, _ = torch.sort(Xf, dim=1)
    m = (~nan).sum(1, keepdim=True)
    left = torch.searchsorted(srt, Xf, right=False)
    right = torch.minimum(torch.searchsorted(srt, Xf, right=True), m)   # NaNs (as +inf) lie beyond m
    r = (left + right + 1).to(torch.float64) / 2
    r = torch.where(nan, torch.full_like(r, float("nan")), r)
    return r[0] if one else r
