"""`babelmap check`: a sound store passes; each planted defect is reported (and the command
exits non-zero) with a message naming it."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from babelmap.cli import main as cli
from babelmap.engine.check import check_store
from babelmap.engine.corpora.base import ParallelCorpus
from babelmap.engine.store import write_store

L, K, S, H = 3, 4, 12, 8
LANGS = ["deu_Latn", "eng_Latn", "rus_Cyrl"]
SIDS = [f"s{j}" for j in range(S)]


def make_corpus():
    rng = np.random.default_rng(1)
    mask = rng.random((L, S)) > 0.25
    mask[:, 0] = True
    texts = [[f"{l} {j}" if mask[i, j] else None for j in range(S)] for i, l in enumerate(LANGS)]
    return ParallelCorpus("toy", LANGS, SIDS, texts)


@pytest.fixture
def good(tmp_path):
    corpus = make_corpus()
    rng = np.random.default_rng(0)
    mask = corpus.mask
    ntok = np.where(mask, rng.integers(3, 30, (L, S)), 0).astype(np.int32)
    attrs = {"model": "tiny", "model_fingerprint": "ab" * 32, "pooling": "mean", "max_length": 128,
             "prefix": "", "corpus_name": "toy", "corpus_fingerprint": corpus.fingerprint(), "skipped": "[]"}
    path = write_store(tmp_path / "s.h5", LANGS, SIDS, rng.normal(size=(L, K, S, H)), mask=mask, n_tokens=ntok,
                       attrs=attrs)
    return path, corpus


def present(f, i=1):
    return int(np.flatnonzero(f["mask"][i])[1])


def absent(f, i=1):
    return int(np.flatnonzero(~f["mask"][i])[0])


def nan(f):
    f["embeddings"][1, 2, present(f), 3] = np.nan


def inf(f):
    f["embeddings"][1, 0, present(f), 0] = np.inf


def zero_row_where_present(f):
    f["embeddings"][1, 3, present(f)] = 0


def nonzero_row_where_missing(f):
    f["embeddings"][1, 1, absent(f), 5] = 0.5


def no_tokens_where_present(f):
    f["n_tokens"][1, present(f)] = 0


def tokens_where_missing(f):
    f["n_tokens"][1, absent(f)] = 7


def missing_attribute(f):
    del f.attrs["model_fingerprint"]


def empty_attribute(f):
    f.attrs["pooling"] = ""


def wrong_format_version(f):
    f.attrs["format_version"] = 99


def dtype_attribute_disagrees(f):
    f.attrs["dtype"] = "float32"


def wrong_shape(f):
    del f["n_tokens"]
    f.create_dataset("n_tokens", data=np.ones((L, S - 1), np.int32))


def missing_dataset(f):
    del f["mask"]


def empty_language(f):
    f["mask"][2] = False
    f["n_tokens"][2] = 0
    f["embeddings"][2] = 0


def duplicate_language(f):
    f["languages"][2] = "eng_Latn"


def bit_flip(f):
    f["embeddings"][1, 2, present(f), 3] = -3142.0


def rows_swapped(f):
    a, b = np.flatnonzero(f["mask"][1])[:2]
    ra, rb = f["embeddings"][1, :, a], f["embeddings"][1, :, b]
    f["embeddings"][1, :, a], f["embeddings"][1, :, b] = rb, ra


def language_overwritten(f):
    both = f["mask"][0] & f["mask"][1]
    e = f["embeddings"][1]
    e[:, both] = f["embeddings"][0][:, both]
    f["embeddings"][1] = e


def tokens_plus_50(f):
    f["n_tokens"][1, present(f)] += 50


def pooling_changed(f):
    f.attrs["pooling"] = "cls"


def fingerprint_changed(f):
    f.attrs["model_fingerprint"] = "cd" * 32


DEFECTS = [
    (bit_flip, r"language eng_Latn: sentences 's0'..'s11': content differs from the checksum recorded at extraction"),
    (rows_swapped, r"language eng_Latn: .*content differs from the checksum"),
    (language_overwritten, r"language eng_Latn: .*content differs from the checksum"),
    (tokens_plus_50, r"language eng_Latn: .*content differs from the checksum"),
    (pooling_changed, r"attribute pooling is 'cls' but the extraction recorded 'mean'"),
    (fingerprint_changed, r"attribute model_fingerprint is 'cdcd.*' but the extraction recorded 'abab"),
    (nan, r"language eng_Latn: NaN in 1 sentences \('s\d+'\)"),
    (inf, r"language eng_Latn: Inf in 1 sentences"),
    (zero_row_where_present, r"language eng_Latn: 1 present sentences have an all-zero embedding \(hidden states \[3\]"),
    (nonzero_row_where_missing, r"language eng_Latn: 1 missing sentences have non-zero embeddings"),
    (no_tokens_where_present, r"language eng_Latn: 1 present sentences have n_tokens <= 0"),
    (tokens_where_missing, r"language eng_Latn: 1 missing sentences have n_tokens != 0"),
    (missing_attribute, r"provenance attribute 'model_fingerprint' is missing"),
    (empty_attribute, r"provenance attribute 'pooling' is empty"),
    (wrong_format_version, r"format_version 99 is not 1"),
    (dtype_attribute_disagrees, r"attribute dtype 'float32' disagrees with /embeddings dtype float16"),
    (wrong_shape, r"/n_tokens is int32 \(3, 11\), expected int \(3, 12\)"),
    (missing_dataset, r"dataset /mask is missing"),
    (empty_language, r"language rus_Cyrl: no sentence present"),
    (duplicate_language, r"duplicate language ids"),
]


def test_sound_store_passes(good, capsys):
    path, corpus = good
    assert check_store(path) == []
    assert check_store(path, corpus=corpus) == []
    assert cli(["check", str(path)]) == 0
    assert "ok: no defects" in capsys.readouterr().out


@pytest.mark.parametrize("plant,message", DEFECTS, ids=[d[0].__name__ for d in DEFECTS])
def test_each_planted_defect_is_reported(good, plant, message, capsys):
    path, _ = good
    with h5py.File(path, "r+") as f:
        plant(f)
    defects = check_store(path)
    assert any(__import__("re").search(message, d) for d in defects), defects
    assert cli(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "defect(s)" in err and "Traceback" not in err


def test_store_against_its_corpus(good):
    path, corpus = good
    rows = [list(corpus.text(l)) for l in corpus.languages]
    j = next(j for j in range(S) if rows[0][j] is None)
    rows[0][j] = "now with text"
    grown = ParallelCorpus("toy", LANGS, SIDS, rows)
    defects = check_store(path, corpus=grown)
    assert any(f"language deu_Latn: 1 sentences with text in the corpus are not in the store ('s{j}')" in d
               for d in defects), defects
    assert any("corpus_fingerprint differs" in d for d in defects)
    other = ParallelCorpus("toy", LANGS[:2], SIDS, rows[:2])
    assert any("languages differ from the corpus" in d for d in check_store(path, corpus=other))


def test_not_a_store(tmp_path):
    p = tmp_path / "x.h5"
    p.write_bytes(b"not hdf5 at all")
    assert "not a readable HDF5 file" in check_store(p)[0]
    assert "no such file" in check_store(tmp_path / "missing.h5")[0]
