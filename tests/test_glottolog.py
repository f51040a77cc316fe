"""Glottolog shared-path similarity (analysis/linguistic/glottolog.py) on the real Glottolog 5.1
folder: hand-checked values, isolates, pseudo-families, a plain-Python reference, families."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared
from scipy.stats import spearmanr

from babelmap.analysis.linguistic.glottolog import (families, glottolog_matrix, load_glottolog,
                                                   shared_path_similarity)
from babelmap.engine.errors import BabelmapError
from babelmap.kernels.matrix import LanguageMatrix


@pytest.fixture(scope="module")
def folder() -> Path:
    return shared("glottolog")


def flores_ids() -> list[str]:
    return sorted(p.stem for p in shared("flores200", "dev").glob("*.dev"))


def test_english_german_share_path_to_west_germanic(folder):
    g = load_glottolog(folder)
    eng, deu = g.path("stan1293"), g.path("stan1295")
    # data README: they meet at west2793 (West Germanic), 14 edges apart
    k = eng.index("west2793") + 1
    assert eng[:k] == deu[:k] and eng[k] != deu[k]
    assert (len(eng) - k) + (len(deu) - k) == 14
    m = glottolog_matrix(folder, ["eng_Latn", "deu_Latn", "fra_Latn", "jpn_Jpan"])
    assert m.get("eng_Latn", "deu_Latn") == pytest.approx(k / max(len(eng), len(deu)))
    assert m.get("eng_Latn", "deu_Latn") > m.get("eng_Latn", "fra_Latn") > 0
    assert m.get("eng_Latn", "jpn_Jpan") == 0.0
    assert m.get("jpn_Jpan", "jpn_Jpan") == 1.0


def test_isolates_pseudo_families_unknown_and_scripts(folder):
    ids = ["eus_Latn", "eng_Latn", "epo_Latn", "ase_Sgnl", "xqq_Latn", "zho_Hans", "zho_Hant", "yue_Hant"]
    m = glottolog_matrix(folder, ids)
    eus = m.row("eus_Latn")
    assert eus[m.index("eus_Latn")] == 1.0
    assert np.all(eus[[m.index("eng_Latn"), m.index("zho_Hans")]] == 0.0)
    assert "eus_Latn" in m.notes["isolates"].split(",")
    assert sorted(m.missing) == ["ase_Sgnl", "epo_Latn", "xqq_Latn"]
    assert "Artificial Language" in m.notes["epo_Latn"] and "Sign Language" in m.notes["ase_Sgnl"]
    assert "not in Glottolog" in m.notes["xqq_Latn"]
    assert np.isnan(m.row("epo_Latn")).all()
    assert m.get("zho_Hans", "zho_Hant") == 1.0 and "cmn" in m.notes["zho_Hans"]
    assert 0 < m.get("zho_Hans", "yue_Hant") < 1


def test_vectorised_equals_python_loop_on_flores(folder):
    g = load_glottolog(folder)
    ids = flores_ids()
    m = glottolog_matrix(folder, ids)
    assert m.missing == ["epo_Latn"]
    paths = {l: g.path(g.lookup(l)[0]) for l in ids if l not in m.missing}
    for a, pa in paths.items():
        for b, pb in paths.items():
            n = 0
            for x, y in zip(pa, pb):
                if x != y:
                    break
                n += 1
            assert m.get(a, b) == n / max(len(pa), len(pb)), (a, b)


def test_shared_path_similarity_small_tree():
    paths = [["f"], ["g", "a", "x"], ["g", "a", "y"], ["g", "b"], ["g", "a"]]
    expected = np.array([[1, 0, 0, 0, 0],
                         [0, 1, 2 / 3, 1 / 3, 2 / 3],
                         [0, 2 / 3, 1, 1 / 3, 2 / 3],
                         [0, 1 / 3, 1 / 3, 1, 1 / 2],
                         [0, 2 / 3, 2 / 3, 1 / 2, 1]])
    np.testing.assert_allclose(shared_path_similarity(paths), expected)


def test_families(folder):
    f = families(["eng_Latn", "hin_Deva", "eus_Latn", "epo_Latn", "xqq_Latn", "swh_Latn"], folder)
    assert f == {"eng_Latn": "Indo-European", "hin_Deva": "Indo-European", "eus_Latn": "Basque",
                 "epo_Latn": "Artificial Language", "xqq_Latn": None, "swh_Latn": "Atlantic-Congo"}


def test_agrees_with_released_genetic_in_rank(folder):
    ref = LanguageMatrix.from_tsv(shared("mplm_sim_linguistic", "genetic.tsv"))
    ids = [l for l in ref.languages if l in set(flores_ids())]
    a, b = glottolog_matrix(folder, ids).values, ref.subset(ids).values
    off = ~np.eye(len(ids), dtype=bool)
    zero = np.array([np.all((r[o] == 0) | np.isnan(r[o])) for r, o in zip(b, off)])   # missing as 0
    ok = off & ~np.isnan(a) & ~np.isnan(b) & ~zero[:, None] & ~zero[None, :]
    rho = spearmanr(a[ok], b[ok])[0]
    assert rho > 0.8, rho


def test_bad_folder(tmp_path):
    with pytest.raises(BabelmapError, match="trees.newick"):
        (tmp_path / "languages.csv").write_text("ID,Name\n")
        glottolog_matrix(tmp_path, ["eng_Latn"])
