"""LEX (kernels/lex.py): against a pure-Python Levenshtein on synthetic corpora with missing
sentences, and against the released mPLM-Sim table edit_flores200.tsv on real FLORES-200 dev."""
from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared

from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.kernels.lex import lex_matrix
from babelmap.kernels.matrix import LanguageMatrix

# mPLM-Sim code -> FLORES-200 file name (data README)
RENAMES = {"cmn_Hani": "zho_Hans", "ekk_Latn": "est_Latn", "gug_Latn": "grn_Latn",
           "kng_Latn": "kon_Latn", "sro_Latn": "srd_Latn", "yue_Hani": "yue_Hant"}


def levenshtein_py(a: str, b: str) -> int:
    """Textbook dynamic programme, independent of rapidfuzz."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BABELMAP_CACHE", str(tmp_path / "cache"))


def flores_corpus(langs: list[str] | None = None) -> ParallelCorpus:
    dev = shared("flores200", "dev")
    files = sorted(dev.glob("*.dev"))
    if langs is not None:
        files = [dev / f"{l}.dev" for l in langs]
    texts = [f.read_text(encoding="utf-8").split("\n")[:-1] for f in files]
    n = len(texts[0])
    return ParallelCorpus("flores200-dev", [f.stem for f in files], [str(i) for i in range(n)], texts)


def released() -> LanguageMatrix:
    return LanguageMatrix.from_tsv(shared("mplm_sim_linguistic", "edit_flores200.tsv")).rename(RENAMES)


def assert_matches_released(m: LanguageMatrix, ref: LanguageMatrix) -> int:
    shared_langs = sorted(set(m.languages) & set(ref.languages))
    a, b = m.subset(shared_langs), ref.subset(shared_langs)
    off = ~np.eye(len(shared_langs), dtype=bool)
    assert not np.isnan(a.values[off]).any()
    np.testing.assert_allclose(a.values[off], b.values[off], rtol=1e-12, atol=0)
    return int(off.sum() // 2)


def random_corpus(seed: int = 0) -> ParallelCorpus:
    rng = random.Random(seed)
    alphabet = "abcdeéfgж字 \u0301"
    langs = ["aaa_Latn", "bbb_Latn", "ccc_Cyrl", "ddd_Hani", "eee_Latn", "fff_Latn"]
    n = 25
    texts = []
    for li, lang in enumerate(langs):
        row = []
        for j in range(n):
            if lang == "eee_Latn":
                row.append("only me" if j == 0 else None)   # shares nothing with fff
            elif lang == "fff_Latn":
                row.append(None if j == 0 else "  x" * rng.randint(0, 5))
            elif rng.random() < 0.2:
                row.append(None)
            else:
                s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
                row.append(" \t" * rng.randint(0, 2) + s + " \n" * rng.randint(0, 2))
        texts.append(row)
    texts.append([None] * n)
    langs.append("ggg_Latn")                                   # no sentence at all
    return ParallelCorpus("random", langs, [f"s{j}" for j in range(n)], texts)


def test_random_corpus_matches_python_reference():
    corpus = random_corpus()
    m = lex_matrix(corpus, progress=False, cache=False, workers=1)
    L = len(corpus.languages)
    for i, j in itertools.product(range(L), repeat=2):
        a, b = corpus.texts[i], corpus.texts[j]
        d = [levenshtein_py(x.strip(), y.strip()) for x, y in zip(a, b) if x is not None and y is not None]
        expected = -float(np.mean(d)) if d else np.nan
        if i == j and d:
            expected = 0.0
        got = m.values[i, j]
        if np.isnan(expected):
            assert np.isnan(got), (corpus.languages[i], corpus.languages[j])
        else:
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), (corpus.languages[i], corpus.languages[j])
    assert np.isnan(m.get("eee_Latn", "fff_Latn"))
    assert m.missing == ["ggg_Latn"]
    assert "no sentence" in m.notes["ggg_Latn"]
    assert m.notes["pairs_without_shared_sentence"] >= 1
    np.testing.assert_array_equal(m.values, m.values.T)


def test_cache_is_used_and_keyed_by_content(tmp_path):
    corpus = random_corpus(1)
    m1 = lex_matrix(corpus, progress=False)
    files = list((tmp_path / "cache" / "lex").glob("*.npz"))
    assert len(files) == 1
    # the cached file is what is read back: corrupt it and the result must change
    with np.load(files[0]) as z:
        sums, counts, langs = z["sums"].copy(), z["counts"], z["languages"]
    sums[0, 1] += counts[0, 1]          # distance +1 on average for pair (0, 1)
    np.savez(files[0], languages=langs, sums=sums, counts=counts)
    m2 = lex_matrix(corpus, progress=False)
    assert m2.values[0, 1] == pytest.approx(m1.values[0, 1] - 1)
    # another corpus (one text changed) gets its own entry
    corpus.texts[0][3] = "changed"
    lex_matrix(corpus, progress=False)
    assert len(list((tmp_path / "cache" / "lex").glob("*.npz"))) == 2


SUBSET = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "zho_Hant", "yue_Hant",
          "est_Latn", "grn_Latn", "kon_Latn", "srd_Latn", "jpn_Jpan", "arb_Arab", "arb_Latn",
          "hin_Deva", "ben_Beng", "tam_Taml", "kor_Hang", "tha_Thai", "amh_Ethi", "heb_Hebr",
          "ell_Grek", "kat_Geor", "cat_Latn", "shn_Mymr", "kas_Deva", "yor_Latn", "fin_Latn",
          "swh_Latn", "quy_Latn"]


def test_reproduces_released_table_on_30_languages():
    from babelmap.engine.corpora import read_corpus
    corpus = read_corpus(shared("flores200"), "flores").select(languages=SUBSET)
    assert corpus.languages == sorted(SUBSET) and len(corpus.sentence_ids) == 997
    m = lex_matrix(corpus, progress=False)
    assert m.get("eng_Latn", "deu_Latn") == pytest.approx(-100.29889669007021, rel=1e-14)
    n_pairs = assert_matches_released(m, released())
    assert n_pairs == 29 * 28 // 2          # zho_Hant is not in the release
    assert np.isnan(released().values[0, 0]) and m.get("eng_Latn", "eng_Latn") == 0.0


@pytest.mark.slow
def test_reproduces_released_table_on_all_204_languages():
    m = lex_matrix(flores_corpus(), progress=False)
    assert len(m) == 204 and not m.missing
    n_pairs = assert_matches_released(m, released())
    assert n_pairs == 203 * 202 // 2


def test_romanize_brings_scripts_together():
    pytest.importorskip("uroman")
    texts = [["Москва", "привет мир"], ["Moskva", "privet mir"]]
    corpus = ParallelCorpus("t", ["rus_Cyrl", "rus_Latn"], ["a", "b"], texts)
    raw = lex_matrix(corpus, progress=False, cache=False)
    rom = lex_matrix(corpus, romanize=True, progress=False)
    assert raw.get("rus_Cyrl", "rus_Latn") == -7.5          # (6 + 9) / 2: only the space is shared
    assert rom.get("rus_Cyrl", "rus_Latn") == 0.0
    assert rom.notes["romanized"] is True


def _write_plain_flores(folder: Path, langs: list[str], n: int) -> Path:
    dev = folder / "dev"
    dev.mkdir(parents=True)
    src = shared("flores200", "dev")
    for l in langs:
        lines = (src / f"{l}.dev").read_text(encoding="utf-8").split("\n")[:n]
        (dev / f"{l}.dev").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_cli_writes_tsv_and_hdf5(tmp_path):
    folder = _write_plain_flores(tmp_path / "flores", ["eng_Latn", "deu_Latn", "fra_Latn"], 20)
    env = dict(os.environ)
    for out in ("lex.tsv", "lex.h5"):
        r = subprocess.run([sys.executable, "-m", "babelmap", "lex", "--corpus", str(folder),
                            "--format", "flores", "--out", str(tmp_path / out)],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
    texts = {l: (folder / "dev" / f"{l}.dev").read_text(encoding="utf-8").split("\n")[:20]
             for l in ("eng_Latn", "deu_Latn")}
    expected = -np.mean([levenshtein_py(a.strip(), b.strip()) for a, b in zip(texts["eng_Latn"], texts["deu_Latn"])])
    for m in (LanguageMatrix.from_tsv(tmp_path / "lex.tsv"), LanguageMatrix.from_hdf5(tmp_path / "lex.h5")):
        assert m.languages == ["deu_Latn", "eng_Latn", "fra_Latn"]
        assert m.get("eng_Latn", "deu_Latn") == pytest.approx(expected, rel=1e-12)
    r = subprocess.run([sys.executable, "-m", "babelmap", "lex", "--corpus", str(folder), "--format", "flores",
                        "--langs", "eng_Latn,xxx_Latn", "--out", str(tmp_path / "bad.tsv")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "xxx_Latn" in r.stderr and "Traceback" not in r.stderr
