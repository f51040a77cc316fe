"""`babelmap info` and `open_store` name what a file is instead of crashing: a store, a
similarity result, a word store, a part, a store missing /embeddings."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from babelmap import open_store
from babelmap.cli import main as cli
from babelmap.engine.errors import StoreError
from babelmap.engine.parts import Block, write_part
from babelmap.engine.store import write_store
from babelmap.engine.words import write_word_store

LANGS = ["deu_Latn", "eng_Latn", "fra_Latn"]


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    return write_store(tmp_path / "s.h5", LANGS, [f"s{j}" for j in range(10)], rng.normal(size=(3, 2, 10, 4)),
                       attrs={"model": "m", "pooling": "mean"})


def test_info_on_a_store(store, capsys):
    assert cli(["info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "3 languages x 10 sentences x 2 hidden states x 4 dims, float16" in out
    assert "16 bytes per sentence" in out


def test_open_store_names_a_similarity_result(store, tmp_path):
    sim = tmp_path / "similarity.h5"
    with h5py.File(sim, "w") as f:
        f.attrs["format"] = "babelmap.similarity"
        f.create_dataset("sim", data=np.eye(3)[None])
    with pytest.raises(StoreError, match=r"similarity.h5 is a similarity result \(open it with babelmap.load"):
        open_store(sim)


def test_word_store_and_part_are_named(tmp_path, capsys):
    w = write_word_store(tmp_path / "w.h5", ["s0"], {"eng_Latn": ([0, 1], ["a"], np.ones((2, 1, 4)))})
    assert cli(["info", str(w)]) == 1
    assert "is a word store" in capsys.readouterr().err
    p = write_part(tmp_path / "parts", "u", [Block("eng_Latn", 0, 0, 1, np.array([0]), np.array([3], np.int32),
                                                   np.ones((2, 1, 4), np.float16))], {"model": "m"})
    with pytest.raises(StoreError, match="a part of an unfinished extraction"):
        open_store(p)
    assert cli(["info", str(p)]) == 1
    err = capsys.readouterr().err
    assert "a part of an unfinished extraction" in err and "Traceback" not in err


def test_similarity_on_a_store_without_embeddings_is_one_line(store, tmp_path, capsys):
    with h5py.File(store, "r+") as f:
        del f["embeddings"]
    assert cli(["similarity", str(store), "--out", str(tmp_path / "x.h5")]) == 1
    err = capsys.readouterr().err
    assert "has no /embeddings dataset" in err and "Traceback" not in err
    assert cli(["check", str(store)]) == 1
