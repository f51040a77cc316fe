"""MEXA alignment and retrieval@K against a direct NumPy double loop (float64), on random data
with exact ties and missing sentences; every backend; the pivot; the bootstrap; the CLI."""
import numpy as np
import pytest

from babelmap.engine.store import write_store
from babelmap.errors import BabelmapError
from babelmap.kernels.mexa import compute_alignment, compute_alignment_measures, parse_measure
from babelmap.kernels.result import SimilarityResult
from babelmap.kernels.similarity import ArraySource, compute_similarity


def mexa_reference(M):
    """cisnlp/MEXA compute_mexa.py `mexa`: diagonal strictly above the rest of its row and column."""
    n = len(M)
    if n == 1:
        return 1.0
    count = 0
    for i in range(n):
        if M[i, i] > max(np.delete(M[i], i)) and M[i, i] > max(np.delete(M[:, i], i)):
            count += 1
    return count / n


def retrieval_reference(M, k):
    """Queries = rows: the translation is within the top k when fewer than k other candidates
    score at least as high (ties counted against), by a loop."""
    n = len(M)
    hits = 0
    for i in range(n):
        better = sum(1 for j in range(n) if j != i and M[i, j] >= M[i, i])
        hits += better < k
    return hits / n


def reference(E, Mask, measure):
    """[K, L, L] by a double loop over pairs, float64 cosines over the shared sentences."""
    kind, k = parse_measure(measure)
    L, K = E.shape[:2]
    out = np.full((K, L, L), np.nan)
    cnt = np.zeros((L, L), int)
    E = E.astype(np.float64)
    for a in range(L):
        for b in range(L):
            P = np.flatnonzero(Mask[a] & Mask[b])
            cnt[a, b] = len(P)
            if not len(P):
                continue
            for kk in range(K):
                if a == b:
                    out[kk, a, b] = 1.0
                    continue
                x, y = E[a, kk, P], E[b, kk, P]
                x = x / np.linalg.norm(x, axis=1, keepdims=True)
                y = y / np.linalg.norm(y, axis=1, keepdims=True)
                C = x @ y.T
                out[kk, a, b] = mexa_reference(C) if kind == "mexa" else retrieval_reference(C, k)
    return out, cnt


def tie_data(seed=0, L=6, K=2, S=40, H=8):
    """Embeddings whose cosines are exact in float32 and float64 alike (4 entries of +-1, the rest
    0: norm 2, products are multiples of 1/4), so ties are real ties in every backend; few
    distinct vectors, so ties are frequent. Missing sentences, and one pair sharing one sentence."""
    rng = np.random.default_rng(seed)
    E = np.zeros((L, K, S, H), np.float32)
    for idx in np.ndindex(L, K, S):
        pos = rng.choice(H, 4, replace=False)
        E[idx][pos] = rng.choice([-1.0, 1.0], 4)
    base = E[0].copy()
    for l in range(1, L):                         # translations: mostly the same vector, some changed
        keep = rng.random((K, S)) < 0.6
        E[l][keep] = base[keep]
    M = rng.random((L, S)) > 0.2
    M[4] = False
    M[4, :10] = True
    M[5] = False
    M[5, 9:30] = True                             # 4 and 5 share exactly one sentence (9)
    M[5, 9] = M[4, 9] = True
    return E, M


def smooth_data(seed=1, L=5, K=3, S=50, H=16):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(1, K, S, H))
    E = (shared + 1.1 * rng.normal(size=(L, K, S, H))).astype(np.float16)
    M = rng.random((L, S)) > 0.15
    M[3, 25:] = False
    M[4, :25] = False                            # 3 and 4 share nothing
    return E, M


MEASURES = ["mexa", "retrieval@1", "retrieval@3"]


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
@pytest.mark.parametrize("make", [tie_data, smooth_data])
def test_matches_double_loop(backend, make):
    E, M = make()
    res = compute_alignment_measures(ArraySource(E, M), measures=MEASURES, backend=backend, device="cpu",
                                     progress=False, pair_block_bytes=3 * 40 * 40 * 4 * 4)  # 4 pairs per batch
    for m in MEASURES:
        ref, cnt = reference(E, M, m)
        r = res[m]
        assert r.attrs["measure"] == m
        np.testing.assert_array_equal(r.count, cnt)
        np.testing.assert_allclose(r.sim, ref, atol=1e-6, equal_nan=True)
    if make is tie_data:
        ref, _ = reference(E, M, "mexa")
        assert res["mexa"].get("lang4", "lang5", 0) == 1.0          # one shared sentence
        r1 = res["retrieval@1"].sim
        assert not np.allclose(r1, np.transpose(r1, (0, 2, 1)), equal_nan=True)   # one direction


def test_ties_are_not_hits_and_retrieval_k_is_monotone():
    E, M = tie_data()
    res = compute_alignment_measures(ArraySource(E, M), measures=["mexa", "retrieval@1", "retrieval@40"],
                                     device="cpu", progress=False)
    mexa, r1, r40 = (res[m].sim for m in ("mexa", "retrieval@1", "retrieval@40"))
    off = ~np.isnan(mexa)
    assert (mexa[off] < 1).any()                  # the ties cost hits
    assert np.all(mexa[off] <= np.minimum(r1, np.transpose(r1, (0, 2, 1)))[off] + 1e-9)
    assert np.all(r40[off] == 1.0)                # every translation is within 40 of <= 40 candidates


def test_pivot_computes_only_pairs_with_the_pivot():
    E, M = smooth_data()
    src = ArraySource(E, M, languages=["eng_Latn", "deu_Latn", "fra_Latn", "ita_Latn", "spa_Latn"])
    full = compute_alignment(src, measure="mexa", device="cpu", progress=False)
    piv = compute_alignment(src, measure="mexa", pivot="deu_Latn", device="cpu", progress=False)
    np.testing.assert_array_equal(piv.sim[:, 1], full.sim[:, 1])
    np.testing.assert_array_equal(piv.sim[:, :, 1], full.sim[:, :, 1])
    assert np.isnan(piv.sim[:, 0, 2]).all() and piv.count[0, 2] == 0 and piv.count[0, 1] == full.count[0, 1]
    assert piv.attrs["pivot"] == "deu_Latn"
    with pytest.raises(BabelmapError):
        compute_alignment(src, measure="mexa", pivot="xyz_Latn", progress=False)


def test_bootstrap_over_groups_matches_a_direct_resampling():
    """The streamed per-group sums give the same replicates as resampling per-sentence hits by hand."""
    E, M = smooth_data(S=60)
    docs = [f"d{i // 6}" for i in range(60)]
    r = compute_alignment(ArraySource(E, M), measure="retrieval@1", bootstrap=200, documents=docs, seed=3,
                          device="cpu", progress=False)
    assert r.attrs["bootstrap_unit"] == "document" and r.attrs["bootstrap_groups"] == 10
    # by hand for pair (0 -> 1), layer 2
    a, b, k = 0, 1, 2
    P = np.flatnonzero(M[a] & M[b])
    x = E[a, k, P].astype(np.float64)
    y = E[b, k, P].astype(np.float64)
    C = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T
    hit = np.array([sum(C[i, j] >= C[i, i] for j in range(len(P)) if j != i) < 1 for i in range(len(P))])
    g = np.array([i // 6 for i in P])
    rng = np.random.default_rng(3)
    W = rng.multinomial(10, np.full(10, 0.1), size=200)
    hs, cs = np.bincount(g, hit, 10), np.bincount(g, minlength=10)
    rep = (W @ hs) / (W @ cs)
    assert r.stderr[2, a, b] == pytest.approx(rep.std(ddof=1), rel=1e-5)
    assert r.ci_low[2, a, b] == pytest.approx(np.percentile(rep, 2.5), rel=1e-5)
    assert r.stderr[2, 1, 1] == 0


def test_dispatch_cli_and_errors(tmp_path, capsys):
    from babelmap.cli import main
    E, M = smooth_data()
    langs = ["eng_Latn", "deu_Latn", "fra_Latn", "ita_Latn", "spa_Latn"]
    path = write_store(tmp_path / "s.h5", langs, [f"s{i}" for i in range(50)], E, mask=M)
    via = compute_similarity(path, measure="retrieval@2", layers=[1], device="cpu", progress=False)
    ref, cnt = reference(E[:, [1]], M, "retrieval@2")
    np.testing.assert_allclose(via.sim, ref, atol=1e-6, equal_nan=True)
    assert main(["similarity", str(path), "--measure", "mexa", "--out", str(tmp_path / "m.h5"),
                 "--pivot", "eng_Latn", "--no-progress"]) == 0
    r = SimilarityResult.load(tmp_path / "m.h5")
    assert r.attrs["measure"] == "mexa" and r.attrs["pivot"] == "eng_Latn"
    ref, _ = reference(E, M, "mexa")
    np.testing.assert_allclose(r.sim[:, 0], ref[:, 0], atol=1e-6, equal_nan=True)
    assert "mexa" in capsys.readouterr().out
    with pytest.raises(BabelmapError):
        parse_measure("retrieval@0")
    assert main(["similarity", str(path), "--measure", "bleu", "--out", str(tmp_path / "x.h5")]) == 1
