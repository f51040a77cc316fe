"""`--threads`: one owner (babelmap.threads) for `words` and `adjust`; a real run sets torch's
thread count, a number below 1 is one clear line before any work."""
from __future__ import annotations

import pytest
import torch

from babelmap.cli import main
from babelmap.engine.errors import BabelmapError
from babelmap.threads import set_threads
from extract_util import corpus_rows, write_plain


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_set_threads(restore_threads):
    set_threads(2)
    assert torch.get_num_threads() == 2
    set_threads(None)
    assert torch.get_num_threads() == 2
    for bad in (0, -1):
        with pytest.raises(BabelmapError, match=f"--threads {bad}: give a positive number"):
            set_threads(bad)
    assert torch.get_num_threads() == 2


def test_words_run_on_the_threads_asked(tmp_path, tiny_bert, restore_threads, capsys):
    corpus = write_plain(tmp_path / "c", corpus_rows(("deu_Latn", "eng_Latn"), n=4, seed=1, missing=0))
    args = ["words", "--corpus", str(corpus), "--format", "plain", "--langs", "deu_Latn", "eng_Latn",
            "--model", str(tiny_bert), "--device", "cpu", "--no-progress", "--out", str(tmp_path / "w.h5")]
    torch.set_num_threads(1)
    assert main(args + ["--threads", "2"]) == 0 and torch.get_num_threads() == 2
    assert "word store" in capsys.readouterr().out


@pytest.mark.parametrize("command", [
    ["words", "--format", "plain", "--langs", "eng_Latn"],
    ["adjust", "--format", "plain", "--src", "eng_Latn", "--tgt", "deu_Latn"]])
@pytest.mark.parametrize("n", ["0", "-1"])
def test_threads_below_one_is_one_line_before_any_work(tmp_path, command, n, capsys):
    args = command + ["--corpus", str(tmp_path / "absent"), "--out", str(tmp_path / "o"), "--threads", n]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--threads {n}: give a positive number" in err[0]
    assert not (tmp_path / "o").exists()
