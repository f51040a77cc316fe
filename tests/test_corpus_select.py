"""Selection (first / min-languages order, random and document samples, empty languages),
provenance, documents, and corpora built from a dict, a DataFrame or a Dataset."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest

from babelmap.engine.corpora import ParallelCorpus
from babelmap.engine.errors import CorpusError


def _corpus() -> ParallelCorpus:
    # 10 sentences in 3 languages; fra has only sentences 6-10; documents of 2, 3, 5 sentences
    n = 10
    texts = [[f"de {i}" for i in range(n)], [f"en {i}" for i in range(n)],
             [None] * 5 + [f"fr {i}" for i in range(5, n)]]
    docs = ["a"] * 2 + ["b"] * 3 + ["c"] * 5
    return ParallelCorpus("t", ["deu_Latn", "eng_Latn", "fra_Latn"], [str(i + 1) for i in range(n)], texts,
                          documents=docs, documents_source="test docs", normalization="strip", split="dev")


def test_min_languages_before_first() -> None:
    c = _corpus().select(min_languages=3, first=2)
    assert c.sentence_ids == ["6", "7"]                # not the first 2 (which fra lacks)
    assert c.provenance() == {"split": "dev", "normalization": "strip", "selection": "min_languages=3 first=2",
                              "documents": "test docs"}
    assert c.documents == ["c", "c"]


def test_language_left_empty_is_dropped_and_recorded(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="babelmap.corpora"):
        c = _corpus().select(first=5)
    assert c.languages == ["deu_Latn", "eng_Latn"]
    assert c.skipped[-1]["language"] == "fra_Latn" and "no sentence left" in c.skipped[-1]["reason"]
    assert any("fra_Latn" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", [0, -5])
def test_non_positive_counts_are_errors(bad: int) -> None:
    for kw in ("first", "sample", "min_languages"):
        with pytest.raises(CorpusError, match="at least 1"):
            _corpus().select(**{kw: bad})


def test_random_sample_matches_numpy_and_is_recorded() -> None:
    c = _corpus()
    s = c.select(sample=4, seed=7)
    expect = sorted(np.random.default_rng(7).choice(10, size=4, replace=False))
    assert s.sentence_ids == [str(j + 1) for j in expect]
    assert s.selection == "sample=4 seed=7" and s.select(sample=4, seed=7).sentence_ids == s.sentence_ids
    assert c.select(sample=4, seed=8).sentence_ids == [
        str(j + 1) for j in sorted(np.random.default_rng(8).choice(10, size=4, replace=False))]
    assert c.select(sample=50, seed=1).sentence_ids == c.sentence_ids


def test_document_sample_takes_whole_documents() -> None:
    c = _corpus()
    for seed in range(6):
        s = c.select(sample=3, seed=seed, stratify="document")
        kept = set(s.documents)
        # whole documents: every sentence of a chosen document, and at least 3 sentences
        assert len(s.sentence_ids) == sum(c.documents.count(d) for d in kept) >= 3
        # the documents drawn are the first ones of a permutation until 3 sentences are reached
        order = ["a", "b", "c"]
        perm = [order[i] for i in np.random.default_rng(seed).permutation(3)]
        taken, n = [], 0
        for d in perm:
            if n >= 3:
                break
            taken.append(d)
            n += c.documents.count(d)
        assert kept == set(taken)
        assert "stratify=document" in s.selection
    with pytest.raises(CorpusError, match="no document ids"):
        ParallelCorpus("x", ["eng_Latn"], ["1"], [["a"]]).select(sample=1, stratify="document")
    with pytest.raises(CorpusError, match="choose one"):
        c.select(first=2, sample=2)


def test_corpus_options_sample_split_and_bad_counts(flores_dir: Path) -> None:
    from babelmap.corpus_options import add_corpus_arguments, corpus_from_args
    p = argparse.ArgumentParser()
    add_corpus_arguments(p)
    args = p.parse_args(["--corpus", str(flores_dir), "--format", "flores", "--langs", "eng_Latn", "deu_Latn",
                         "--sample", "20", "--seed", "1", "--split", "dev"])
    c = corpus_from_args(args)
    assert len(c.sentence_ids) == 20 and c.provenance()["selection"] == "sample=20 seed=1"
    assert c.provenance()["split"] == "dev" and c.documents[0].startswith("https://")
    args = p.parse_args(["--corpus", str(flores_dir), "--format", "flores", "--max-sentences", "-5"])
    with pytest.raises(CorpusError, match="at least 1"):
        corpus_from_args(args)
    args = p.parse_args(["--corpus", str(flores_dir), "--format", "flores", "--split", "devtest"])
    with pytest.raises(CorpusError, match="devtest"):
        corpus_from_args(args)                  # shared data holds dev only: a clear error, not dev


# -- building from Python objects ------------------------------------------------------------------
def test_from_dict_names_codes_missing_and_strip() -> None:
    c = ParallelCorpus.from_dict({"English": [" Hello world ", "Good morning"], "de": ["Hallo Welt", ""],
                                  "Serbian": ["Здраво свете", None]})
    assert c.languages == ["deu_Latn", "eng_Latn", "srp_Cyrl"]
    assert c.text("eng_Latn") == ["Hello world", "Good morning"]
    assert c.text("deu_Latn") == ["Hallo Welt", None] and c.text("srp_Cyrl") == ["Здраво свете", None]
    assert c.name == "custom" and c.sentence_ids == ["1", "2"] and c.normalization == "strip"
    assert c.meta["eng_Latn"]["column"] == "English"
    with pytest.raises(CorpusError) as err:
        ParallelCorpus.from_dict({"eng": ["a", "b"], "deu": ["a"]})
    assert "different numbers of sentences (eng 2, deu 1)" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CorpusError, match="both deu_Latn"):
        ParallelCorpus.from_dict({"de": ["a"], "German": ["b"]})
    with pytest.raises(CorpusError, match="no text"):
        ParallelCorpus.from_dict({"de": ["a"], "fr": [None]})


def test_from_pandas() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"fra": ["un", "deux"], "eng_Latn": ["one", float("nan")]})
    c = ParallelCorpus.from_pandas(df)
    assert c.languages == ["eng_Latn", "fra_Latn"] and c.text("eng_Latn") == ["one", None]
    c = ParallelCorpus.from_pandas(df.set_index(pd.Index(["s1", "s2"])))
    assert c.sentence_ids == ["s1", "s2"]


class _FakeDataset:
    """The part of datasets.Dataset that from_dataset uses: column_names and ds[column]."""

    def __init__(self, cols: dict[str, list]):
        self._cols = cols
        self.column_names = list(cols)

    def __getitem__(self, key: str) -> list:
        return self._cols[key]


def test_from_dataset_stand_in_and_real() -> None:
    cols = {"eng_Latn": ["one", "two"], "deu_Latn": ["eins", "zwei"], "id": ["1", "2"]}
    c = ParallelCorpus.from_dataset(_FakeDataset(cols), columns=["eng_Latn", "deu_Latn"])
    assert c.languages == ["deu_Latn", "eng_Latn"] and c.text("deu_Latn") == ["eins", "zwei"]
    with pytest.raises(CorpusError, match="no column 'fra'"):
        ParallelCorpus.from_dataset(_FakeDataset(cols), columns=["fra"])
    try:
        import datasets
    except ImportError:
        return
    real = ParallelCorpus.from_dataset(datasets.Dataset.from_dict(cols), columns=["eng_Latn", "deu_Latn"])
    assert real.texts == c.texts
