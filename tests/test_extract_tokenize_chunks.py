"""Several tokenizer threads (as on a GPU) tokenize each unit in chunks on a second pool: the
store must be identical, value for value, to one tokenizer thread's, and the chunks must
really be used (a spy counts the calls)."""
from __future__ import annotations

import numpy as np

from babelmap import open_store
from babelmap.engine import extract as ex
from extract_util import corpus_rows, one_thread  # noqa: F401 (autouse fixture: one torch thread)
from test_extract import make_corpus


def test_chunked_tokenization_gives_the_identical_store(tmp_path, tiny_bert, monkeypatch):
    corpus = make_corpus(corpus_rows(n=20, seed=5))
    one = ex.extract(corpus, tmp_path / "one.h5", str(tiny_bert), device="cpu", store_dtype="float32",
                     token_budget=96, progress=False, tokenizer_threads=1)
    calls: list[int] = []
    real = ex.token_ids

    def spy(lm, texts, lang=None):
        calls.append(len(texts))
        return real(lm, texts, lang)

    monkeypatch.setattr(ex, "token_ids", spy)
    monkeypatch.setattr(ex, "TOKENIZE_CHUNK", 3)
    many = ex.extract(corpus, tmp_path / "many.h5", str(tiny_bert), device="cpu", store_dtype="float32",
                      token_budget=96, progress=False, tokenizer_threads=3)
    assert calls and max(calls) <= 3 and sum(calls) == int(corpus.mask.sum())  # chunks, every sentence once
    with open_store(one) as a, open_store(many) as b:
        np.testing.assert_array_equal(a.n_tokens, b.n_tokens)
        np.testing.assert_array_equal(a.block(), b.block())
