"""Several processes, one result: units balanced by tokens (a big language split by batch
range), and a real 2-process run (`accelerate launch`, gloo on CPU) whose store equals the
single-process one (arrays bit for bit, attributes except the command line and time)."""
from __future__ import annotations

import re
import signal
import socket
import sys

import numpy as np
import pytest

from babelmap.engine.batching import make_batches
from babelmap.engine.corpora import read_corpus
from babelmap.engine.extract import extract
from babelmap.engine.parts import parts_dir
from babelmap.engine.plan import assign, plan_units
from extract_util import one_thread  # noqa: F401 (autouse fixture: one torch thread)
from extract_util import assert_same_store, babelmap, corpus_rows, extract_args, write_plain


def loads(shares):
    return [sum(u.cost for u in s) for s in shares]


def check_cover(units, costs):
    """Each language's batches are covered exactly once by contiguous unit ranges."""
    for lang, c in costs.items():
        rng = sorted((u.batch_start, u.batch_stop) for u in units if u.lang == lang)
        assert rng[0][0] == 0 and rng[-1][1] == len(c)
        assert all(a[1] == b[0] for a, b in zip(rng, rng[1:]))


def test_big_language_is_split_and_loads_balance_by_tokens():
    # one 670-verse translation (67 batches of 10 padded tokens x 10) against 13 of 50 verses
    costs = {"big_Latn": [100] * 67, **{f"s{i:02d}_Latn": [100] * 5 for i in range(13)}}
    langs = sorted(costs)
    sizes = {l: [10] * len(c) for l, c in costs.items()}
    units = plan_units(langs, costs, sizes, num_processes=2)
    check_cover(units, costs)
    big = [u for u in units if u.lang == "big_Latn"]
    assert len(big) == 2 and all(u.cost <= (6700 + 6500) / 2 for u in big)  # larger than a fair share: split
    assert all(len([u for u in units if u.lang == l]) == 1 for l in langs if l != "big_Latn")
    ld = loads(assign(units, 2))
    assert sum(ld) == 13200 and max(ld) - min(ld) <= 500  # within one small language
    # by language count (7 and 7 languages) one process would get the 670-verse one: 6700+3000 vs 3500
    by_count = [sum(sum(costs[l]) for l in langs[::2]), sum(sum(costs[l]) for l in langs[1::2])]
    assert max(by_count) - min(by_count) > 5000


def test_plan_skips_finished_batches_and_caps_units():
    costs = {"a_Latn": [30] * 10, "b_Latn": [10] * 4}
    sizes = {l: [3] * len(c) for l, c in costs.items()}
    units = plan_units(sorted(costs), costs, sizes, done={"a_Latn": [(0, 2), (5, 7)]}, num_processes=1)
    assert [(u.lang, u.batch_start, u.batch_stop) for u in units] == [
        ("a_Latn", 2, 5), ("a_Latn", 7, 10), ("b_Latn", 0, 4)]
    capped = plan_units(sorted(costs), costs, sizes, num_processes=1, unit_tokens=100)
    check_cover(capped, costs)
    assert max(u.cost for u in capped) <= 100 and len([u for u in capped if u.lang == "a_Latn"]) >= 3
    by_sent = plan_units(sorted(costs), costs, sizes, num_processes=1, unit_sentences=6)
    assert max(u.n_sentences for u in by_sent) <= 6
    assert assign(units, 3) == assign(units, 3)  # deterministic


def test_split_units_are_the_single_run_batches():
    """A unit is a batch range: the batches a split language's units run are exactly the
    ones a single process runs, so sharding cannot change a number."""
    rng = np.random.default_rng(2)
    lengths = rng.integers(2, 40, 500)
    batches = make_batches(np.arange(500), lengths, 200)
    costs = {"x_Latn": [b.cost for b in batches], "y_Latn": [10]}
    sizes = {"x_Latn": [len(b) for b in batches], "y_Latn": [1]}
    units = plan_units(["x_Latn", "y_Latn"], costs, sizes, num_processes=4)
    xs = sorted((u for u in units if u.lang == "x_Latn"), key=lambda u: u.batch_start)
    assert len(xs) >= 4
    got = np.concatenate([np.concatenate([b.sentences for b in batches[u.batch_start:u.batch_stop]]) for u in xs])
    np.testing.assert_array_equal(got, np.concatenate([b.sentences for b in batches]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(n: int) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port())]


LANGS = ("deu_Latn", "eng_Latn", "fra_Latn")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert):
    tmp = tmp_path_factory.mktemp("shard")
    # eng_Latn 8x longer: more than a fair share of 2 processes, so it is split
    corpus_dir = write_plain(tmp / "corpus", corpus_rows(LANGS, n=20, seed=7, long={"eng_Latn": 8}))
    ref = tmp / "ref.h5"
    extract(read_corpus(corpus_dir, "plain"), ref, str(tiny_bert), device="cpu", token_budget=64, progress=False)
    return corpus_dir, ref


def test_two_processes_give_the_single_process_store(tmp_path, setup, tiny_bert):
    corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    r = babelmap(["-v", *extract_args(corpus_dir, tiny_bert, out, "--keep-parts")], tmp_path,
                 launcher=launcher(2), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    per_proc = dict(re.findall(r"process (\d+) wrote (\d+) parts", r.stderr))
    assert set(per_proc) == {"0", "1"} and all(int(v) > 0 for v in per_proc.values())
    eng = [p for p in parts_dir(out).iterdir() if p.name.startswith("eng_Latn.")]
    assert len(eng) == 2  # the heavy language was split by batch range
    assert r.stdout.count("store ") == 1  # one summary, from the main process
    assert_same_store(ref, out)


@pytest.mark.slow
def test_resume_with_another_number_of_processes(tmp_path, setup, tiny_bert):
    """Killed as one process after 2 parts, finished by 2 processes: the same store."""
    corpus_dir, ref = setup
    out = tmp_path / "s.h5"
    args = ["-v", *extract_args(corpus_dir, tiny_bert, out)]
    r = babelmap(args, tmp_path, BABELMAP_TEST_KILL_AFTER_PARTS="2")
    assert r.returncode == -signal.SIGKILL
    r = babelmap(args, tmp_path, launcher=launcher(2), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming: 2 finished parts kept" in r.stderr
    assert_same_store(ref, out)


@pytest.mark.slow
def test_refusal_stops_every_process_cleanly(tmp_path, setup, tiny_bert, tmp_path_factory):
    """Parts of another model under 2 processes: every rank stops with the refusal, exit 1."""
    from tiny import make_tiny_model
    corpus_dir, _ = setup
    other = make_tiny_model(tmp_path_factory.mktemp("other"), "bert", seed=1)
    out = tmp_path / "s.h5"
    extract(read_corpus(corpus_dir, "plain"), out, str(tiny_bert), device="cpu", token_budget=64,
            progress=False, keep_parts=True)
    out.unlink()
    r = babelmap(extract_args(corpus_dir, other, out), tmp_path, launcher=launcher(2), timeout=300)
    assert r.returncode != 0
    assert r.stderr.count("was written by a different run") == 2 and "model_fingerprint: there" in r.stderr
    assert len(list(parts_dir(out).iterdir())) == 3 and not out.exists()
