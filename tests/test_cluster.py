"""Clustering: linkage against SciPy on a hand-built distance, ARI and purity against hand
computation, family recovery on a block-structured matrix and on the released tables."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import shared

from babelmap.analysis.cluster import (adjusted_rand_index, cluster, contingency, distance_matrix,
                                       evaluate_cuts, purity)
from babelmap.kernels.matrix import LanguageMatrix


def test_ari_and_purity_hand_computed():
    # pred {0,0,0 | 1,1,1} vs true {a,a | b,b | c,c}: table [[2,1,0],[0,1,2]]
    # sum C(nij,2)=2, sum C(a,2)=6, sum C(b,2)=3, C(6,2)=15, E=6*3/15=1.2, max=4.5
    # ARI=(2-1.2)/(4.5-1.2)=8/33; purity=(2+2)/6
    pred, true = [0, 0, 0, 1, 1, 1], ["a", "a", "b", "b", "c", "c"]
    assert contingency(pred, true).tolist() == [[2, 1, 0], [0, 1, 2]]
    assert adjusted_rand_index(pred, true) == pytest.approx(8 / 33, abs=1e-15)
    assert purity(pred, true) == pytest.approx(2 / 3)
    # the scikit-learn documentation example: ARI([0,0,1,1],[0,0,1,2]) = 4/7
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert adjusted_rand_index([1, 1, 2, 2], ["x", "x", "y", "y"]) == 1.0  # relabelled = identical
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)  # (0 - 1/3) / (1 - 1/3)
    assert purity([0, 1, 2, 3], ["a", "a", "b", "b"]) == 1.0


def _blocks(sizes=(4, 3, 5), within=0.8, between=0.2, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    L = len(labels)
    s = np.where(labels[:, None] == labels[None, :], within, between) + noise * rng.standard_normal((L, L))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    langs = [f"l{i:02d}_Latn" for i in range(L)]
    return LanguageMatrix(langs, s, "toy"), {l: f"fam{labels[i]}" for i, l in enumerate(langs)}


def test_linkage_matches_scipy_and_recovers_blocks():
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    m, fam = _blocks()
    for method in ("complete", "average", "single"):
        c = cluster(m, k=3, method=method)
        d = 1.0 - m.values
        np.fill_diagonal(d, 0.0)
        Z = linkage(squareform(d, checks=False), method=method)
        assert np.allclose(c.Z, Z)
        assert c.labels.tolist() == fcluster(Z, 3, "maxclust").tolist()
        ev = c.evaluate(fam)
        assert ev["ari"] == 1.0 and ev["purity"] == 1.0 and ev["k"] == 3
    assert sorted(c.ordered_languages) == sorted(m.languages)
    assert sorted(len(v) for v in c.clusters().values()) == [3, 4, 5]
    # languages without a family are left out of the evaluation and listed
    fam2 = dict(fam, l00_Latn=None)
    assert cluster(m, 3).evaluate(fam2)["unlabelled"] == ["l00_Latn"]
    tab = evaluate_cuts(cluster(m), fam, ks=[2, 3, 6])
    assert tab.set_index("k").loc[3, "ari"] == 1.0
    assert tab.set_index("k").loc[2, "ari"] < 1.0
    with pytest.raises(ValueError, match="unknown linkage"):
        cluster(m, method="nope")


def test_nan_pairs_and_rescale():
    m, _ = _blocks(sizes=(2, 2))
    v = m.values.copy()
    v[0, 3] = v[3, 0] = np.nan
    d, filled = distance_matrix(LanguageMatrix(m.languages, v))
    assert filled == 1 and d[0, 3] == pytest.approx(np.nanmax(1 - v[~np.eye(4, dtype=bool)]))
    neg = LanguageMatrix(m.languages, -100 * (1 - m.values), "lex")   # like LEX: minus a distance
    d2, _ = distance_matrix(neg, rescale=True)
    off = ~np.eye(4, dtype=bool)
    assert d2[off].min() == pytest.approx(0.0) and d2[off].max() == pytest.approx(1.0)


def test_released_xlmr_clusters_nontrivially_against_genetic_groups():
    """Layer 8 of the released XLM-R matrix, 4 clusters: the Slavic languages in the table
    should mostly share a cluster (a sanity check on real data, not a benchmark)."""
    path = shared("mplm_sim_results", "model_corpus", "xlm-roberta-base_flores200", "sents_layer8.tsv")
    m = LanguageMatrix.from_tsv(path)
    np.fill_diagonal(m.values, 1.0)
    c = cluster(m, k=8)
    slavic = ["bel_Cyrl", "bos_Latn", "bul_Cyrl", "ces_Latn", "hrv_Latn", "mkd_Cyrl", "pol_Latn",
              "rus_Cyrl", "slk_Latn", "slv_Latn", "srp_Cyrl", "ukr_Cyrl"]
    labs = [c.labels[m.index(l)] for l in slavic]
    assert max(labs.count(x) for x in set(labs)) >= 8


def test_save_load_round_trip(tmp_path):
    from babelmap.analysis.cluster import Clustering
    m, _ = _blocks()
    c = cluster(m, k=3, method="average")
    c.info = {"layer": 4, "families": {"a": "x"}}
    back = Clustering.load(c.save(tmp_path / "c.h5"))
    assert back.languages == c.languages and back.method == "average" and back.info == c.info
    assert np.array_equal(back.Z, c.Z) and np.array_equal(back.distance, c.distance)
    assert np.array_equal(back.labels, c.labels) and back.order == c.order and back.filled == c.filled
