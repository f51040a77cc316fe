"""The store joined by reference: parts become shards, the store is an index whose
/embeddings is an HDF5 virtual dataset over them. Compared with the in-memory arrays the
parts were written from (float16 round trip, exact)."""
from __future__ import annotations

import json
import logging
import os
import shutil

import h5py
import numpy as np
import pytest

from babelmap import open_store
from babelmap.engine.errors import StoreError
from babelmap.engine.join import join_parts
from babelmap.engine.parts import (Block, block_checksum, finished_units, list_parts, parts_dir, read_block,
                                   read_part_info, shards_dir, verify_part, write_part)
from babelmap.engine.store import describe_store

L, K, S, H = 3, 4, 60, 8
LANGS = ["deu_Latn", "eng_Latn", "fra_Latn"]
SIDS = [f"s{j}" for j in range(S)]
PROV = {"model": "m", "model_fingerprint": "ab" * 32, "pooling": "mean", "dtype": "float16", "max_length": 128,
        "prefix": "", "corpus_name": "toy", "corpus_fingerprint": "cd" * 32, "compute_dtype": "float32",
        "token_budget": 64}


def data(seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((L, S)) > 0.3
    mask[2, 20:50] = False  # a long gap: chunks never allocated
    emb = np.where(mask[:, None, :, None], rng.normal(size=(L, K, S, H)), 0).astype(np.float16)
    ntok = np.where(mask, rng.integers(1, 40, (L, S)), 0).astype(np.int32)
    return mask, emb, ntok


def block(mask, emb, ntok, i, a, b, layers=None):
    s = a + np.flatnonzero(mask[i, a:b])
    e = emb[i][:, s, :] if layers is None else emb[i][layers][:, s, :]
    return Block(LANGS[i], i, a, b, s, ntok[i, s], e)


# mixed-language units, one language split across two units
UNITS = {"u0": [(0, 0, 25), (1, 0, 60)], "u1": [(0, 25, 60), (2, 0, 60)]}


def write_units(out, mask, emb, ntok, layers=None, prov=PROV):
    for uid, blocks in UNITS.items():
        write_part(parts_dir(out), uid, [block(mask, emb, ntok, *b, layers=layers) for b in blocks], prov)


def join(out, mask, **kw):
    args = dict(languages=LANGS, sentence_ids=SIDS, mask=mask, provenance=PROV, n_layers=K, hidden=H,
                store_dtype="float16", attrs=dict(PROV), progress=False)
    args.update(kw)
    return join_parts(parts_dir(out), out, **args)


@pytest.fixture
def joined(tmp_path):
    mask, emb, ntok = data()
    out = tmp_path / "a" / "s.h5"
    write_units(out, mask, emb, ntok)
    join(out, mask)
    return out, mask, emb, ntok


def test_plain_h5py_reads_the_data_from_anywhere(joined, tmp_path, monkeypatch):
    out, mask, emb, ntok = joined
    assert not parts_dir(out).exists() and len(list_parts(shards_dir(out))) == 2
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with h5py.File(out, "r") as f:
        assert f["embeddings"].is_virtual
        assert len(f["embeddings"].virtual_sources()) == 4  # one mapping per block
        np.testing.assert_array_equal(f["embeddings"][...], emb)
        np.testing.assert_array_equal(f["mask"][()], mask)
        np.testing.assert_array_equal(f["n_tokens"][()], ntok)
    # the store and its shards folder moved together, opened through a relative path
    moved = tmp_path / "b"
    shutil.move(str(out.parent), str(moved))
    monkeypatch.chdir(tmp_path)
    with h5py.File(os.path.join("b", "s.h5"), "r") as f:
        np.testing.assert_array_equal(f["embeddings"][...], emb)
    with open_store(moved / "s.h5") as st:
        np.testing.assert_array_equal(st.block(slice(10, 40), layers=[0, 3]), emb[:, [0, 3], 10:40])
        np.testing.assert_array_equal(st.embeddings("eng_Latn", 2), emb[1, 2])
        assert st.layers == list(range(K)) and st.documents is None and st.is_sharded


def test_shard_chunks_are_about_one_mib_along_sentences(tmp_path):
    Kb, Hb, n = 13, 384, 300
    rng = np.random.default_rng(0)
    e = rng.normal(size=(Kb, n, Hb)).astype(np.float16)
    p = write_part(tmp_path, "big", [Block("eng_Latn", 0, 0, n, np.arange(n), np.ones(n, np.int32), e)], PROV)
    with h5py.File(p, "r") as f:
        c = f["emb/0"].chunks
    assert c[0] == Kb and c[2] == Hb and 0.5 < c[1] * Kb * Hb * 2 / 2**20 <= 1.0
    np.testing.assert_array_equal(read_block(read_part_info(p), 0), e)


def test_missing_rows_cost_nothing_and_read_as_zero(joined):
    out, mask, emb, _ = joined
    with h5py.File(shards_dir(out) / list_parts(shards_dir(out))[1].name, "r") as f:
        ds = f["emb/1"]  # fra_Latn [0, 60) with rows 20..49 missing
        per = ds.chunks[1]
        allocated = ds.id.get_num_chunks()
    assert allocated < -(-S // per) or per >= S
    with open_store(out) as st:
        assert not st.embeddings("fra_Latn", 1)[20:50].any()


def test_layers_subset_and_documents(tmp_path):
    mask, emb, ntok = data()
    out = tmp_path / "s.h5"
    keep = [0, 2]
    write_units(out, mask, emb, ntok, layers=keep)
    docs = [f"doc{j // 20}" for j in range(S)]
    join(out, mask, n_layers=len(keep), layers=keep, documents=docs)
    with open_store(out) as st:
        assert st.layers == keep and st.shape == (L, 2, S, H)
        np.testing.assert_array_equal(st.block(), emb[:, keep])
        assert st.documents == docs and st.attrs["layers"] == "[0, 2]"
    assert "hidden states kept: [0, 2]" in describe_store(out)


def test_checksums_are_copied_not_recomputed(joined):
    out, mask, emb, ntok = joined
    with h5py.File(out, "r") as f:
        sums = [s.decode() for s in f["blocks/sha256"][()]]
        rows = list(zip(f["blocks/lang_index"][()], f["blocks/start"][()], f["blocks/stop"][()]))
    assert rows == [(0, 0, 25), (0, 25, 60), (1, 0, 60), (2, 0, 60)]
    for (i, a, b), sha in zip(rows, sums):
        s = a + np.flatnonzero(mask[i, a:b])
        assert sha == block_checksum(s, ntok[i, s], emb[i][:, s, :])
    for p in list_parts(shards_dir(out)):
        assert verify_part(read_part_info(p)) == []


def test_missing_shard_is_one_clear_error(joined):
    out, *_ = joined
    list_parts(shards_dir(out))[0].unlink()
    with pytest.raises(StoreError, match=r"1 shard file\(s\) are missing.*move or copy them together"):
        open_store(out)


def test_finished_units_reads_records_only(tmp_path, caplog):
    mask, emb, ntok = data()
    out = tmp_path / "s.h5"
    write_units(out, mask, emb, ntok)
    folder = parts_dir(out)
    (folder / ".u9.h5.tmp-123").write_bytes(b"half")
    bad = list_parts(folder)[1]
    with open(bad, "r+b") as fh:
        fh.truncate(os.path.getsize(bad) // 2)
    with caplog.at_level(logging.WARNING, logger="babelmap"):
        done = finished_units(folder, PROV, out)
    assert list(done) == ["u0"] and not bad.exists() and not (folder / ".u9.h5.tmp-123").exists()
    assert any("redoing a damaged part" in r.getMessage() for r in caplog.records)
    info = done["u0"]
    assert [(l, a, b) for l, a, b, _ in info.blocks] == [("deu_Latn", 0, 25), ("eng_Latn", 0, 60)]
    np.testing.assert_array_equal(info.blocks[1][3], np.flatnonzero(mask[1]))
    with pytest.raises(StoreError, match=r"(?s)different run.*pooling: there 'mean', this run 'cls'"):
        finished_units(folder, dict(PROV, pooling="cls"), out)
    with pytest.raises(StoreError, match=r"(?s)split: there '', this run 'devtest'"):
        finished_units(folder, dict(PROV, split="devtest"), out)  # a key the corpus adds is compared too


def test_interrupted_join_recovers_its_parts(joined):
    """Killed between the two renames: shards and no store; the next run counts them as parts."""
    out, mask, *_ = joined
    out.unlink()
    done = finished_units(parts_dir(out), PROV, out)
    assert sorted(done) == ["u0", "u1"] and not shards_dir(out).exists()
    join(out, mask)
    assert open_store(out).shape == (L, K, S, H)


def test_overlapping_blocks_and_nan_are_refused(tmp_path):
    mask, emb, ntok = data()
    out = tmp_path / "s.h5"
    write_part(parts_dir(out), "x", [block(mask, emb, ntok, 1, 0, 30)], PROV)
    write_part(parts_dir(out), "y", [block(mask, emb, ntok, 1, 25, 60)], PROV)
    # rows 25..29 are in both blocks: coverage says so before anything is written
    with pytest.raises(StoreError, match=r"language eng_Latn: \d+ sentences are in more than one part"):
        only_eng = np.zeros_like(mask)
        only_eng[1] = mask[1]
        join(out, only_eng)
    bad = block(mask, emb, ntok, 0, 0, 60)
    bad.emb = bad.emb.copy()
    bad.emb[1, 3, 0] = np.inf
    with pytest.raises(StoreError, match=r"language deu_Latn: NaN or Inf embeddings for 1 sentences"):
        write_part(tmp_path / "p", "z", [bad], PROV)


def test_provenance_record_and_summary(joined):
    out, mask, *_ = joined
    with h5py.File(out, "r") as f:
        rec = json.loads(f.attrs["provenance"])
    assert rec["pooling"] == "mean" and rec["model_fingerprint"] == "ab" * 32
    text = describe_store(out)
    assert "3 languages x 60 sentences x 4 hidden states x 8 dims, float16" in text
    assert "2 shards in s.h5.shards/" in text and f"{K * H * 2} bytes per sentence" in text


def test_too_few_open_files_is_an_error_not_silent_zeros(joined):
    """HDF5 reads a shard it cannot open as zeros: open_store refuses instead."""
    import resource
    import subprocess
    import sys
    out, *_ = joined
    code = ("from babelmap import open_store\n"
            "from babelmap.engine.errors import StoreError\n"
            f"try:\n    open_store({str(out)!r})\nexcept StoreError as e:\n    print(e)\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert "has 2 shard files, but this process may open only 200 files (ulimit -n)" in r.stdout, r.stderr


def test_reads_keep_no_chunk_cache_per_shard(joined):
    """A read across all languages must not keep a chunk per block resident."""
    out, *_ = joined
    with open_store(out) as st:
        assert st.f.id.get_access_plist().get_cache()[2] == 0
