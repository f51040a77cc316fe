"""CKA kernels against independent float64 NumPy formulas (n x n Gram forms), invariances,
the debiased estimator's behaviour on independent data, and the streamed store comparison."""
from __future__ import annotations

import numpy as np
import pytest

from babelmap.engine.errors import StoreError
from babelmap.engine.store import open_store, write_store
from babelmap.kernels.cka import (CKAResult, check_compatible, compare_stores, debiased_cka,
                                  linear_cka, rbf_cka)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny matmuls on a loaded 2-core machine spend their time in thread hand-offs; one
    thread keeps this file fast. Restored after each test."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- independent references (n x n Gram matrices, float64) ------------------------------------
def ref_hsic(K: np.ndarray, L: np.ndarray) -> float:
    """Biased HSIC, tr(K C L C) / (n-1)^2 with C = I - 11'/n (C K C = double-centred K)."""
    n = K.shape[0]
    Kc = K - K.mean(0, keepdims=True) - K.mean(1, keepdims=True) + K.mean()
    Lc = L - L.mean(0, keepdims=True) - L.mean(1, keepdims=True) + L.mean()
    return float((Kc * Lc).sum()) / (n - 1) ** 2


def ref_linear_cka(X, Y) -> float:
    K, L = X @ X.T, Y @ Y.T
    return ref_hsic(K, L) / np.sqrt(ref_hsic(K, K) * ref_hsic(L, L))


def ref_unbiased_hsic(K, L) -> float:
    """Song et al. (2012), eq. 5, written out term by term."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)  # = sum(Kt * Lt) for symmetric matrices
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * ((Kt @ one) @ (Lt @ one))
    return float((term1 + term2 - term3) / (n * (n - 3)))


def ref_debiased_cka(X, Y) -> float:
    K, L = X @ X.T, Y @ Y.T
    return ref_unbiased_hsic(K, L) / np.sqrt(ref_unbiased_hsic(K, K) * ref_unbiased_hsic(L, L))


def ref_rbf_gram(X, sigma=None, threshold=1.0):
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    if sigma is None:
        s2 = threshold ** 2 * np.median(d2)
    else:
        s2 = sigma ** 2
    return np.exp(-d2 / (2 * s2))


def ref_rbf_cka(X, Y, sigma=None, threshold=1.0):
    K, L = ref_rbf_gram(X, sigma, threshold), ref_rbf_gram(Y, sigma, threshold)
    return ref_hsic(K, L) / np.sqrt(ref_hsic(K, K) * ref_hsic(L, L))


def related(rng, n=60, h=12, g=9, noise=1.0, offset=3.0):
    X = rng.normal(size=(n, h)) + offset * rng.normal(size=h)
    Y = np.tanh(X @ rng.normal(size=(h, g))) + noise * rng.normal(size=(n, g)) + offset
    return X, Y


# ---- single pairs ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed,n,h,g", [(0, 60, 12, 9), (1, 25, 40, 40), (2, 200, 8, 30)])
def test_linear_and_debiased_match_gram_formulas(seed, n, h, g):
    X, Y = related(np.random.default_rng(seed), n, h, g)
    assert linear_cka(X, Y) == pytest.approx(ref_linear_cka(X, Y), rel=1e-10, abs=1e-12)
    assert debiased_cka(X, Y) == pytest.approx(ref_debiased_cka(X, Y), rel=1e-8, abs=1e-10)
    # the two estimators differ on this data: the test would notice a swapped formula
    assert abs(linear_cka(X, Y) - debiased_cka(X, Y)) > 1e-3


@pytest.mark.parametrize("sigma", [None, 2.5])
def test_rbf_matches_reference(sigma):
    X, Y = related(np.random.default_rng(3), 50, 10, 7)
    assert rbf_cka(X, Y, sigma=sigma) == pytest.approx(ref_rbf_cka(X, Y, sigma), rel=1e-10)
    assert rbf_cka(X, Y, threshold=0.5) == pytest.approx(ref_rbf_cka(X, Y, None, 0.5), rel=1e-10)


def test_self_similarity_is_one():
    X, _ = related(np.random.default_rng(4), 40, 16, 16)
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert debiased_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(X, X) == pytest.approx(1.0, abs=1e-12)


def test_invariance_orthogonal_and_isotropic_scaling():
    rng = np.random.default_rng(5)
    X, Y = related(rng, 80, 10, 10)
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    Yt = 7.5 * Y @ Q + 4.0  # rotation, scaling, translation
    for f in (linear_cka, debiased_cka, rbf_cka):
        assert f(X, Yt) == pytest.approx(f(X, Y), rel=1e-9), f.__name__
    # a non-isotropic scaling does change linear CKA (the invariance is not vacuous)
    D = np.diag(np.linspace(0.1, 10, 10))
    assert abs(linear_cka(X, Y @ D) - linear_cka(X, Y)) > 1e-3


def test_debiased_near_zero_for_independent_data():
    rng = np.random.default_rng(6)
    lin, deb = [], []
    for _ in range(5):
        X, Y = rng.normal(size=(100, 300)), rng.normal(size=(100, 300))
        lin.append(linear_cka(X, Y))
        deb.append(debiased_cka(X, Y))
    assert np.mean(lin) > 0.5  # the biased estimator is far from 0 with n << H
    assert abs(np.mean(deb)) < 0.02
    assert max(abs(d) for d in deb) < 0.05


# ---- two stores -----------------------------------------------------------------------------
ATTRS = dict(corpus_name="synthetic", corpus_fingerprint="c0ffee", pooling="mean", model="m")


def make_pair(tmp_path, L=5, K=3, S=150, H=12, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(L, K, S, H)) + 5 * rng.normal(size=(L, K, 1, H))).astype(np.float32)
    noise = np.linspace(0.2, 2.0, K)[None, :, None, None]
    Y = (X + noise * rng.normal(size=X.shape)).astype(np.float32)
    mask_a = rng.random((L, S)) > 0.1
    mask_b = mask_a.copy()
    mask_b[0, :30] = False  # missing in the tuned store only: must be excluded
    mask_a[-1] = False
    mask_a[-1, :3] = True   # a language with 3 shared sentences: debiased undefined
    mask_b[-1, :3] = True
    langs = [f"l{i}_Latn" for i in range(L)]
    sids = [f"s{i}" for i in range(S)]
    a = write_store(tmp_path / "base.h5", langs, sids, X, mask=mask_a, dtype=dtype,
                    attrs={**ATTRS, "model_fingerprint": "A"})
    b = write_store(tmp_path / "tuned.h5", langs, sids, Y, mask=mask_b, dtype=dtype,
                    attrs={**ATTRS, "model_fingerprint": "B"})
    Xs = open_store(a).block().astype(np.float64)  # what is stored (after the dtype cast)
    Ys = open_store(b).block().astype(np.float64)
    return a, b, Xs, Ys, mask_a & mask_b, langs


@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("float32", 2e-5)])
def test_compare_stores_matches_references(tmp_path, precision, tol):
    a, b, X, Y, joint, langs = make_pair(tmp_path)
    # tiny memory budget and odd block size: several language groups and sentence blocks
    res = compare_stores(a, b, rbf=True, precision=precision, memory_gb=2e-5, block_sentences=37,
                         progress=False)
    assert res.languages == langs and res.layers == [0, 1, 2]
    np.testing.assert_array_equal(res.count, joint.sum(1))
    for i in range(len(langs)):
        for k in range(3):
            x, y = X[i, k][joint[i]], Y[i, k][joint[i]]
            assert res.cka_linear[k, i] == pytest.approx(ref_linear_cka(x, y), abs=tol)
            cos = np.mean((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1))
            assert res.cosine[k, i] == pytest.approx(cos, abs=tol)
            assert res.cka_rbf[k, i] == pytest.approx(ref_rbf_cka(x, y), abs=1e-10)
            if joint[i].sum() >= 4:
                assert res.cka_debiased[k, i] == pytest.approx(ref_debiased_cka(x, y), abs=tol)
            else:
                assert np.isnan(res.cka_debiased[k, i])
    # noise grows with the layer: change grows with the layer
    assert np.all(np.diff(res.change("cka_linear")[:, :-1], axis=0) > 0)


def test_float16_store_and_layer_subset(tmp_path):
    a, b, X, Y, joint, langs = make_pair(tmp_path, dtype="float16", L=3, K=4)
    res = compare_stores(a, b, layers=[3, 1], languages=["l1_Latn"], progress=False)
    assert res.layers == [3, 1] and res.languages == ["l1_Latn"]
    for r, k in enumerate([3, 1]):
        x, y = X[1, k][joint[1]], Y[1, k][joint[1]]
        assert res.cka_linear[r, 0] == pytest.approx(ref_linear_cka(x, y), abs=2e-5)


def test_self_comparison_and_roundtrip(tmp_path):
    a, b, X, Y, joint, langs = make_pair(tmp_path, L=3)
    res = compare_stores(a, a, progress=False)
    ok = res.count >= 4
    np.testing.assert_allclose(res.cka_linear[:, ok], 1.0, atol=1e-6)
    np.testing.assert_allclose(res.cka_debiased[:, ok], 1.0, atol=1e-6)
    np.testing.assert_allclose(res.cosine[:, ok], 1.0, atol=1e-6)
    res = compare_stores(a, b, progress=False)
    path = res.save(tmp_path / "change.h5")
    back = CKAResult.load(path)
    np.testing.assert_array_equal(back.cka_linear, res.cka_linear)
    np.testing.assert_array_equal(back.cka_debiased, res.cka_debiased)
    assert back.cka_rbf is None and back.languages == langs
    assert back.attrs["base_model_fingerprint"] == "A" and back.attrs["tuned_model_fingerprint"] == "B"
    assert back.attrs["base_corpus_fingerprint"] == "c0ffee"
    df = back.to_pandas()
    row = df[(df.language == "l1_Latn") & (df.layer == 2)].iloc[0]
    assert row.cka_linear == res.get("l1_Latn", 2)
    assert row.change_linear == pytest.approx(1 - res.get("l1_Latn", 2))
    assert row["count"] == joint[1].sum()


def _store(path, langs, sids, K=2, H=4, **attrs):
    return write_store(path, langs, sids, np.ones((len(langs), K, len(sids), H), np.float32),
                       attrs={**ATTRS, **attrs})


@pytest.mark.parametrize("change,message", [
    (dict(corpus_fingerprint="other"), "not from the same corpus"),
    (dict(langs=["x_Latn", "z_Latn"]), "not have the same languages"),
    (dict(sids=["1", "3"]), "not have the same sentence ids"),
    (dict(H=8), "not from one architecture"),
    (dict(K=3), "not from one architecture"),
    (dict(pooling="cls"), "pooled differently"),
])
def test_refuses_incompatible_stores(tmp_path, change, message):
    a = _store(tmp_path / "a.h5", ["x_Latn", "y_Latn"], ["1", "2"], model_fingerprint="A")
    kw = dict(langs=["x_Latn", "y_Latn"], sids=["1", "2"], K=2, H=4, model_fingerprint="B")
    kw.update(change)
    b = _store(tmp_path / "b.h5", kw.pop("langs"), kw.pop("sids"), **kw)
    with pytest.raises(StoreError, match=message):
        check_compatible(open_store(a), open_store(b))


def test_same_weights_warns(tmp_path):
    a = _store(tmp_path / "a.h5", ["x_Latn"], ["1"], model_fingerprint="A")
    b = _store(tmp_path / "b.h5", ["x_Latn"], ["1"], model_fingerprint="A")
    assert any("same model weights" in w for w in check_compatible(open_store(a), open_store(b)))
