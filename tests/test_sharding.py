"""Several processes, one result, with real processes (gloo on CPU): `torchrun` and
`accelerate launch --multi_gpu` both give N ranks whose store equals the single-process one
(arrays bit for bit, attributes except the command line and time); `accelerate launch`
without --multi_gpu (which starts ONE process) is refused with a clear message; a refusal or
a dead process stops every rank with a clear message, and a rerun resumes."""
from __future__ import annotations

import re
import signal
import socket
import sys
import time

import pytest

from babelmap.engine.corpora import read_corpus
from babelmap.engine.extract import extract
from babelmap.engine.parts import parts_dir
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import assert_same_store, babelmap, corpus_rows, extract_args, write_plain

UNIT = "12"  # sentences per unit: about one language each, so 2 ranks both get work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port())]


def accelerate(n: int, multi_gpu: bool = True) -> list[str]:
    return ([sys.executable, "-m", "accelerate.commands.launch"] + (["--multi_gpu"] if multi_gpu else [])
            + ["--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port())])


LANGS = ("deu_Latn", "eng_Latn", "fra_Latn")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("shard")
    # eng_Latn 8x longer: the heaviest unit
    corpus_dir = write_plain(tmp / "corpus", corpus_rows(LANGS, n=20, seed=7, long={"eng_Latn": 8}))
    ref = tmp / "ref.h5"
    extract(read_corpus(corpus_dir, "plain"), ref, str(tiny_bert), device="cpu", token_budget=64, progress=False,
            unit_sentences=int(UNIT))
    return corpus_dir, ref


def per_process(r) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"process (\d+) wrote (\d+) parts", r.stderr)}


def test_torchrun_two_processes_give_the_single_process_store(tmp_path, setup, tiny_bert):
    corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    r = babelmap(["-v", *extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", UNIT)], tmp_path,
                 launcher=torchrun(2), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wrote = per_process(r)
    assert set(wrote) == {"0", "1"} and all(v > 0 for v in wrote.values()), wrote
    assert sum(wrote.values()) >= 4  # the corpus is several units
    assert r.stdout.count("store ") == 1  # one summary, from the main process
    assert_same_store(ref, out)


@pytest.mark.slow
def test_accelerate_two_processes_give_the_single_process_store(tmp_path, setup, tiny_bert):
    corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    r = babelmap(["-v", *extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", UNIT)], tmp_path,
                 launcher=accelerate(2), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wrote = per_process(r)
    assert set(wrote) == {"0", "1"} and all(v > 0 for v in wrote.values()), wrote
    assert_same_store(ref, out)


def test_accelerate_without_multi_gpu_is_refused(tmp_path, setup, tiny_bert):
    """accelerate's simple launcher starts one process for --num_processes 2: refused, exit 1,
    one line naming the command that works (before any work is done)."""
    corpus_dir, _ = setup
    out = tmp_path / "s.h5"
    r = babelmap(extract_args(corpus_dir, tiny_bert, out), tmp_path, launcher=accelerate(2, multi_gpu=False),
                 timeout=300)
    assert r.returncode != 0
    assert "babelmap extract: error: accelerate launch started one process" in r.stderr
    assert "--multi_gpu" in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_resume_with_another_number_of_processes(tmp_path, setup, tiny_bert):
    """Killed as one process after 2 parts, finished by 2 processes: the same store."""
    corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    args = ["-v", *extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", UNIT)]
    r = babelmap(args, tmp_path, BABELMAP_TEST_KILL_AFTER_PARTS="2")
    assert r.returncode == -signal.SIGKILL
    r = babelmap(args, tmp_path, launcher=torchrun(2), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming: 2 finished parts kept" in r.stderr
    assert_same_store(ref, out)


@pytest.mark.slow
def test_a_dead_process_stops_the_others_and_a_rerun_resumes(tmp_path, setup, tiny_bert):
    """Rank 1 is SIGKILLed after its units while rank 0 waits: the run ends (no hang) with a
    non-zero exit, and the same command run again finishes the identical store."""
    corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    args = ["-v", *extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", UNIT)]
    t0 = time.monotonic()
    r = babelmap(args, tmp_path, launcher=torchrun(2), timeout=240, BABELMAP_TEST_DIE_RANK="1",
                 BABELMAP_DIST_TIMEOUT="60")
    assert r.returncode != 0 and time.monotonic() - t0 < 200
    assert not out.exists()
    assert "Signals.SIGKILL" in r.stderr or "another process stopped" in r.stderr, r.stderr[-2000:]
    r = babelmap(args, tmp_path, launcher=torchrun(2), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming:" in r.stderr
    assert_same_store(ref, out)


@pytest.mark.slow
def test_refusal_stops_every_process_cleanly(tmp_path, setup, tiny_bert, tmp_path_factory):
    """Parts of another model under 2 processes: every rank stops with the refusal, exit 1."""
    from tiny import make_tiny_model
    corpus_dir, _ = setup
    other = make_tiny_model(tmp_path_factory.mktemp("other"), "bert", seed=1)
    out = tmp_path / "s.h5"
    args = extract_args(corpus_dir, tiny_bert, out, "--unit-sentences", UNIT)
    r = babelmap(args, tmp_path, BABELMAP_TEST_KILL_AFTER_PARTS="3")
    assert r.returncode == -signal.SIGKILL
    r = babelmap(extract_args(corpus_dir, other, out, "--unit-sentences", UNIT), tmp_path,
                 launcher=torchrun(2), timeout=300)
    assert r.returncode != 0
    assert r.stderr.count("was written by a different run") == 2 and "model_fingerprint: there" in r.stderr
    assert len(list(parts_dir(out).iterdir())) == 3 and not out.exists()
