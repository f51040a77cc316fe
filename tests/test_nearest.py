"""Nearest languages through faiss: exact against a NumPy sort, NaN and self excluded."""
import numpy as np
import pytest

from babelmap.kernels.nearest import nearest_table, top_k
from babelmap.kernels.similarity import similarity_from_arrays

try:
    import torch
    HAS_CUDA = torch.cuda.is_available()
except Exception:  # pragma: no cover
    HAS_CUDA = False


def reference_top_k(sim, k):
    L = sim.shape[0]
    idx = np.full((L, k), -1)
    val = np.full((L, k), np.nan)
    for i in range(L):
        cand = [(j, sim[i, j]) for j in range(L) if j != i and not np.isnan(sim[i, j])]
        cand.sort(key=lambda t: -t[1])
        for r, (j, v) in enumerate(cand[:k]):
            idx[i, r], val[i, r] = j, v
    return idx, val


def test_top_k_is_exact_and_skips_nan():
    rng = np.random.default_rng(0)
    L = 300
    a = rng.random((L, L))
    sim = ((a + a.T) / 2 * 0.02 + 0.98).astype(np.float32)   # crowded near 1, as in top layers
    np.fill_diagonal(sim, 1.0)
    gone = rng.random((L, L)) < 0.3
    sim[gone | gone.T] = np.nan
    sim[5, :] = sim[:, 5] = np.nan                           # a language sharing nothing
    idx, val = top_k(sim, 12)
    ridx, rval = reference_top_k(sim.astype(np.float64), 12)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(val, rval.astype(np.float32))   # bit-exact values
    assert (idx[5] == -1).all() and np.isnan(val[5]).all()


def test_top_k_rows_and_k_larger_than_l():
    sim = np.array([[1, .2, .9], [.2, 1, .5], [.9, .5, 1]], np.float32)
    idx, val = top_k(sim, 10, rows=[1])
    assert idx.shape == (1, 3) and idx[0].tolist() == [2, 0, -1]
    assert val[0, :2].tolist() == pytest.approx([0.5, 0.2])


def test_result_nearest_and_table():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(6, 2, 40, 8)).astype(np.float32)
    E[1] = E[0] + 0.1 * E[1]                                 # 1 is close to 0
    langs = [f"x{i}_Latn" for i in range(6)]
    r = similarity_from_arrays(E, None, langs)
    near = r.nearest("x0_Latn", 3, layer=1)
    assert near[0][0] == "x1_Latn" and near[0][1] == pytest.approx(r.get("x0_Latn", "x1_Latn", 1))
    row = r.sim[1, 0].astype(np.float64).copy()
    row[0] = -np.inf
    assert [l for l, _ in near] == [langs[j] for j in np.argsort(-row)[:3]]
    table = nearest_table(r.sim[1], langs, 2)
    assert table["x0_Latn"] == near[:2]


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU")
def test_gpu_top_k_matches_cpu():
    rng = np.random.default_rng(2)
    sim = rng.random((200, 200)).astype(np.float32)
    sim[3, 7] = np.nan
    i1, v1 = top_k(sim, 8, device="cpu")
    i2, v2 = top_k(sim, 8, device="cuda")
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(v1, v2)
