"""ASJP LDND (analysis/linguistic/asjp.py): ASJPcode segmentation, a hand-computed LDND, the
vectorised all-pairs code against a plain-Python LDND on real lists, and sanity on ASJP v21."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import shared

from babelmap.analysis.linguistic.asjp import ITEMS_40, asjp_matrix, ldnd_matrix, load_asjp, segments


def lev(a, b) -> int:
    d = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    d[:, 0], d[0, :] = range(len(a) + 1), range(len(b) + 1)
    for i, j in itertools.product(range(1, len(a) + 1), range(1, len(b) + 1)):
        d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return int(d[-1, -1])


def ldnd_reference(A: dict, B: dict) -> float:
    """Plain-Python LDND: meaning LDN = min over synonyms; LDN / mean LDN of different meanings."""
    def ldn(i, j):
        return min(lev(x, y) / max(len(x), len(y)) for x in A[i] for y in B[j])
    same = [ldn(i, i) for i in A if i in B]
    diff = [ldn(i, j) for i in A for j in B if i != j]
    return float(np.mean(same) / np.mean(diff))


def test_segments():
    assert segments("wh~at") == ["wh~", "a", "t"]
    assert segments('t"s~a*') == ['t"s~', "a*"]
    assert segments("tsh$o") == ["tsh$", "o"]
    assert segments('k"ap a') == ['k"', "a", "p", "a"]
    assert segments("") == []


def test_hand_computed_ldnd():
    A = {1: [("a", "b")], 2: [("c", "d")], 3: [("e", "f"), ("a", "b")]}
    B = {1: [("a", "b", "c")], 2: [("c", 'x"')], 11: [("z", "z")]}
    # same meaning: 1: ab/abc = 1/3, 2: cd/cx" = 1/2 -> LDN = 5/12
    # different meanings (7 pairs): all 1 except 3-1 = min(ef/abc, ab/abc) = 1/3 -> 19/21
    expected = (5 / 12) / (19 / 21)
    d = ldnd_matrix([A, B])
    assert d[0, 1] == pytest.approx(expected, rel=1e-12)
    assert d[1, 0] == pytest.approx(expected, rel=1e-12)
    assert d[0, 0] == 0.0 and d[1, 1] == 0.0
    assert ldnd_reference(A, B) == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def folder():
    return shared("asjp")


def test_vectorised_equals_reference_on_real_lists(folder):
    db = load_asjp(folder)
    docs = [db.choose(c)[0] for c in ("eng", "deu", "nld", "jpn", "hin", "swh", "fin")]
    docs.append("A51_BAFIA_MAJA")                                  # an incomplete list
    lists = [db.words[d] for d in docs]
    d = ldnd_matrix(lists)
    for i, j in itertools.combinations(range(len(docs)), 2):
        assert d[i, j] == pytest.approx(ldnd_reference(lists[i], lists[j]), rel=1e-12), (docs[i], docs[j])


def test_real_sanity_and_doculect_rule(folder):
    db = load_asjp(folder)
    assert db.choose("eng") == ("ENGLISH", 40)
    assert db.choose("cmn") == ("MANDARIN", 40)          # not the alphabetically first KUNMING_...
    assert all(len(w) <= 2 for lst in db.words.values() for w in lst.values())
    assert set(db.words["ENGLISH"]) == set(ITEMS_40)
    ids = ["eng_Latn", "deu_Latn", "nld_Latn", "jpn_Jpan", "zho_Hans", "zho_Hant", "xqq_Latn"]
    m = asjp_matrix(folder, ids, progress=False)
    assert m.get("eng_Latn", "deu_Latn") > m.get("eng_Latn", "jpn_Jpan") + 0.2
    assert m.get("deu_Latn", "nld_Latn") > m.get("eng_Latn", "deu_Latn")
    assert abs(m.get("eng_Latn", "jpn_Jpan")) < 0.1                 # unrelated: about chance
    assert m.get("zho_Hans", "zho_Hant") == 1.0 and "MANDARIN" in m.notes["zho_Hans"]
    assert m.missing == ["xqq_Latn"] and "no doculect" in m.notes["xqq_Latn"]
    np.testing.assert_allclose(m.values[:6, :6], m.values[:6, :6].T)
    strict = asjp_matrix(folder, ["eng_Latn", "lfa_Latn"], min_items=41, progress=False)
    assert strict.missing == ["eng_Latn", "lfa_Latn"] and "< 41" in strict.notes["eng_Latn"]
