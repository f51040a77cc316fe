"""babelmap.encode on a tiny random model: the same numbers as a store row of `extract`, and as
a direct float64 masked mean over the model's hidden states; input order; shapes; the cache."""
from __future__ import annotations

import numpy as np
import pytest

import babelmap
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.errors import BabelmapError
from extract_util import one_thread  # noqa: F401  (autouse: one torch thread)

TEXTS = {
    "eng_Latn": ["The quick brown fox jumps over the lazy dog.", "In the beginning was the Word.", "Fox.",
                 "The dog sleeps in the sun all day long, and the fox watches it from the hill."],
    "fra_Latn": ["Le renard brun saute par-dessus le chien paresseux.", "Au commencement était la Parole.",
                 "Renard.", None],
}


def _reference(model_dir, texts: list[str]) -> np.ndarray:
    """float64 masked mean of every hidden state, one text at a time (no padding at all)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    rows = []
    with torch.no_grad():
        for t in texts:
            enc = tok([t], return_tensors="pt", truncation=True)
            hs = model(**enc, output_hidden_states=True).hidden_states
            rows.append(np.stack([h[0].double().numpy().mean(axis=0) for h in hs]))
    return np.stack(rows)


def test_encode_matches_store_rows_and_direct_reference(tiny_bert, tmp_path):
    babelmap.clear_model_cache()
    texts = TEXTS["eng_Latn"]
    E = babelmap.encode(texts, model=tiny_bert, batch_size=3)     # two batches of different lengths
    assert E.dtype == np.float32 and E.shape == (4, 3, 32)          # 2 layers + embedding output
    ref = _reference(tiny_bert, texts)
    np.testing.assert_allclose(E, ref, rtol=0, atol=1e-5)          # padding and batching change nothing
    # the same numbers as the store rows of an extraction with the same model (float32 store)
    corpus = ParallelCorpus("toy", list(TEXTS), [str(i) for i in range(4)], list(TEXTS.values()))
    with babelmap.extract(corpus, tmp_path / "s.h5", model=tiny_bert, store_dtype="float32",
                          device="cpu", progress=False) as store:
        for lang, rows in TEXTS.items():
            have = [j for j, t in enumerate(rows) if t is not None]
            E = babelmap.encode([rows[j] for j in have], model=tiny_bert)
            for k in store.layers:
                np.testing.assert_allclose(store.embeddings(lang, k)[have], E[:, k], rtol=0, atol=1e-5)
    # the default float16 store rounds: within float16's half-ulp of the float32 row
    with babelmap.extract(corpus, tmp_path / "s16.h5", model=tiny_bert, device="cpu", progress=False) as s16:
        e16 = s16.embeddings("eng_Latn", 2)
        e = babelmap.encode(texts, model=tiny_bert, layers=2)
        np.testing.assert_allclose(e16, e, rtol=2 ** -11, atol=1e-5)


def test_shapes_layers_order_and_errors(tiny_bert):
    texts = ["a b c d e f g h", "x", "the fox", "longer text with many words in it here", ""]
    full = babelmap.encode(texts, model=tiny_bert, batch_size=2)
    one_by_one = np.stack([babelmap.encode(t, model=tiny_bert) for t in texts])    # str -> [K, H]
    assert one_by_one.shape == full.shape == (5, 3, 32)
    np.testing.assert_allclose(full, one_by_one, rtol=0, atol=1e-5)                 # input order kept
    sel = babelmap.encode(texts, model=tiny_bert, layers=[2, 0], batch_size=2)
    np.testing.assert_array_equal(sel, full[:, [2, 0]])
    last = babelmap.encode(texts, model=tiny_bert, layers=-1, batch_size=2)   # int: axis dropped
    np.testing.assert_array_equal(last, full[:, 2])
    cls = babelmap.encode(texts[:2], model=tiny_bert, pooling="cls")
    assert not np.allclose(cls, full[:2])
    assert babelmap.encode([], model=tiny_bert).shape == (0, 3, 32)
    with pytest.raises(BabelmapError, match="layer 3 does not exist"):
        babelmap.encode(texts, model=tiny_bert, layers=[3])
    with pytest.raises(BabelmapError, match="text 1 is a NoneType"):
        babelmap.encode(["ok", None], model=tiny_bert)


def test_model_cache(tiny_bert, monkeypatch):
    babelmap.clear_model_cache()
    calls = []
    import babelmap.engine.models as models
    orig = models.load_model

    def counting(*a, **k):
        calls.append(a)
        return orig(*a, **k)
    monkeypatch.setattr(models, "load_model", counting)
    a = babelmap.encode(["one", "two"], model=tiny_bert, device="cpu")
    b = babelmap.encode(["one", "two"], model=str(tiny_bert), device="auto")   # same key once resolved
    assert len(calls) == 1 and np.array_equal(a, b)
    babelmap.encode(["one"], model=tiny_bert, prefix="query: ")                # another prefix: another model
    assert len(calls) == 2
    babelmap.clear_model_cache()
