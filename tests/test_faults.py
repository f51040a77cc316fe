"""Faults: a full disk, corrupt and truncated parts, a model/corpus/dtype changed between
runs, two runs on one output, and a join that would miss or double sentences. Each stops
with a clear message or resumes, and the finished store always equals an unfaulted run."""
from __future__ import annotations

import logging
import os
import shutil
import socket

import h5py
import pytest

from babelmap.cli import main as cli
from babelmap.engine.corpora import read_corpus
from babelmap.engine.extract import extract
from babelmap.engine.join import join_parts, list_parts
from babelmap.engine.lock import OutputLock
from babelmap.engine.check import check_store
from babelmap.engine.parts import PART_KEYS, parts_dir, read_part_info, shards_dir
from babelmap.errors import StoreError
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import (assert_same_store, babelmap, corpus_rows, extract_args, parts_written, read_store,
                          write_plain)

LANGS = ("deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("faults")
    corpus_dir = write_plain(tmp / "corpus", corpus_rows(LANGS, n=16, seed=9))
    corpus = read_corpus(corpus_dir, "plain")
    ref = run(corpus, tmp / "ref.h5", tiny_bert)
    return corpus_dir, corpus, ref


UNIT = 8  # sentences per unit: several units (and so several parts) per run


def run(corpus, out, model, **kw):
    kw.setdefault("unit_sentences", UNIT)
    return extract(corpus, out, str(model), device="cpu", token_budget=64, progress=False, **kw)


def n_parts(out) -> int:
    """Parts (before the join) or shards (after it) of the run writing `out`."""
    return len(list_parts(parts_dir(out))) + len(list_parts(shards_dir(out)))


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def written(caplog) -> int:
    return sum(int(r.getMessage().split()[3]) for r in caplog.records if "wrote" in r.getMessage()
               and r.getMessage().startswith("process"))


def test_full_disk_is_a_clean_error_and_resumes(tmp_path, setup, tiny_bert, monkeypatch, capsys):
    corpus_dir, corpus, ref = setup
    out = tmp_path / "s.h5"
    monkeypatch.setenv("BABELMAP_TEST_ENOSPC_AT_PART", "2")
    rc = cli(extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", str(UNIT)))
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "the disk is full" in err and "run the same command again" in err
    assert files(parts_dir(out)) == [f for f in files(parts_dir(out)) if ".tmp-" not in f]  # no partial part
    assert len(files(parts_dir(out))) == 1 and not out.exists()
    monkeypatch.delenv("BABELMAP_TEST_ENOSPC_AT_PART")
    run(corpus, out, tiny_bert)  # the lock was released, the finished part is reused
    assert_same_store(ref, out)


def corrupt(path):
    """Flip bytes inside the first embedding chunk of a part (HDF5 cannot tell)."""
    with h5py.File(path, "r") as f:
        off = f["emb/0"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(off + 8)
        b = fh.read(4)
        fh.seek(off + 8)
        fh.write(bytes(x ^ 0x5A for x in b))


def truncate(path):
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)


def test_truncated_part_is_redone_without_rehashing_the_rest(tmp_path, setup, tiny_bert, caplog):
    _, corpus, ref = setup
    out = tmp_path / "s.h5"
    run(corpus, out, tiny_bert)
    total = n_parts(out)
    assert total >= 3
    out.unlink()  # the index gone: the shards count as finished parts again
    victim = list_parts(shards_dir(out))[1]
    truncate(victim)
    with caplog.at_level(logging.INFO, logger="babelmap"):
        run(corpus, out, tiny_bert)
    assert any("redoing a damaged part" in r.getMessage() and victim.name in r.getMessage()
               for r in caplog.records)
    assert written(caplog) == 1  # only the damaged unit
    assert_same_store(ref, out)


def test_corrupt_shard_is_found_by_check_and_redone(tmp_path, setup, tiny_bert, caplog, capsys):
    """A resume never re-reads embeddings; `check` recomputes the checksums, names the shard,
    and deleting the store and that shard redoes only its unit."""
    _, corpus, ref = setup
    out = tmp_path / "s.h5"
    run(corpus, out, tiny_bert)
    victim = list_parts(shards_dir(out))[1]
    corrupt(victim)
    defects = check_store(out)
    assert any("content differs from the checksum" in d and victim.name in d for d in defects), defects
    assert cli(["check", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"delete {out} and {victim}" in err and "Traceback" not in err
    out.unlink()
    victim.unlink()
    with caplog.at_level(logging.INFO, logger="babelmap"):
        run(corpus, out, tiny_bert)
    assert written(caplog) == 1
    assert_same_store(ref, out)
    assert check_store(out) == []


def test_model_changed_is_refused(tmp_path, setup, tiny_bert, tmp_path_factory):
    from tiny import make_tiny_model
    _, corpus, _ = setup
    other = make_tiny_model(tmp_path_factory.mktemp("other-bert"), "bert", seed=1)
    out = tmp_path / "s.h5"
    run(corpus, out, tiny_bert, keep_parts=True)
    with pytest.raises(StoreError, match=r"(?s)existing store.*model_fingerprint.*--overwrite"):
        run(corpus, out, other)
    out.unlink()  # its shards become parts again, of another run
    with pytest.raises(StoreError, match=r"(?s)part .*different run.*model_fingerprint.*--overwrite"):
        run(corpus, out, other)
    run(corpus, out, other, overwrite=True)
    _, attrs = read_store(out)
    _, ref_attrs = read_store(setup[2])
    assert attrs["model_fingerprint"] != ref_attrs["model_fingerprint"]


def test_corpus_or_dtype_changed_is_refused(tmp_path, setup, tiny_bert):
    _, corpus, _ = setup
    out = tmp_path / "s.h5"
    run(corpus, out, tiny_bert)
    before = n_parts(out)
    out.unlink()
    rows = {l: list(corpus.text(l)) for l in corpus.languages}
    rows["eng_Latn"][3] = "a changed sentence"
    changed = write_plain(tmp_path / "corpus", rows)
    # same folder name as the original, so only the content (fingerprint) differs
    with pytest.raises(StoreError, match=r"(?s)corpus_fingerprint: there .*--overwrite to discard it, or choose another --out"):
        run(read_corpus(changed, "plain"), out, tiny_bert)
    with pytest.raises(StoreError, match=r"dtype: there 'float16', this run 'float32'"):
        run(corpus, out, tiny_bert, store_dtype="float32")
    assert n_parts(out) == before  # refusing never deletes finished work


def test_stale_store_temporary_of_a_killed_join_is_removed(tmp_path, setup, tiny_bert):
    _, corpus, ref = setup
    out = tmp_path / "s.h5"
    stale = tmp_path / ".s.h5.tmp-999999"
    stale.write_bytes(b"half a store")
    run(corpus, out, tiny_bert)
    assert not stale.exists()
    assert_same_store(ref, out)


def test_second_run_on_the_same_output_is_locked_out(tmp_path, setup, tiny_bert):
    _, corpus, _ = setup
    out = tmp_path / "s.h5"
    with OutputLock(out):
        with pytest.raises(StoreError, match=rf"another run is writing .*pid {os.getpid()} on host "
                                             rf"{socket.gethostname()}"):
            run(corpus, out, tiny_bert)
    assert not out.exists() and not parts_dir(out).exists()
    run(corpus, out, tiny_bert)  # free again


def test_out_where_no_file_can_be_created_says_so(setup, tiny_bert, capsys):
    corpus_dir, corpus, _ = setup
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs a /proc file system")
    with pytest.raises(StoreError, match=r"cannot write the store /proc/x.h5: /proc does not accept new files"):
        run(corpus, "/proc/x.h5", tiny_bert)
    assert cli(extract_args(corpus_dir, tiny_bert, "/proc/x.h5")) == 1
    err = capsys.readouterr().err
    assert "does not accept new files" in err and "another run" not in err and "Traceback" not in err


@pytest.mark.slow
def test_kill_between_the_join_renames_resumes_identical(tmp_path, setup, tiny_bert):
    corpus_dir, _, ref = setup
    out = tmp_path / "s.h5"
    args = extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", str(UNIT))
    r = babelmap(args, tmp_path, BABELMAP_TEST_KILL_IN_JOIN="1")
    assert r.returncode == -9 and not out.exists() and shards_dir(out).is_dir()
    r = babelmap(["-v"] + args, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "recovered the parts of an interrupted join" in r.stderr
    assert parts_written(r) == 0
    assert_same_store(ref, out)


@pytest.mark.slow
def test_lock_between_processes(tmp_path, setup, tiny_bert):
    corpus_dir, _, _ = setup
    out = tmp_path / "s.h5"
    with OutputLock(out):
        r = babelmap(extract_args(corpus_dir, tiny_bert, out), tmp_path)
    assert r.returncode == 1 and f"pid {os.getpid()}" in r.stderr and "Traceback" not in r.stderr


def test_join_refuses_missing_or_doubled_sentences(tmp_path, setup, tiny_bert):
    _, corpus, ref = setup
    out = tmp_path / "s.h5"
    run(corpus, out, tiny_bert)
    arrays, attrs = read_store(out)
    out.unlink()
    folder = shards_dir(out)  # join from the shards folder itself: it becomes <out>.shards/ again
    kw = dict(languages=corpus.languages, sentence_ids=corpus.sentence_ids, mask=arrays["mask"],
              provenance={k: attrs[k] for k in PART_KEYS}, n_layers=3, hidden=32, store_dtype="float16",
              attrs=attrs)
    parts = list_parts(folder)
    first = read_part_info(parts[0]).blocks[0][0]
    shutil.copy(parts[0], folder / ("zz-copy-" + parts[0].name))
    with pytest.raises(StoreError, match=rf"language {first}: \d+ sentences are in more than one part"):
        join_parts(folder, out, **kw)
    (folder / ("zz-copy-" + parts[0].name)).unlink()
    gone = parts[2]
    lost = sorted({b[0] for b in read_part_info(gone).blocks if b[3].size})
    keep = tmp_path / "kept.h5"
    shutil.move(gone, keep)
    with pytest.raises(StoreError, match=rf"language {lost[0]}: \d+ sentences are in no part .*run the same command"):
        join_parts(folder, out, **kw)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(StoreError, match=r"(?s)pooling: there 'mean', this run 'cls'"):
        join_parts(folder, out, **dict(kw, provenance=dict(kw["provenance"], pooling="cls")))
    shutil.move(keep, folder / gone.name)
    join_parts(folder, out, **kw)
    assert_same_store(ref, out)
