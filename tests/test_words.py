"""Word segmentation, sub-word pooling and the word store, on a tiny random model."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one thread on a shared machine (no spin-waiting)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

from babelmap.engine.corpora import ParallelCorpus
from babelmap.engine.errors import StoreError
from babelmap.engine.words import (extract_words, open_words, pooling_matrix, segment, segment_words)

ENG = ["The quick brown fox jumps over the lazy dog.", None, "In the beginning was the Word, and the Word was with God."]
DEU = ["Der schnelle braune Fuchs springt über den faulen Hund.", "Ein Satz ohne Partner.",
       "Im Anfang war das Wort, und das Wort war bei Gott."]


def corpus():
    return ParallelCorpus("toy", ["deu_Latn", "eng_Latn"], ["0", "1", "2"], [DEU, ENG])


def test_segmentation_rules():
    assert segment_words("Hello, world! (3.5 km)") == ["Hello", ",", "world", "!", "(", "3", ".", "5", "km", ")"]
    assert segment_words("l'homme") == ["l", "'", "homme"]
    # combining marks stay in their word (Devanagari vowel signs, nukta)
    assert segment_words("तेज़ भूरी लोमड़ी") == ["तेज़", "भूरी", "लोमड़ी"]
    # scripts without spaces: one word per character, marks attached
    assert segment_words("狐狸跳。") == ["狐", "狸", "跳", "。"]
    assert segment_words("สวัสดี") == ["ส", "วั", "ส", "ดี"]
    assert segment_words("a  b\tc\n") == ["a", "b", "c"]
    assert segment_words("Krixtu , Mwana", "whitespace") == ["Krixtu", ",", "Mwana"]
    assert segment_words("don't stop.", "whitespace") == ["don't", "stop."]
    assert segment("ab cd") == [(0, 2), (3, 5)]
    with pytest.raises(ValueError):
        segment("x", "nope")


def test_pooling_matrix():
    spans = [(0, 3), (4, 9)]
    # prefix of 2 characters; tokens: special, "abc", " fi", "rst", special
    offsets = [(0, 0), (2, 5), (5, 8), (8, 11), (0, 0)]
    W, valid = pooling_matrix(spans, offsets, 2, "mean")
    assert valid.tolist() == [True, True]
    np.testing.assert_allclose(W, [[0, 1, 0, 0, 0], [0, 0, .5, .5, 0]])
    W, _ = pooling_matrix(spans, offsets, 2, "first")
    np.testing.assert_allclose(W, [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])
    W, _ = pooling_matrix(spans, offsets, 2, "last")
    np.testing.assert_allclose(W, [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]])
    W, valid = pooling_matrix([(0, 3), (20, 22)], offsets, 2, "mean")  # second word truncated away
    assert valid.tolist() == [True, False] and W[1].sum() == 0


def _reference(model_dir, text, pooling):
    """Word vectors from the tokenizer's own word_ids() (GPT-2 style pre-tokenisation equals our
    segmentation on plain ASCII words and punctuation), float64."""
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    enc = tok([text], return_tensors="pt")
    with torch.no_grad():
        hs = torch.stack(model(**enc, output_hidden_states=True).hidden_states, 1)[0].double().numpy()
    wid = enc.word_ids(0)
    n = max(w for w in wid if w is not None) + 1
    out = np.zeros((hs.shape[0], n, hs.shape[2]))
    for w in range(n):
        pos = [t for t, x in enumerate(wid) if x == w]
        pick = {"mean": pos, "first": pos[:1], "last": pos[-1:]}[pooling]
        out[:, w] = hs[:, pick].mean(1)
    return out


@pytest.mark.parametrize("pooling", ["mean", "first", "last"])
def test_word_store_matches_reference(tiny_bert, tmp_path, pooling):
    out = extract_words(corpus(), tmp_path / "w.h5", str(tiny_bert), pooling=pooling, device="cpu",
                        batch_size=2, progress=False)
    with open_words(out) as ws:
        assert ws.languages == ["deu_Latn", "eng_Latn"] and ws.sentence_ids == ["0", "1", "2"]
        assert ws.mask.tolist() == [[True, True, True], [True, False, True]]
        off = ws.offsets("eng_Latn")
        assert off[1] == off[2]  # missing sentence: no words
        assert ws.sentence_words("eng_Latn", 2) == segment_words(ENG[2])
        assert ws.valid("eng_Latn").all()
        assert ws.num_hidden_states == 3 and ws.hidden_size == 32
        assert ws.attrs["pooling"] == pooling and ws.attrs["format"] == "babelmap.words"
        assert ws.attrs["corpus_fingerprint"] == corpus().fingerprint()
        for lang, texts in (("eng_Latn", ENG), ("deu_Latn", DEU)):
            o = ws.offsets(lang)
            for s, t in enumerate(texts):
                if t is None:
                    continue
                ref = _reference(tiny_bert, t, pooling)
                for k in range(3):
                    got = ws.embeddings(lang, k)[o[s]:o[s + 1]].astype(np.float64)
                    assert got.shape == ref[k].shape
                    np.testing.assert_allclose(got, ref[k], atol=2e-3, rtol=2e-3)
        with h5py.File(out) as f:
            assert f["words/eng_Latn/embeddings"].dtype == np.float16
            assert f["words/eng_Latn/embeddings"].chunks[0] == 1


def test_resume_and_provenance(tiny_bert, tmp_path):
    out = tmp_path / "w.h5"
    extract_words(corpus(), out, str(tiny_bert), device="cpu", progress=False, keep_parts=True)
    part = tmp_path / "w.h5.parts" / "eng_Latn.h5"
    stamp = part.stat().st_mtime_ns
    part_deu = tmp_path / "w.h5.parts" / "deu_Latn.h5"
    part_deu.unlink()  # as if killed before German finished
    extract_words(corpus(), out, str(tiny_bert), device="cpu", progress=False, keep_parts=True)
    assert part.stat().st_mtime_ns == stamp  # finished language not redone
    assert part_deu.exists()
    # a part from another pooling is redone, not mixed in
    extract_words(corpus(), out, str(tiny_bert), pooling="first", device="cpu", progress=False)
    with open_words(out) as ws:
        assert ws.attrs["pooling"] == "first"
    assert not (tmp_path / "w.h5.parts").exists()
    with pytest.raises(StoreError, match="not a babelmap word store"):
        with h5py.File(tmp_path / "x.h5", "w"):
            pass
        open_words(tmp_path / "x.h5")
    with pytest.raises(StoreError, match="not in word store"):
        with open_words(out) as ws:
            ws.offsets("fra_Latn")


def test_whitespace_token_joins_next_word():
    # "ab cd": tokens "ab", " " (lone marker), "cd"
    W, valid = pooling_matrix([(0, 2), (3, 5)], [(0, 2), (2, 3), (3, 5)], 0, "first", "ab cd")
    np.testing.assert_allclose(W, [[1, 0, 0], [0, 1, 0]])
