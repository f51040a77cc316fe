"""Numba kernels (and their torch twins) against float64 NumPy / SciPy references."""
import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from babelmap.kernels.numba_kernels import paired_cosines, pool_ragged, rank_rows, spearman_rows
from babelmap.kernels.torch_kernels import paired_cosines_torch, pool_ragged_torch, rank_rows_torch

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover
    HAS_CUDA = False
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])


def ragged(seed=0, n=40, H=12, dtype=np.float16):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 9, size=n)
    lengths[3] = 0                                  # an empty segment (missing sentence)
    offsets = np.r_[0, np.cumsum(lengths)]
    values = rng.normal(size=(offsets[-1], H)).astype(dtype)
    mask = rng.random(offsets[-1]) > 0.2
    return values, offsets, mask


def pool_reference(values, offsets, mask, normalize):
    out = np.zeros((len(offsets) - 1, values.shape[1]))
    for i in range(len(offsets) - 1):
        seg = values[offsets[i]:offsets[i + 1]].astype(np.float64)
        if mask is not None:
            seg = seg[mask[offsets[i]:offsets[i + 1]]]
        if len(seg):
            v = seg.mean(0)
            out[i] = v / np.linalg.norm(v) if normalize else v
    return out


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_pool_ragged(use_mask, normalize):
    values, offsets, mask = ragged()
    m = mask if use_mask else None
    ref = pool_reference(values, offsets, m, normalize)
    got = pool_ragged(values, offsets, m, normalize=normalize)
    assert got.dtype == np.float32 and np.all(got[3] == 0)
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=1e-6)
    for dev in DEVICES:
        t = pool_ragged_torch(values, offsets, m, normalize, dev).cpu().numpy()
        np.testing.assert_allclose(t, ref, atol=1e-6, rtol=1e-6)


def test_pool_ragged_rejects_bad_offsets():
    values, offsets, _ = ragged()
    with pytest.raises(ValueError, match="offsets"):
        pool_ragged(values, offsets[:-1])


def test_paired_cosines():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 24)).astype(np.float16)
    b = (a + rng.normal(size=(300, 24))).astype(np.float16)
    b[7] = 0                                       # present but all zero -> cosine 0
    ma, mb = rng.random(300) > 0.1, rng.random(300) > 0.1
    A, B = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ref = np.sum(A * B, 1) / (np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1))
    ref[7] = 0.0
    ref[~(ma & mb)] = np.nan
    got = paired_cosines(a, b, ma, mb)
    np.testing.assert_allclose(got, ref, atol=1e-12, equal_nan=True)
    # the mean over shared sentences is the matrix cell (mPLM-Sim definition)
    assert np.nanmean(got) == pytest.approx(np.nanmean(ref), abs=1e-12)
    for dev in DEVICES:
        t = paired_cosines_torch(a, b, ma, mb, dev).cpu().numpy()
        np.testing.assert_allclose(t, ref, atol=1e-12, equal_nan=True)


def test_rank_rows_ties_and_nan():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 6, size=(50, 200)).astype(np.float64)   # many ties
    x[rng.random(x.shape) < 0.1] = np.nan
    x[0, :3] = np.inf
    ref = rankdata(x, axis=1, nan_policy="omit")
    np.testing.assert_array_equal(rank_rows(x), ref)
    np.testing.assert_array_equal(rank_rows(x[4]), ref[4])
    for dev in DEVICES:
        np.testing.assert_array_equal(rank_rows_torch(x, dev).cpu().numpy(), ref)


def test_spearman_rows_matches_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 60))
    y = x + rng.normal(size=(20, 60))
    x[0, 5] = np.nan
    y[1, :10] = np.nan
    got = spearman_rows(x, y)
    for i in range(20):
        ok = ~(np.isnan(x[i]) | np.isnan(y[i]))
        assert got[i] == pytest.approx(spearmanr(x[i, ok], y[i, ok]).statistic, abs=1e-12)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU")
def test_auto_dispatch_follows_cuda_tensors():
    values, offsets, mask = ragged()
    got = pool_ragged(torch.from_numpy(values).cuda(), offsets, mask)
    assert got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), pool_ragged(values, offsets, mask), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_normalise_layer_fused(dtype):
    from babelmap.kernels.numba_kernels import normalise_layer
    rng = np.random.default_rng(4)
    raw = rng.normal(size=(5, 3, 20, 16)).astype(dtype)
    raw[1, :, 4] = 0                                         # present but zero -> stays zero
    present = rng.random((5, 20)) > 0.3
    mean = rng.normal(size=16)
    for mu in (None, mean):
        x = raw[:, 2].astype(np.float64) - (0 if mu is None else mu)
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        ref = np.where(n > 0, x / np.where(n > 0, n, 1), 0) * present[..., None]
        got = normalise_layer(raw, 2, present, np.float32, mu)
        np.testing.assert_allclose(got, ref, atol=1e-6)
        got64 = normalise_layer(raw, 2, present, np.float64, mu)
        np.testing.assert_allclose(got64, ref, atol=1e-14)
