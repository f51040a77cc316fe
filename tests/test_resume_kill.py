"""Resume after a real SIGKILL: `python -m babelmap extract ...` kills itself (test hook in
engine/parts.py) right after its N-th part rename, or right before one; the same command
run again finishes with a store identical to an uninterrupted run, keeping the finished
part files untouched and redoing only the unfinished units."""
from __future__ import annotations

import signal

import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.extract import extract
from babelmap.engine.parts import parts_dir, shards_dir
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import assert_same_store, babelmap, corpus_rows, extract_args, parts_written, write_plain

LANGS = ("deu_Latn", "ell_Grek", "eng_Latn", "fra_Latn", "rus_Cyrl")
UNIT = 20  # sentences per unit at most: with 20 sentences per language, one unit each: 5 parts


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("resume")
    corpus_dir = write_plain(tmp / "corpus", corpus_rows(LANGS, n=20, seed=5))
    ref = tmp / "ref.h5"
    extract(read_corpus(corpus_dir, "plain"), ref, str(tiny_bert), device="cpu", token_budget=64, progress=False,
            unit_sentences=UNIT)
    return tmp, corpus_dir, ref


def finished(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".h5" and ".tmp-" not in p.name)


def kill_and_resume(tmp_path, setup, tiny_bert, hook: str, n: int, kept: int, tmp_left: int):
    _, corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    args = ["-v", *extract_args(corpus_dir, tiny_bert, out, "--keep-parts", "--unit-sentences", str(UNIT))]
    r = babelmap(args, tmp_path, **{hook: str(n)})
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    assert not out.exists()
    folder = parts_dir(out)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished(folder)}
    assert len(before) == kept
    assert len([p for p in folder.iterdir() if ".tmp-" in p.name]) == tmp_left
    r = babelmap(args, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    if kept:
        assert f"resuming: {kept} finished parts kept" in r.stderr
    assert parts_written(r) == len(LANGS) - kept  # only the unfinished units are redone
    shards = shards_dir(out)  # joined by reference: the parts became the store's shards, untouched
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished(shards)}
    assert len(after) == len(LANGS) and all(after[k] == v for k, v in before.items())
    assert not [p for p in shards.iterdir() if ".tmp-" in p.name] and not folder.exists()
    assert_same_store(ref, out)


def test_kill_after_first_part(tmp_path, setup, tiny_bert):
    kill_and_resume(tmp_path, setup, tiny_bert, "BABELMAP_TEST_KILL_AFTER_PARTS", 1, kept=1, tmp_left=0)


@pytest.mark.slow
def test_kill_after_third_part(tmp_path, setup, tiny_bert):
    kill_and_resume(tmp_path, setup, tiny_bert, "BABELMAP_TEST_KILL_AFTER_PARTS", 3, kept=3, tmp_left=0)


@pytest.mark.slow
def test_kill_before_a_rename(tmp_path, setup, tiny_bert):
    # killed with part 2 fully written under its temporary name: it is not finished, so redone
    kill_and_resume(tmp_path, setup, tiny_bert, "BABELMAP_TEST_KILL_BEFORE_RENAME", 2, kept=1, tmp_left=1)


@pytest.mark.slow
def test_kill_after_last_part_before_join(tmp_path, setup, tiny_bert):
    # every unit finished, killed before the join: the rerun only joins
    kill_and_resume(tmp_path, setup, tiny_bert, "BABELMAP_TEST_KILL_AFTER_PARTS", 5, kept=5, tmp_left=0)
