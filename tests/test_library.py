"""The README's notebook example (encode, corpus from a dict, extract, similarity, get) run on a
tiny random model, checked against cosines computed by NumPy from `encode`'s output; and the
library face's promises: lazy import, one result type, save/load."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import babelmap
from extract_util import one_thread  # noqa: F401  (autouse: one torch thread)

SENTENCES = {
    "English": ["The cat is sleeping on the sofa.", "I would like a cup of coffee, please.",
                "The train leaves at eight in the morning.", "It has been raining all day in the city.",
                "My sister reads a new book every week."],
    "French": ["Le chat dort sur le canapé.", "Je voudrais une tasse de café, s'il vous plaît.",
               "Le train part à huit heures du matin.", "Il pleut toute la journée en ville.",
               "Ma sœur lit un nouveau livre chaque semaine."],
    "German": ["Die Katze schläft auf dem Sofa.", "Ich hätte gern eine Tasse Kaffee, bitte.",
               "Der Zug fährt um acht Uhr morgens ab.", "In der Stadt regnet es den ganzen Tag.",
               "Meine Schwester liest jede Woche ein neues Buch."],
}
IDS = {"English": "eng_Latn", "French": "fra_Latn", "German": "deu_Latn"}


def _corpus():
    return babelmap.ParallelCorpus.from_dict(SENTENCES)


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent reference in float64: per layer, the mean over sentences of cos(a_s, b_s)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)   # [S, K]
    return cos.mean(axis=0)


def test_notebook_example(tiny_bert, tmp_path):
    model = tiny_bert                                   # the README uses model=None (the default)
    E = babelmap.encode(SENTENCES["English"], model=model)
    assert E.shape == (5, 3, 32) and E.dtype == np.float32
    corpus = _corpus()
    assert corpus.languages == ["deu_Latn", "eng_Latn", "fra_Latn"]          # names became ids
    with babelmap.extract(corpus, tmp_path / "example.h5", model=model, progress=False) as store:
        r = babelmap.similarity(store, progress=False, out=tmp_path / "sim.h5")
    assert isinstance(r, babelmap.SimilarityResult) and r.layers == [0, 1, 2]
    assert "default layer 2 (the last layer" in repr(r)
    emb = {name: babelmap.encode(texts, model=model) for name, texts in SENTENCES.items()}
    # every pair, every layer: the store (float16 rows) against float64 cosines of encode's output
    for a in SENTENCES:
        for b in SENTENCES:
            ref = _mean_cosine(emb[a], emb[b])
            got = [r.get(a, b, layer=k) for k in r.layers]
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-3)        # float16 store rounding
            assert r.get_count(a, b) == 5
    assert r.get("English", "French") == r.get("eng_Latn", "fra_Latn", layer=2)   # None = last layer
    ref_de = {IDS[x]: _mean_cosine(emb["German"], emb[x])[2] for x in ("English", "French")}
    assert [l for l, _ in r.nearest("German", 2)] == sorted(ref_de, key=lambda x: -ref_de[x])
    # what was saved opens again as the same type, with the same numbers
    back = babelmap.load(tmp_path / "sim.h5")
    assert type(back) is type(r) and back.format == "babelmap.similarity" and back.measure == "cosine-mean"
    np.testing.assert_array_equal(back.sim, r.sim)


def test_measure_and_similarity_options(tiny_bert, tmp_path):
    corpus = _corpus()
    store = tmp_path / "s.h5"
    babelmap.extract(SENTENCES, store, model=tiny_bert, progress=False).close()   # a dict is a corpus too
    r = babelmap.similarity(store, layers=[1], progress=False)                  # a path works too
    assert r.layers == [1]
    with pytest.raises(babelmap.BabelmapError):
        babelmap.similarity(store, measure="no-such-measure", progress=False)
    mexa = babelmap.similarity(store, measure="mexa", progress=False, out=tmp_path / "mexa.h5")
    assert mexa.measure == "mexa" and "measure mexa" in repr(mexa)
    assert babelmap.load(tmp_path / "mexa.h5").measure == "mexa"
    lex = babelmap.measure("lex", r, corpus=corpus, progress=False)            # languages from the result
    assert lex.languages == r.languages
    # LEX of a language with itself is 0 (minus the mean edit distance), of two others below 0
    assert lex.get("eng_Latn", "eng_Latn") == 0 and lex.get("eng_Latn", "fra_Latn") < 0
    by_name = babelmap.measure("lex", ["French", "en"], corpus=corpus, progress=False)   # names resolve
    assert sorted(by_name.languages) == ["eng_Latn", "fra_Latn"]
    assert by_name.get("fra_Latn", "eng_Latn") == lex.get("fra_Latn", "eng_Latn")
    with pytest.raises(babelmap.BabelmapError, match="unknown run option"):
        babelmap.run(tmp_path / "run", no_such_option=1)


def test_import_is_lazy():
    code = ("import sys, time; t = time.perf_counter(); import babelmap; dt = time.perf_counter() - t; "
            "heavy = [m for m in ('numpy', 'h5py', 'torch', 'transformers') if m in sys.modules]; "
            "print(heavy, dt)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, _ = out.rsplit(" ", 1)
    assert heavy == "[]"                                  # nothing heavy until a name is used
    assert callable(babelmap.encode) and babelmap.load.__module__ == "babelmap.api"
    with pytest.raises(AttributeError):
        babelmap.no_such_name
