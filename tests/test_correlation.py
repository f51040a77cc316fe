"""The correlation protocol against an independent SciPy computation on the released
mPLM-Sim tables, and its bookkeeping (dropped languages, intervals) on small synthetic input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared

from babelmap.analysis.correlation import (REASON_CONSTANT_MEASURE, REASON_CONSTANT_MODEL, REASON_FEW,
                                           REASON_NAN_MEASURE, REASON_NAN_MODEL, REASON_NOT_COVERED, by_layer_table, correlate,
                                           summary_table)
from babelmap.kernels.matrix import LanguageMatrix
from babelmap.kernels.result import SimilarityResult


def _result(langs, layers, sim, stderr=None):
    """A SimilarityResult of given sims (every pair counted once)."""
    return SimilarityResult(langs, layers, sim, np.ones((len(langs), len(langs)), np.int32), stderr=stderr)


def _scipy_reference(folder, measure_path):
    """Direct computation, written independently of the module: pandas + scipy.stats."""
    import pandas as pd
    from scipy.stats import pearsonr, spearmanr
    meas = pd.read_csv(measure_path, sep="\t", index_col=0, float_precision="round_trip")
    mpos = {l: i for i, l in enumerate(meas.index)}
    mval = meas.to_numpy()
    out = {}
    for layer in range(13):
        sim = pd.read_csv(folder / f"sents_layer{layer}.tsv", sep="\t", index_col=0,
                          float_precision="round_trip")
        sval = sim.to_numpy()
        per_lang = {}
        for a, lang in enumerate(sim.index):
            if lang not in mpos:
                continue
            xs, ys = [], []
            for b, other in enumerate(sim.columns):
                if other == lang or other not in mpos:
                    continue
                x, y = sval[a, b], mval[mpos[lang], mpos[other]]
                if math.isnan(x) or math.isnan(y):
                    continue
                xs.append(x)
                ys.append(y)
            if len(set(ys)) < 2:
                continue  # constant: r undefined
            per_lang[lang] = (pearsonr(xs, ys)[0], spearmanr(xs, ys)[0])
        out[layer] = per_lang
    return out


def test_protocol_equals_scipy_on_released_tables():
    folder = shared("mplm_sim_results", "model_corpus", "xlm-roberta-base_flores200")
    gpath = shared("mplm_sim_linguistic", "genetic.tsv")
    ref = _scipy_reference(folder, gpath)
    # float64 path: one LanguageMatrix per layer (exact to rounding)
    layers = [LanguageMatrix.from_tsv(folder / f"sents_layer{k}.tsv") for k in range(13)]
    corr = correlate(layers, LanguageMatrix.from_tsv(gpath))
    assert corr.layers == list(range(13))
    assert len(corr.languages) == 84
    for k in range(13):
        per = ref[k]
        for j, lang in enumerate(corr.languages):
            if lang in per:
                assert corr.pearson[k, j] == pytest.approx(per[lang][0], abs=1e-10)
                assert corr.spearman[k, j] == pytest.approx(per[lang][1], abs=1e-10)
            else:
                assert np.isnan(corr.pearson[k, j])
        assert corr.mean_pearson[k] == pytest.approx(np.mean([v[0] for v in per.values()]), abs=1e-12)
        assert corr.mean_spearman[k] == pytest.approx(np.mean([v[1] for v in per.values()]), abs=1e-12)
        assert corr.n_used[k] == len(per)
    # best layer and mean of per-language maxima, from the reference numbers
    ref_means = [np.mean([v[0] for v in ref[k].values()]) for k in range(13)]
    assert corr.best_layer() == int(np.argmax(ref_means))
    langs = sorted(ref[0])
    ref_max = np.mean([max(ref[k][l][0] for k in range(13)) for l in langs])
    assert corr.mean_of_max() == pytest.approx(ref_max, abs=1e-12)
    # constant genetic rows (missing URIEL encoded as 0) are reported, not averaged
    dropped = {d.language: d.reason for d in corr.dropped}
    for lang in ("ekk_Latn", "eus_Latn", "jpn_Jpan"):
        assert dropped[lang] == REASON_CONSTANT_MEASURE
    assert set(dropped) == set(corr.languages) - set(ref[0])
    tables = corr.to_pandas()
    assert set(tables["dropped"]["language"]) == set(dropped)
    assert tables["by_layer"]["pearson"].tolist() == pytest.approx(ref_means, abs=1e-12)
    # the SimilarityResult path stores float32 (the result contract); at layer 12 the values
    # span only 0.982..0.999, so float32 rounding moves r by up to ~1e-5
    res = SimilarityResult.from_tsv(folder)
    assert res.layers == list(range(13)) and res.get("eng_Latn", "deu_Latn", 12) == pytest.approx(
        layers[12].get("eng_Latn", "deu_Latn"), abs=1e-7)
    c32 = correlate(res, LanguageMatrix.from_tsv(gpath))
    assert np.allclose(c32.pearson, corr.pearson, atol=1e-4, equal_nan=True)
    # float32 rounding also creates rank ties there, which moves Spearman by up to ~1e-3
    assert np.allclose(c32.spearman, corr.spearman, atol=2e-3, equal_nan=True)


def _toy(L=8, K=2, seed=0):
    rng = np.random.default_rng(seed)
    langs = [f"l{i:02d}_Latn" for i in range(L)]
    sim = rng.random((K, L, L))
    sim = (sim + sim.transpose(0, 2, 1)) / 2
    for k in range(K):
        np.fill_diagonal(sim[k], 1.0)
    sim = sim.astype(np.float32).astype(np.float64)   # what a SimilarityResult holds (float32)
    meas = rng.random((L, L))
    meas = (meas + meas.T) / 2
    return langs, sim, meas


def test_drop_reasons_and_variant_fallback():
    langs, sim, meas = _toy(L=8)
    langs[7] = "l06_Latn-v2"               # a variant of l06: measure row via base id
    mlangs = [l for l in langs if "-" not in l]
    m = LanguageMatrix(mlangs, meas[:7, :7], "toy")
    m.values[0, 1:] = m.values[1:, 0] = 0.3  # constant row for l00
    m_langs = list(mlangs)
    # drop l05 from the measure: not covered
    keep = [l for l in m_langs if l != "l05_Latn"]
    m = m.subset(keep)
    sim[1, 2, :] = sim[1, :, 2] = 0.5       # l02 constant model vector at layer 1 only
    sim[1, 2, 2] = 1.0
    corr = correlate(_result(langs, [0, 1], sim), m, min_partners=3)
    reasons = {(d.language, d.layer): d.reason for d in corr.dropped}
    assert reasons[("l05_Latn", None)] == REASON_NOT_COVERED
    assert reasons[("l00_Latn", None)] == REASON_CONSTANT_MEASURE
    assert reasons[("l02_Latn", 1)] == REASON_CONSTANT_MODEL
    assert np.isfinite(corr.pearson[0, 2]) and np.isnan(corr.pearson[1, 2])
    # the variant uses l06's measure row; its partners exclude itself and l05
    j = langs.index("l06_Latn-v2")
    partners = [i for i in range(8) if i not in (j, 5)]
    from scipy.stats import pearsonr
    x = sim[0, j, partners]
    y = [m.get("l06_Latn", langs[i].split("-")[0]) for i in partners]
    assert corr.pearson[0, j] == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
    # a NaN measure row, a NaN model row (no shared sentences)
    m2 = LanguageMatrix(m.languages, m.values.copy(), "toy")
    r3 = m2.index("l03_Latn")
    m2.values[r3, :] = m2.values[:, r3] = np.nan
    sim2 = sim.copy()
    sim2[:, 4, :] = sim2[:, :, 4] = np.nan
    c3 = correlate(_result(langs, [0, 1], sim2), m2, min_partners=3)
    reasons3 = {(d.language, d.layer): d.reason for d in c3.dropped}
    assert reasons3[("l03_Latn", None)] == REASON_NAN_MEASURE
    assert reasons3[("l04_Latn", None)] == REASON_NAN_MODEL
    # the others lose those partners but stay
    j6 = langs.index("l06_Latn")
    assert c3.partners[j6] == 8 - 1 - 3       # minus itself, l05 (uncovered), l03, l04
    # too few partners
    corr2 = correlate(_result(langs, [0, 1], sim), m, min_partners=7)
    assert all(d.reason in (REASON_FEW, REASON_NOT_COVERED) for d in corr2.dropped)
    assert np.isnan(corr2.mean_pearson).all()
    with pytest.raises(ValueError, match="no layer"):
        corr2.best_layer()
    assert "few" in summary_table([corr2])["dropped"][0]


def test_bootstrap_intervals():
    langs, sim, meas = _toy(L=30, K=3, seed=1)
    m = LanguageMatrix(langs, meas, "toy")
    c = correlate(_result(langs, [0, 1, 2], sim), m, bootstrap=300, seed=3)
    lo, hi = c.ci["pearson_low"], c.ci["pearson_high"]
    assert np.all(lo < c.mean_pearson) and np.all(c.mean_pearson < hi)
    # the interval width is about 2 * 1.96 * sd / sqrt(n) over languages
    sd = np.nanstd(c.pearson, axis=1, ddof=1) / np.sqrt(30)
    assert np.allclose(hi - lo, 2 * 1.96 * sd, rtol=0.35)
    # pair uncertainty with zero stderr: degenerate interval equal to the point estimate
    c0 = correlate(_result(langs, [0, 1, 2], sim, stderr=np.zeros_like(sim)), m, bootstrap=20,
                   uncertainty="pairs")
    assert np.allclose(c0.ci["pearson_low"], c0.mean_pearson)
    assert np.allclose(c0.ci["pearson_high"], c0.mean_pearson)
    # with a large stderr the interval widens and stays around the estimate
    cw = correlate(_result(langs, [0, 1, 2], sim, stderr=np.full_like(sim, 0.2)), m, bootstrap=50,
                   uncertainty="pairs")
    assert np.all(cw.ci["pearson_high"] - cw.ci["pearson_low"] > 0.01)
    with pytest.raises(ValueError, match="stderr"):
        correlate(_result(langs, [0, 1, 2], sim), m, bootstrap=5, uncertainty="pairs")


def test_layers_selection_and_tables():
    langs, sim, meas = _toy(L=10, K=4, seed=2)
    m = LanguageMatrix(langs, meas, "toy")
    full = correlate(_result(langs, [0, 1, 2, 3], sim), m)
    part = correlate(_result(langs, [0, 1, 2, 3], sim), m, layers=[3, 1])
    assert part.layers == [3, 1]
    assert np.allclose(part.pearson[0], full.pearson[3])
    with pytest.raises(ValueError, match="not in the result"):
        correlate(_result(langs, [0, 1, 2, 3], sim), m, layers=[9])
    wide = by_layer_table({"toy": full})
    assert wide.loc["toy"].tolist() == pytest.approx(full.mean_pearson.tolist())
    lm = full.to_pandas()["language_max"]
    assert lm["max_pearson"].tolist() == pytest.approx(np.nanmax(full.pearson, axis=0).tolist())


def test_save_load_round_trip(tmp_path):
    from babelmap.analysis.correlation import Correlation, load_correlations, save_correlations
    langs, sim, meas = _toy(L=12, K=3, seed=2)
    meas[0, :] = meas[:, 0] = 0.5                      # l00: constant row -> a dropped entry
    m = LanguageMatrix(langs, meas, "toy")
    c = correlate(_result(langs, [0, 4, 8], sim), m, bootstrap=20, min_partners=3)
    assert c.dropped
    back = load_correlations(save_correlations({"toy": c, "again": c}, tmp_path / "c.h5"))
    assert list(back) == ["toy", "again"]
    b = back["toy"]
    assert b.layers == [0, 4, 8] and b.languages == langs and b.dropped == c.dropped
    assert np.array_equal(b.pearson, c.pearson, equal_nan=True) and list(b.ci) == list(c.ci)
    assert all(np.array_equal(b.ci[k], c.ci[k]) for k in c.ci) and b.uncertainty == c.uncertainty
    assert b.to_pandas()["by_layer"].equals(c.to_pandas()["by_layer"])
    assert Correlation.load(c.save(tmp_path / "one.h5")).summary() == c.summary()
