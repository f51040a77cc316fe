"""babelmap.load and the one result type (SimilarityResult) on synthetic result files (real HDF5)."""
from __future__ import annotations

import numpy as np
import pytest

import babelmap
from babelmap import api
from babelmap.engine.errors import BabelmapError, LanguageError
from babelmap.kernels.matrix import LanguageMatrix
from babelmap.kernels.result import SimilarityResult

LANGS = ["deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans"]


def _result(attrs=None):
    rng = np.random.default_rng(0)
    K, L = 3, len(LANGS)
    sim = rng.uniform(0.1, 0.9, (K, L, L))
    sim = (sim + sim.transpose(0, 2, 1)) / 2
    for k in range(K):
        np.fill_diagonal(sim[k], 1.0)
    return SimilarityResult(LANGS, [0, 4, 8], sim.astype(np.float32), np.full((L, L), 7), attrs=attrs or {})


def test_load_paths_names_and_layers(tmp_path, caplog):
    raw = _result({"best_layer": 4, "best_layer_measure": "genetic"})
    f = raw.save(tmp_path / "res.h5")
    r = babelmap.load(f)
    assert r.layers == [0, 4, 8] and r.default_layer == 4
    assert "genetic" in r.default_layer_reason and "recorded" in r.default_layer_reason
    expect = float(raw.sim[1, LANGS.index("eng_Latn"), LANGS.index("deu_Latn")])
    with caplog.at_level("INFO", logger="babelmap"):
        assert r.get("English", "German") == pytest.approx(expect)
    assert "using layer 4" in caplog.text
    v, layer = r.get("en", "deu_Latn", with_layer=True)
    assert layer == 4 and v == pytest.approx(expect)
    assert r.get("eng_Latn", "deu_Latn", layer=8) == pytest.approx(float(raw.sim[2, 1, 0]))
    # nearest: independent argsort of the row
    row = raw.sim[1, 1].astype(np.float64).copy()
    row[1] = -np.inf
    want = [LANGS[i] for i in np.argsort(-row)[:3]]
    assert [l for l, _ in r.nearest("English", 3)] == want
    assert r.matrix().name.endswith("@4")
    assert len(r.to_pandas()) == 3 * 10
    # a results folder with similarity.h5
    (tmp_path / "run").mkdir()
    _result().save(tmp_path / "run" / "similarity.h5")
    r2 = babelmap.load(tmp_path / "run")
    assert r2.default_layer == 8 and "last layer" in r2.default_layer_reason
    with pytest.raises(BabelmapError, match="layer 3"):
        r2.get("eng_Latn", "deu_Latn", layer=3)
    # a run records its chosen layer beside similarity.h5 (never rewriting it); load applies it
    (tmp_path / "run" / "correlation").mkdir()
    (tmp_path / "run" / "correlation" / "default_layer.json").write_text(
        '{"best_layer": 4, "reason": "highest mean Pearson r over lex"}')
    r3 = babelmap.load(tmp_path / "run")
    assert r3.default_layer == 4 and "over lex" in repr(r3)
    assert r3.get("English", "German") == pytest.approx(float(r3.sim[1, 1, 0]))


def test_unknown_names_and_shipped(tmp_path, monkeypatch):
    r = _result()
    with pytest.raises(LanguageError) as e:
        r.get("Englsh", "German")
    assert "Englsh" in str(e.value)
    with pytest.raises(LanguageError):
        r.get("Japanese", "German")     # a real language that is not in the result
    monkeypatch.setattr(api, "DATA_DIR", tmp_path / "data")
    with pytest.raises(BabelmapError, match="no shipped result named 'default/flores200'"):
        babelmap.load("default/flores200")
    (tmp_path / "data").mkdir()
    _result({"best_layer": 0}).save(tmp_path / "data" / "default_flores200.h5")
    r3 = babelmap.load("default/flores200")
    assert r3.default_layer == 0 and r3.path.name == "default_flores200.h5"
    assert isinstance(r3, SimilarityResult) and "default layer 0 (recorded best layer" in repr(r3)
    with pytest.raises(BabelmapError, match="no similarity result"):
        babelmap.load(tmp_path / "nope.h5")


def test_correlate_with_matrix_and_tsv(tmp_path):
    raw = _result()
    r = raw
    rng = np.random.default_rng(5)
    v = rng.random((5, 5))
    m = LanguageMatrix(LANGS, (v + v.T) / 2, "toy")
    c = babelmap.correlate(r, m, min_partners=3)
    from scipy.stats import pearsonr
    x = raw.sim[2, 0, 1:].astype(np.float64)
    y = m.values[0, 1:]
    assert c.pearson[2, 0] == pytest.approx(pearsonr(x, y)[0], abs=1e-6)
    m.to_tsv(tmp_path / "toy.tsv")
    c2 = babelmap.correlate(r, str(tmp_path / "toy.tsv"), min_partners=3)
    assert np.allclose(c2.pearson, c.pearson, equal_nan=True)
    with pytest.raises(BabelmapError, match="unknown measure"):
        babelmap.correlate(r, "nonsense")


def test_info_command(tmp_path, capsys):
    from babelmap.cli import main
    raw = _result({"best_layer": 4, "best_layer_measure": "against genetic", "model": "toy-model"})
    raw.save(tmp_path / "res.h5")
    assert main(["info", str(tmp_path / "res.h5"), "--nearest", "English", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 languages x 3 layers" in out and "toy-model" in out and "default layer 4" in out
    row = raw.sim[1, 1].astype(float).copy()
    row[1] = -np.inf
    first = LANGS[int(np.argmax(row))]
    assert out.split("nearest to eng_Latn at layer 4:")[1].split()[0] == first
    assert main(["info", str(tmp_path / "missing.h5")]) == 1


def test_correlate_by_uriel_name():
    pytest.importorskip("urielplus", reason="URIEL measures need urielplus")
    from babelmap.analysis.correlation import correlate
    from babelmap.analysis.linguistic import uriel_matrix
    raw = _result()
    c = babelmap.correlate(raw, "geographic", min_partners=3)
    ref = correlate(raw, uriel_matrix("geographic", LANGS), min_partners=3)
    assert c.measure == ref.measure
    assert np.allclose(c.pearson, ref.pearson, equal_nan=True) and np.isfinite(c.pearson).any()
