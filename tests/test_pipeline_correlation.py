"""The pipeline's one correlation protocol (stages.correlate_measures), used by the correlation
stage for cosine-mean and by every alignment measure, and its one default-layer record
(write_layer_choice / read_layer_choice): checked against SciPy's Pearson per language."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr

from babelmap.kernels.matrix import LanguageMatrix
from babelmap.kernels.result import SimilarityResult
from babelmap.pipeline.stages import correlate_measures, read_layer_choice, write_layer_choice

LANGS = [f"l{i:02d}_Latn" for i in range(9)]


def _inputs(seed: int = 0):
    """Two measures; layer 4 follows them closely, layers 0 and 8 less so (noisier)."""
    rng = np.random.default_rng(seed)
    L = len(LANGS)
    pts = rng.normal(size=(L, 3))
    truth = -np.linalg.norm(pts[:, None] - pts[None], axis=2)
    noise = lambda s: (lambda e: (e + e.T) / 2)(rng.normal(size=(L, L)) * s)  # noqa: E731
    measures = {"geo": LanguageMatrix(LANGS, truth + noise(0.3), name="geo"),
                "gen": LanguageMatrix(LANGS, truth + noise(0.6), name="gen")}
    sim = np.stack([truth + noise(s) for s in (2.0, 0.2, 1.5)]).astype(np.float32)
    for k in range(3):
        np.fill_diagonal(sim[k], 1.0)
    return SimilarityResult(LANGS, [0, 4, 8], sim, np.full((L, L), 10, np.int32)), measures


def _mean_pearson(sim: np.ndarray, m: np.ndarray) -> float:
    rs = []
    for i in range(len(LANGS)):
        j = [x for x in range(len(LANGS)) if x != i]
        rs.append(pearsonr(sim[i, j].astype(np.float64), m[i, j])[0])
    return float(np.mean(rs))


def test_correlate_measures_matches_scipy_and_records_the_layer(tmp_path):
    result, measures = _inputs()
    cdir = tmp_path / "correlation"
    corrs = correlate_measures(result, measures, cdir, cdir / "default_layer.json", min_partners=5)
    ref = {n: [_mean_pearson(result.sim[k], m.values) for k in range(3)] for n, m in measures.items()}
    for n in measures:
        np.testing.assert_allclose(corrs[n].mean_pearson, ref[n], rtol=0, atol=1e-6)
    best = [0, 4, 8][int(np.argmax(np.mean([ref["geo"], ref["gen"]], axis=0)))]
    assert best == 4
    layer, why = read_layer_choice(cdir / "default_layer.json")
    assert layer == best and "geo, gen" in why
    for f in ("correlations.h5", "summary.tsv", "by_layer_pearson.tsv", "per_language.tsv"):
        assert (cdir / f).is_file(), f


def test_alignment_correlations_use_the_same_protocol(tmp_path):
    from babelmap.pipeline.alignment import LAYER_FILE, alignment_correlations, best_alignment_layer
    result, measures = _inputs(1)
    a = correlate_measures(result, measures, tmp_path / "a", tmp_path / "a" / "layer.json", min_partners=5,
                           bootstrap=50)
    b = alignment_correlations(result, result, measures, tmp_path / "b", min_partners=5, bootstrap=50)
    for n in measures:
        np.testing.assert_array_equal(a[n].mean_pearson, b[n].mean_pearson)
        assert sorted(a[n].ci) == sorted(b[n].ci) and a[n].ci and a[n].uncertainty == b[n].uncertainty
        for key in a[n].ci:                          # the same bootstrap (>= 200 resamples, same seed)
            np.testing.assert_array_equal(a[n].ci[key], b[n].ci[key])
    assert best_alignment_layer(tmp_path / "b") == read_layer_choice(tmp_path / "a" / "layer.json")
    assert (tmp_path / "b" / LAYER_FILE).is_file() and (tmp_path / "b" / "vs_cosine.tsv").is_file()


def test_layer_choice_round_trip(tmp_path):
    write_layer_choice(tmp_path / "x.json", np.int64(7), "why not")
    assert json.loads((tmp_path / "x.json").read_text()) == {"best_layer": 7, "reason": "why not"}
    assert read_layer_choice(tmp_path / "x.json") == (7, "why not")
    with pytest.raises(FileNotFoundError):
        read_layer_choice(tmp_path / "absent.json")
