"""A full disk, for real: a small tmpfs mounted for the test (root only; skipped otherwise).

Each scenario runs `python -m babelmap` as a subprocess (a segfault would show as exit 139)
and wants: exit 1, one clear line (the disk is full / not enough free space, with the path),
no traceback, no temporary left, the lock released, and a rerun after freeing space that
finishes with a store identical to an unfaulted run.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from babelmap.engine.lock import OutputLock
from babelmap.engine.parts import FILLER_NAME, list_parts, parts_dir, shards_dir
from extract_util import assert_same_store, babelmap, corpus_rows, extract_args, parts_written, write_plain

LANGS = ("deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl")
UNIT = ["--unit-sentences", "8"]


def _mount(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"babelmap-test-{uuid.uuid4().hex[:6]}",
                        str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'mount failed'}); needs root")


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs folder of that size; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        _mount(where, size)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return write_plain(tmp_path_factory.mktemp("diskfull-corpus") / "corpus", corpus_rows(LANGS, n=16, seed=5))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_bert, corpus_dir):
    tmp = tmp_path_factory.mktemp("diskfull")
    corpus = corpus_dir
    ref = tmp / "ref" / "s.h5"
    r = babelmap(extract_args(corpus, tiny_bert, ref, *UNIT), tmp)
    assert r.returncode == 0, r.stderr
    return corpus, ref, len(list_parts(shards_dir(ref)))


def assert_one_clear_line(r: subprocess.CompletedProcess, *wanted: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])  # not 139 (segfault), not a traceback
    assert "Traceback" not in r.stderr and "Segmentation" not in r.stderr, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("babelmap")]
    assert len(errors) == 1, r.stderr
    assert any(w in errors[0] for w in wanted), errors[0]
    return errors[0]


def no_temporaries(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if ".tmp-" in p.name]
    assert left == [], left


def lock_released(out: Path) -> None:
    with OutputLock(out):
        pass
    assert not out.with_name(out.name + ".lock.owner").exists()


@pytest.mark.slow
def test_too_small_disk_is_refused_with_sizes(tmpfs, corpus_dir, tiny_bert, tmp_path):
    corpus = corpus_dir
    fs = tmpfs("48k")
    out = fs / "s.h5"
    r = babelmap(extract_args(corpus, tiny_bert, out, *UNIT), tmp_path)
    line = assert_one_clear_line(r, "not enough free space", "the disk is full")
    assert str(fs) in line and "free" in line
    no_temporaries(fs)
    lock_released(out)
    assert not out.exists()


@pytest.mark.slow
def test_disk_that_fills_mid_run_then_rerun_is_identical(tmpfs, reference, tiny_bert, tmp_path):
    corpus, ref, n = reference
    fs = tmpfs("16m")
    out = fs / "s.h5"
    r = babelmap(extract_args(corpus, tiny_bert, out, *UNIT), tmp_path, BABELMAP_TEST_FILL_AFTER_PARTS="2")
    assert_one_clear_line(r, "the disk is full", "not enough free space")
    assert "free space and run the same command again" in r.stderr
    assert len(list_parts(parts_dir(out))) == 2 and not out.exists()
    no_temporaries(fs)
    lock_released(out)
    (fs / FILLER_NAME).unlink()
    r = babelmap(["-v"] + extract_args(corpus, tiny_bert, out, *UNIT), tmp_path)
    assert r.returncode == 0, r.stderr
    assert parts_written(r) == n - 2
    assert_same_store(ref, out)


@pytest.mark.slow
def test_disk_full_at_the_join_keeps_every_part(tmpfs, reference, tiny_bert, tmp_path):
    corpus, ref, n = reference
    fs = tmpfs("16m")
    out = fs / "s.h5"
    r = babelmap(extract_args(corpus, tiny_bert, out, *UNIT), tmp_path, BABELMAP_TEST_FILL_AFTER_PARTS=str(n))
    assert_one_clear_line(r, "the disk is full", "not enough free space")
    assert "store index" in r.stderr
    assert len(list_parts(parts_dir(out))) == n and not out.exists()
    no_temporaries(fs)
    lock_released(out)
    (fs / FILLER_NAME).unlink()
    r = babelmap(["-v"] + extract_args(corpus, tiny_bert, out, *UNIT), tmp_path)
    assert r.returncode == 0, r.stderr
    assert parts_written(r) == 0
    assert_same_store(ref, out)


def fill(fs: Path) -> None:
    with open(fs / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def test_safe_writers_on_a_full_disk(tmpfs):
    """The helpers the exports use: one StoreError with path and sizes, no temporary, no segfault."""
    import numpy as np

    from babelmap.engine.diskwrite import write_hdf5_safely, write_text_safely
    from babelmap.engine.errors import StoreError
    fs = tmpfs("64k")
    fill(fs)
    with pytest.raises(StoreError, match=rf"not enough free space for the similarity result sim.h5 in {fs}: "
                                         r"needs about .*, .* free"):
        write_hdf5_safely(fs / "sim.h5", lambda f: f.create_dataset("sim", data=np.ones((64, 64))),
                          "the similarity result")
    with pytest.raises(StoreError, match=r"(not enough free space|the disk is full)"):
        write_text_safely(fs / "a.tsv", "x\t" * 10000, "TSV")
    no_temporaries(fs)
    (fs / "filler").unlink()
    write_hdf5_safely(fs / "sim.h5", lambda f: f.create_dataset("sim", data=np.ones((64, 64))), "result")
    import h5py
    with h5py.File(fs / "sim.h5", "r") as f:
        assert f["sim"][()].sum() == 64 * 64


@pytest.mark.slow
def test_similarity_export_to_a_full_disk(tmpfs, reference, tmp_path):
    """KERNELS owns the export; this checks what the user sees (one line, nothing half-written)."""
    _, ref, _ = reference
    fs = tmpfs("64k")
    fill(fs)
    r = babelmap(["similarity", str(ref), "--out", str(fs / "sim.h5"), "--tsv", str(fs / "tsv"), "--no-progress"],
                 tmp_path)
    assert_one_clear_line(r, "disk is full", "not enough free space", "No space left")
    no_temporaries(fs)
    assert not (fs / "sim.h5").exists()


@pytest.mark.slow
def test_word_store_on_a_full_disk(tmpfs, corpus_dir, tiny_bert, tmp_path):
    """The word store shares the machinery: one StoreError, nothing half-written, lock released."""
    import sys
    fs = tmpfs("64m")
    out = fs / "w.h5"
    code = ("import sys\nfrom babelmap.engine.corpora import read_corpus\n"
            "from babelmap.engine.words import extract_words\nfrom babelmap.engine.errors import StoreError\n"
            f"c = read_corpus({str(corpus_dir)!r}, 'plain')\n"
            f"try:\n    extract_words(c, {str(out)!r}, {str(tiny_bert)!r}, device='cpu', progress=False)\n"
            "except StoreError as e:\n    print('ERR', e)\n    sys.exit(1)\n")
    fill_to = fs / "filler"
    fill(fs)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert "ERR " in r.stdout and ("not enough free space" in r.stdout or "the disk is full" in r.stdout), r.stdout
    no_temporaries(fs)
    fill_to.unlink()
    lock_released(out)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    from babelmap.engine.words import open_words
    with open_words(out) as ws:
        assert len(ws.languages) == len(LANGS)
