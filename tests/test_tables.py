"""User matrices (analysis/linguistic/tables.py) and the measure registry: the released tables
read against an independent pandas parse, renames, constant rows, bad files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared

from babelmap.analysis.linguistic import (MEASURES, REFERENCE_RENAMES, compute_measure, constant_rows,
                                          read_matrix)
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.errors import BabelmapError
from babelmap.kernels.matrix import LanguageMatrix


def test_released_genetic_against_pandas_with_renames():
    path = shared("mplm_sim_linguistic", "genetic.tsv")
    raw = pd.read_csv(path, sep="\t", index_col=0)
    m = read_matrix(path, rename=True)
    assert len(m) == raw.shape[0] == 560
    assert "zho_Hans" in m and "cmn_Hani" not in m and "yue_Hant" in m
    inv = {v: k for k, v in REFERENCE_RENAMES.items()}
    for a, b in [("eng_Latn", "deu_Latn"), ("zho_Hans", "yue_Hant"), ("est_Latn", "fin_Latn"),
                 ("grn_Latn", "kon_Latn"), ("srd_Latn", "ita_Latn")]:
        assert m.get(a, b) == raw.loc[inv.get(a, a), inv.get(b, b)]
    assert m.get("eng_Latn", "deu_Latn") == 0.4
    np.testing.assert_array_equal(np.isnan(m.values), raw.isna().to_numpy())
    assert sorted(m.missing) == ["hyw_Armn", "hyw_Cyrl", "tok_Latn"]
    assert "no value" in m.notes["tok_Latn"]


def test_constant_rows_are_flagged():
    path = shared("mplm_sim_linguistic", "geographic.tsv")
    m = read_matrix(path)
    flagged = m.notes["constant_rows"].split(",")
    # data README: these have geographic = 0 to every other language
    for lang in ["lvs_Latn", "ltg_Latn", "nno_Latn", "npi_Deva", "ory_Orya", "szl_Latn"]:
        assert lang in flagged and "constant row" in m.notes[lang]
    raw = pd.read_csv(path, sep="\t", index_col=0).to_numpy()
    for lang in flagged:                                      # check each flag independently
        i = m.index(lang)
        row = np.delete(raw[i], i)
        assert np.nanmin(row) == np.nanmax(row)
    assert "eng_Latn" not in flagged
    strict = read_matrix(path, constant_as_missing=True)
    assert set(flagged) <= set(strict.missing)
    assert np.isnan(strict.row("lvs_Latn")).all() and np.isnan(strict.values[:, strict.index("lvs_Latn")]).all()
    # jpn/nob genetic rows are 0 only within FLORES: constant_rows on the subset finds them
    gen = read_matrix(shared("mplm_sim_linguistic", "genetic.tsv"), rename=True)
    flores = read_matrix(shared("mplm_sim_linguistic", "edit_flores200.tsv"), rename=True).languages
    sub = constant_rows(gen.subset([l for l in flores if l in gen]))
    assert {"jpn_Jpan", "nob_Latn", "eus_Latn", "lvs_Latn"} <= set(sub) and sub["jpn_Jpan"] == 0.0


def test_hdf5_and_bad_files(tmp_path):
    m = LanguageMatrix(["a_Latn", "b_Latn", "c_Latn"], np.array([[1, .5, .2], [.5, 1, .3], [.2, .4, 1]]), "x")
    m.to_hdf5(tmp_path / "m.h5")
    r = read_matrix(tmp_path / "m.h5")
    np.testing.assert_array_equal(r.values, m.values)
    assert "asymmetric" in r.notes                          # .3 vs .4
    bad = tmp_path / "bad.tsv"
    bad.write_text("\ta_Latn\tb_Latn\na_Latn\t1\t0.5\nb_Latn\t0.5\n")
    with pytest.raises(BabelmapError, match=r"bad.tsv:3"):
        read_matrix(bad)
    with pytest.raises(BabelmapError, match="does not exist"):
        read_matrix(tmp_path / "nope.tsv")
    dup = tmp_path / "dup.tsv"
    dup.write_text("\tcmn_Hani\tzho_Hans\ncmn_Hani\t\t1\nzho_Hans\t1\t\n")
    with pytest.raises(BabelmapError, match="duplicate"):
        read_matrix(dup, rename=True)


def test_measure_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("BABELMAP_CACHE", str(tmp_path / "cache"))
    assert {"genetic", "geographic", "syntactic", "inventory", "phonological", "featural",
            "glottolog", "asjp", "lex", "file"} <= set(MEASURES)
    ids = ["eng_Latn", "deu_Latn", "xqq_Latn"]
    g = compute_measure("glottolog", ids, glottolog=shared("glottolog"))
    assert g.get("eng_Latn", "deu_Latn") == pytest.approx(5 / 12) and g.missing == ["xqq_Latn"]
    f = compute_measure("file", ids, path=shared("mplm_sim_linguistic", "genetic.tsv"))
    assert f.get("eng_Latn", "deu_Latn") == 0.4 and f.missing == ["xqq_Latn"]
    corpus = ParallelCorpus("t", ["eng_Latn", "deu_Latn"], ["1", "2"], [["abc", "x"], ["abd ", None]])
    lex = compute_measure("lex", ids, corpus=corpus, progress=False)
    assert lex.get("eng_Latn", "deu_Latn") == -1.0 and lex.missing == ["xqq_Latn"]
    with pytest.raises(BabelmapError, match="needs glottolog"):
        compute_measure("glottolog", ids)
    with pytest.raises(BabelmapError, match="unknown measure"):
        compute_measure("genetik", ids)
