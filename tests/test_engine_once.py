"""Work the engine does once, not twice: a unit's embeddings are hashed where the model left
them (no full copies), the join reuses the part records a resume already read, a store reads
its shard list once, and the word store segments each text once. Each with the results of
the existing tests unchanged (same digests, same stores)."""
from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.extract import extract
from babelmap.engine.parts import HASH_VERSION, BlockHasher, block_checksum
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import assert_same_store, corpus_rows, write_plain

LANGS = ("deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl")


def _reference_digest(sentences, n_tokens, rows_nkh: np.ndarray) -> str:
    """The documented digest, written out: header, positions (int64), token counts (int32),
    then the rows [n, K, H] in position order."""
    n, K, H = rows_nkh.shape
    h = hashlib.sha256()
    h.update(f"{HASH_VERSION}|n={n}|K={K}|H={H}|{rows_nkh.dtype.str}|".encode())
    h.update(np.asarray(sentences, "<i8").tobytes())
    h.update(np.asarray(n_tokens, "<i4").tobytes())
    h.update(np.ascontiguousarray(rows_nkh).tobytes())
    return h.hexdigest()


def test_a_view_of_the_models_rows_is_hashed_in_place():
    rng = np.random.default_rng(0)
    n, K, H = 3000, 13, 384                     # 30 MB of float16 rows, as the model leaves them: [n, K, H]
    rows = rng.normal(size=(n, K, H)).astype(np.float16)
    sent, ntok = np.arange(n) * 2, rng.integers(1, 50, n)
    view = rows.transpose(1, 0, 2)              # the [K, n, H] block the writer hands over (a view)
    ref = _reference_digest(sent, ntok, rows)
    tracemalloc.start()
    got = block_checksum(sent, ntok, view)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == ref and peak < (1 << 20), peak          # no copy of the 30 MB (it made two)
    # any other layout still gives the same digest (check reads [K, r, H] pieces back from disk)
    assert block_checksum(sent, ntok, np.ascontiguousarray(view)) == ref
    h = BlockHasher(sent, ntok, K, H, np.float16)
    for a in range(0, n, 700):
        h.rows(np.ascontiguousarray(view[:, a:a + 700]))
    assert h.hexdigest() == ref


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("once")
    corpus = read_corpus(write_plain(tmp / "corpus", corpus_rows(LANGS, n=16, seed=9)), "plain")
    ref = extract(corpus, tmp / "ref.h5", str(tiny_bert), device="cpu", token_budget=64, progress=False,
                  unit_sentences=8)
    return corpus, ref


def test_writer_hands_views_and_join_reads_each_part_once(tmp_path, setup, tiny_bert, monkeypatch):
    """A run stopped by a full disk at its 3rd part, then resumed: every part record is read
    once (the resume's finished parts are not read again by the join), every block reaches
    write_part as a view of the model's output, and the store equals an unfaulted run's."""
    import babelmap.engine.join as join
    import babelmap.engine.parts as parts
    from babelmap.engine.errors import StoreError
    corpus, ref = setup
    out = tmp_path / "s.h5"
    views, reads = [], []
    real_write, real_read = parts.write_part, parts.read_part_info

    def write_part(folder, uid, blocks, attrs):
        views.extend(not b.emb.flags.c_contiguous and b.emb.transpose(1, 0, 2).flags.c_contiguous for b in blocks)
        return real_write(folder, uid, blocks, attrs)

    def read_part_info(path):
        reads.append(path.name)
        return real_read(path)
    monkeypatch.setattr(parts, "write_part", write_part)
    monkeypatch.setattr(parts, "read_part_info", read_part_info)
    monkeypatch.setattr(join, "read_part_info", read_part_info)
    kw = dict(device="cpu", token_budget=64, progress=False, unit_sentences=8)
    monkeypatch.setenv("BABELMAP_TEST_ENOSPC_AT_PART", "3")
    with pytest.raises(StoreError, match="disk is full"):
        extract(corpus, out, str(tiny_bert), **kw)
    monkeypatch.delenv("BABELMAP_TEST_ENOSPC_AT_PART")
    assert reads == []
    extract(corpus, out, str(tiny_bert), **kw)
    assert len(reads) == len(set(reads)) == len(join.list_parts(parts.shards_dir(out))) > 2, reads
    assert views and all(views)
    assert_same_store(ref, out)


def test_shard_paths_read_once_per_open_store(setup, monkeypatch):
    import babelmap.engine.store as store_mod
    from babelmap.engine.store import open_store
    _, ref = setup
    calls = []
    real = store_mod._decode
    monkeypatch.setattr(store_mod, "_decode", lambda x: calls.append(1) or real(x))
    with open_store(ref) as st:
        n = len(calls)
        first = st.shard_paths
        assert st.shard_paths == first and st.disk_bytes > 0 and len(calls) == n
        assert first and all(p.parent.name == ref.name + ".shards" and p.is_file() for p in first)
        first.clear()                                    # a caller's copy: the store's list is intact
        assert st.shard_paths


def test_word_store_segments_each_text_once(tmp_path, tiny_bert, monkeypatch):
    import babelmap.engine.words as words
    corpus = read_corpus(write_plain(tmp_path / "c", corpus_rows(("deu_Latn", "eng_Latn"), n=6, seed=2)), "plain")
    calls = []
    real = words.segment
    monkeypatch.setattr(words, "segment", lambda t, m="unicode": calls.append(t) or real(t, m))
    out = words.extract_words(corpus, tmp_path / "w.h5", str(tiny_bert), device="cpu", progress=False)
    present = [t for l in corpus.languages for t in corpus.text(l) if t is not None]
    assert sorted(calls) == sorted(present)
    with words.open_words(out) as ws:
        for l in corpus.languages:
            got = [w for sent in words.iter_sentence_words(ws, l) for w in sent]
            assert got == [w for t in corpus.text(l) if t is not None for w in words.segment_words(t)]
