"""SimilarityResult: HDF5 round trip, access by id and layer, long table, TSV export, subset."""
import h5py
import numpy as np
import pytest

from babelmap.errors import LanguageError, StoreError
from babelmap.kernels.matrix import LanguageMatrix
from babelmap.kernels.result import SimilarityResult

LANGS = ["deu_Latn", "eng_Latn", "fra_Latn", "zho_Hans"]


def _result(boot=False, seed=0):
    rng = np.random.default_rng(seed)
    K, L = 3, len(LANGS)
    a = rng.random((K, L, L))
    sim = (a + a.transpose(0, 2, 1)) / 2
    for k in range(K):
        np.fill_diagonal(sim[k], 1.0)
    count = np.full((L, L), 7, np.int32)
    count[0, 3] = count[3, 0] = 0
    sim[:, 0, 3] = sim[:, 3, 0] = np.nan
    extra = {}
    if boot:
        extra = dict(stderr=rng.random((K, L, L)) * 0.01, ci_low=sim - 0.02, ci_high=sim + 0.02)
    return SimilarityResult(LANGS, [0, 6, 12], sim, count, attrs={"model": "m", "bootstrap": 5 if boot else 0},
                            **extra)


def test_save_load_round_trip(tmp_path):
    r = _result(boot=True)
    p = r.save(tmp_path / "sims.h5")
    assert [x.name for x in tmp_path.iterdir()] == ["sims.h5"]   # temp file renamed away
    with h5py.File(p) as f:   # the DESIGN.md layout, read with plain h5py
        assert f["sim"].dtype == np.float32 and f["sim"].shape == (3, 4, 4)
        assert f["count"].dtype == np.int32 and f["layers"][()].tolist() == [0, 6, 12]
        assert [x.decode() for x in f["languages"][()]] == LANGS
        assert f.attrs["measure"] == "cosine-mean" and f.attrs["model"] == "m"
        assert f["stderr"].shape == (3, 4, 4)
    q = SimilarityResult.load(p)
    assert q.languages == LANGS and q.layers == [0, 6, 12]
    np.testing.assert_array_equal(q.sim, r.sim)
    np.testing.assert_array_equal(q.count, r.count)
    for n in ("stderr", "ci_low", "ci_high"):
        np.testing.assert_array_equal(getattr(q, n), getattr(r, n))
    assert q.attrs["bootstrap"] == 5 and q.attrs["measure"] == "cosine-mean"


def test_load_errors(tmp_path):
    with pytest.raises(StoreError, match="no similarity result"):
        SimilarityResult.load(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["sim"] = np.zeros((1, 1, 1))
    with pytest.raises(StoreError, match="/languages"):
        SimilarityResult.load(tmp_path / "x.h5")


def test_get_layer_semantics():
    r = _result()
    assert r.get("eng_Latn", "fra_Latn", 6) == pytest.approx(float(r.sim[1, 1, 2]))
    # None = last layer; layer numbers are hidden-state ids, not positions
    assert r.get("eng_Latn", "fra_Latn") == pytest.approx(float(r.sim[2, 1, 2]))
    assert r.get("eng_Latn", "fra_Latn", -1) == pytest.approx(float(r.sim[2, 1, 2]))
    assert np.isnan(r.get("deu_Latn", "zho_Hans", 0)) and r.get_count("deu_Latn", "zho_Hans") == 0
    with pytest.raises(KeyError, match="layer 5"):
        r.get("eng_Latn", "fra_Latn", 5)
    with pytest.raises(LanguageError, match="eng_Latx"):
        r.get("eng_Latx", "fra_Latn")


def test_matrix_and_tsv_export(tmp_path):
    r = _result()
    m = r.matrix(12)
    assert isinstance(m, LanguageMatrix) and m.name == "mplm-sim@12"
    np.testing.assert_array_equal(m.values, r.sim[2].astype(np.float64))
    files = r.export_tsv(tmp_path / "tsv")
    assert sorted(f.name for f in files) == ["sents_layer0.tsv", "sents_layer12.tsv", "sents_layer6.tsv"]
    lines = (tmp_path / "tsv" / "sents_layer6.tsv").read_text().splitlines()
    assert lines[0] == "\t" + "\t".join(LANGS)
    cells = lines[2].split("\t")   # eng_Latn row: empty diagonal like the release
    assert cells[0] == "eng_Latn" and cells[2] == "" and float(cells[3]) == float(r.sim[1, 1, 2])
    back = LanguageMatrix.from_tsv(tmp_path / "tsv" / "sents_layer6.tsv")
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_array_equal(back.values[off], r.sim[1][off].astype(np.float64))


def test_to_pandas_long_format():
    r = _result(boot=True)
    df = r.to_pandas()
    assert len(df) == 3 * 6 and list(df.columns) == ["layer", "a", "b", "sim", "count", "stderr", "ci_low",
                                                        "ci_high"]
    row = df[(df.layer == 6) & (df.a == "eng_Latn") & (df.b == "zho_Hans")].iloc[0]
    assert row["sim"] == pytest.approx(float(r.sim[1, 1, 3])) and row["count"] == 7
    assert row["stderr"] == pytest.approx(float(r.stderr[1, 1, 3]))
    full = r.to_pandas(full=True)
    assert len(full) == 3 * 16
    d = full[(full.layer == 0) & (full.a == "fra_Latn") & (full.b == "fra_Latn")].iloc[0]
    assert d["sim"] == 1.0 and d["count"] == 7


def test_subset_and_select_layers():
    r = _result(boot=True)
    s = r.subset(["zho_Hans", "eng_Latn"])
    assert s.languages == ["zho_Hans", "eng_Latn"]
    assert s.get("zho_Hans", "eng_Latn", 6) == pytest.approx(r.get("zho_Hans", "eng_Latn", 6))
    np.testing.assert_array_equal(s.stderr[:, 0, 1], r.stderr[:, 3, 1])
    t = r.select_layers([12, 0])
    assert t.layers == [12, 0] and t.get("deu_Latn", "eng_Latn", 0) == r.get("deu_Latn", "eng_Latn", 0)


def test_nearest_excludes_self_and_nan():
    r = _result()
    near = r.nearest("deu_Latn", k=5, layer=0)
    row = r.sim[0, 0]
    expect = sorted([(LANGS[j], float(row[j])) for j in (1, 2)], key=lambda t: -t[1])
    assert [l for l, _ in near] == [l for l, _ in expect]     # zho_Hans (NaN) and itself left out
    assert [v for _, v in near] == pytest.approx([v for _, v in expect])


def test_shape_validation():
    with pytest.raises(ValueError, match="sim must be"):
        SimilarityResult(["a", "b"], [0], np.zeros((1, 3, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="duplicate"):
        SimilarityResult(["a", "a"], [0], np.zeros((1, 2, 2)), np.zeros((2, 2)))


def test_names_default_layer_and_repr(caplog):
    r = _result()
    # no best layer recorded: None = the last layer, and repr says so
    assert r.default_layer == 12 and "last layer" in r.default_layer_reason and "default layer 12" in repr(r)
    assert r.get("English", "French") == pytest.approx(float(r.sim[2, 1, 2]))
    assert r.get("en", "de", layer=0) == pytest.approx(float(r.sim[0, 1, 0]))
    assert r.get_count("German", "Chinese") == 0
    assert [l for l, _ in r.nearest("German", 2, layer=6)] == [l for l, _ in r.nearest("deu_Latn", 2, layer=6)]
    assert r.subset(["Chinese", "English"]).languages == ["zho_Hans", "eng_Latn"]
    with pytest.raises(LanguageError, match="Japanese"):
        r.get("Japanese", "English")
    # a recorded best layer is what None means
    r.attrs.update(best_layer=6, best_layer_measure="against genetic")
    with caplog.at_level("INFO", logger="babelmap"):
        v, layer = r.get("English", "French", with_layer=True)
    assert layer == 6 and v == pytest.approx(float(r.sim[1, 1, 2])) and "using layer 6" in caplog.text
    assert r.matrix().name == "mplm-sim@6"
    assert "default layer 6 (recorded best layer: against genetic)" in repr(r)
    r.attrs["best_layer"] = 7          # not one of the layers: falls back to the last
    assert r.default_layer == 12


def test_layer_error_is_keyerror_and_babelmap_error():
    from babelmap.errors import BabelmapError
    r = _result()
    with pytest.raises(BabelmapError) as e:
        r.get("eng_Latn", "fra_Latn", 5)
    assert isinstance(e.value, KeyError) and str(e.value).startswith("layer 5 is not")   # no KeyError quotes


def test_format_and_measure_attributes(tmp_path):
    # a result computed from a store carries the store's provenance, `format` included
    r = _result()
    r2 = SimilarityResult(r.languages, r.layers, r.sim, r.count,
                          attrs={"format": "babelmap.store", "format_version": 1, "model": "m"})
    assert r2.format == "babelmap.similarity" and r2.measure == "cosine-mean" and "format" not in r2.attrs
    p = r2.save(tmp_path / "s.h5")
    with h5py.File(p) as f:
        assert f.attrs["format"] == "babelmap.similarity" and f.attrs["measure"] == "cosine-mean"
    q = SimilarityResult.load(p)
    assert q.path == p and q.format == "babelmap.similarity" and q.attrs["model"] == "m"
    r3 = SimilarityResult(r.languages, r.layers, r.sim, r.count, attrs={"measure": "mexa"})
    assert r3.measure == "mexa" and r3.matrix(0).name == "mexa@0"
    assert SimilarityResult.load(r3.save(tmp_path / "m.h5")).measure == "mexa"


def test_from_tsv_reads_export_tsv_back(tmp_path):
    r = _result()
    r.export_tsv(tmp_path / "tsv")
    back = SimilarityResult.from_tsv(tmp_path / "tsv")
    assert back.languages == LANGS and back.layers == [0, 6, 12]      # numeric order, not 0, 12, 6
    off = ~np.eye(4, dtype=bool)
    for k in range(3):
        np.testing.assert_array_equal(back.sim[k][off], r.sim[k][off])    # NaN cells stay NaN
        np.testing.assert_array_equal(np.diag(back.sim[k]), np.ones(4, np.float32))
    assert back.path == tmp_path / "tsv" and back.measure == "cosine-mean"
    with pytest.raises(StoreError, match="no files matching"):
        SimilarityResult.from_tsv(tmp_path)
    (tmp_path / "tsv" / "sents_layer3.tsv").write_text("\tdeu_Latn\ndeu_Latn\t1.0\n")
    with pytest.raises(StoreError, match="sents_layer3.tsv: languages differ"):
        SimilarityResult.from_tsv(tmp_path / "tsv")


def test_summary_lines_state_support_range_and_top_pairs():
    """The lines `babelmap similarity` prints, against NumPy on the same matrix (pivot too)."""
    r = _result()
    lines = r.summary_lines(layer=6)
    k = r.layers.index(6)
    L = len(r.languages)
    off = ~np.eye(L, dtype=bool)
    vals = r.sim[k][off]
    assert lines[0] == (f"shared sentences per pair: min {int(r.count[off].min())}, median "
                        f"{int(np.median(r.count[off]))}; pairs without a shared sentence: "
                        f"{int(((r.count == 0) & off).sum() // 2)}")
    assert lines[1] == (f"layer 6: off-diagonal cosine-mean {np.nanmin(vals):.4f} .. {np.nanmax(vals):.4f} "
                        f"(mean {np.nanmean(vals):.4f})")
    iu = np.triu_indices(L, 1)
    best = int(np.nanargmax(np.where(np.isnan(r.sim[k][iu]), -np.inf, r.sim[k][iu])))
    a, b = r.languages[iu[0][best]], r.languages[iu[1][best]]
    assert lines[2].startswith(f"highest at layer 6: {a}-{b} {r.sim[k][iu][best]:.4f}")
    piv = SimilarityResult(r.languages, r.layers, r.sim, r.count, attrs={"pivot": r.languages[0]})
    pl = piv.summary_lines(layer=6)
    assert pl[0].startswith("shared sentences per pair with the pivot")
    assert all(r.languages[0] in pair for pair in pl[2].split(": ", 1)[1].split(", "))
