"""The store contract: round trip against the in-memory arrays, chunking, atomic writes."""
import h5py
import numpy as np
import pytest

from babelmap import open_store
from babelmap.engine.store import StoreWriter, write_store
from babelmap.errors import StoreError


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    L, K, S, H = 3, 4, 50, 16
    emb = rng.normal(size=(L, K, S, H)).astype(np.float32)
    mask = rng.random((L, S)) > 0.2
    path = write_store(tmp_path / "s.h5", ["a_Latn", "b_Latn", "c_Cyrl"], [f"s{i}" for i in range(S)],
                       emb, mask=mask, dtype="float32", attrs={"model": "m", "pooling": "mean"})
    with open_store(path) as st:
        assert st.languages == ["a_Latn", "b_Latn", "c_Cyrl"]
        assert st.shape == (L, K, S, H) and st.layers == list(range(K))
        np.testing.assert_array_equal(st.mask, mask)
        expect = np.where(mask[1][:, None], emb[1, 2], 0)
        np.testing.assert_array_equal(st.embeddings("b_Latn", 2), expect)
        blk = st.block(slice(10, 20), layers=[0, 3])
        np.testing.assert_array_equal(blk, np.where(mask[:, None, 10:20, None], emb[:, [0, 3], 10:20], 0))
        assert st.attrs["format"] == "babelmap.store" and st.attrs["model"] == "m"
        with pytest.raises(StoreError, match="b_Lat"):
            st.embeddings("b_Lat", 0)


def test_chunks_are_about_one_mib(tmp_path):
    path = write_store(tmp_path / "s.h5", ["a"], [str(i) for i in range(2000)],
                       np.zeros((1, 13, 2000, 384), np.float32))
    with h5py.File(path) as f:
        c = f["embeddings"].chunks
    assert c[:2] == (1, 13) and c[3] == 384
    assert 0.5 < c[2] * 13 * 384 * 2 / 2**20 <= 1.0


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "s.h5"
    with pytest.raises(RuntimeError):
        with StoreWriter(target, ["a"], ["1"], 2, 4) as w:
            w.write_language(0, np.ones((2, 1, 4)))
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
