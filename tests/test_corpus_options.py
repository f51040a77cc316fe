"""`select_corpus`: the one keyword selection that the command line (`corpus_from_args`), the
pipeline (`babelmap run`) and `adjust` apply, checked on a real plain corpus on disk against a
selection done by hand over its files."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from babelmap.corpus_options import add_corpus_arguments, corpus_from_args, open_corpus, select_corpus
from babelmap.engine.errors import CorpusError
from extract_util import corpus_rows, write_plain

LANGS = ("deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl")


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[Path, dict]:
    rows = corpus_rows(LANGS, n=30, seed=11, missing=0.35)
    return write_plain(tmp_path_factory.mktemp("plain"), rows), rows


def _by_hand(rows: dict, langs, min_languages: int | None, first: int | None, start: int = 0,
             stop: int | None = None) -> list[str]:
    """Sentence ids (plain: line numbers from 1) of lines start:stop (present in at least
    `min_languages` of `langs` when given), then the first `first` of them."""
    n = len(next(iter(rows.values())))
    ids = [j for j in range(n)[start:stop] if sum(rows[l][j] is not None for l in langs) >= (min_languages or 0)]
    return [str(j + 1) for j in ids[:first]]


def _cli(args: list[str], **over):
    p = argparse.ArgumentParser()
    add_corpus_arguments(p, **over)
    return corpus_from_args(p.parse_args(args))


def test_keywords_match_the_command_line_and_a_selection_by_hand(plain):
    folder, rows = plain
    raw = open_corpus(folder, "plain", check_alignment=False)
    assert raw.sentence_ids == [str(j + 1) for j in range(30)]
    got = select_corpus(raw, languages=["deu_Latn", "fra_*"], min_languages=2, max_sentences=7)
    assert got.languages == ["deu_Latn", "fra_Latn"]
    assert got.sentence_ids == _by_hand(rows, ["deu_Latn", "fra_Latn"], 2, 7)
    assert got.text("fra_Latn") == [rows["fra_Latn"][int(s) - 1] for s in got.sentence_ids]
    cli = _cli(["--corpus", str(folder), "--format", "plain", "--langs", "deu_Latn", "fra_*",
                "--min-languages", "2", "--max-sentences", "7"])
    assert cli.fingerprint() == got.fingerprint() and cli.sentence_ids == got.sentence_ids
    # a random sample: the same draw by keyword and by option
    s = select_corpus(raw, sample=9, seed=4)
    cli = _cli(["--corpus", str(folder), "--format", "plain", "--sample", "9", "--seed", "4"])
    assert s.sentence_ids == cli.sentence_ids and len(s.sentence_ids) == 9 and s.selection == "sample=9 seed=4"
    assert select_corpus(raw, sample=9, seed=5).sentence_ids != s.sentence_ids
    # a sentence range, then the first N of it
    r = select_corpus(raw, languages=["eng_Latn"], sentences="10:20", max_sentences=4)
    assert r.sentence_ids == _by_hand(rows, ["eng_Latn"], None, 4, 10, 20)
    cli = _cli(["--corpus", str(folder), "--format", "plain", "--langs", "eng_Latn", "--sentences", "10:20",
                "--max-sentences", "4"], sentence_range=True)
    assert cli.sentence_ids == r.sentence_ids
    assert select_corpus(raw) is raw                     # nothing asked: the corpus as read
    with pytest.raises(CorpusError, match="--stratify needs --sample N"):
        select_corpus(raw, stratify="document")
    with pytest.raises(CorpusError, match="--split is for --format flores or fleurs, not plain"):
        open_corpus(folder, "plain", split="dev")


def test_pipeline_reads_its_corpus_through_select_corpus(plain, tmp_path):
    from babelmap.pipeline.config import RunConfig
    from babelmap.pipeline.runner import _read_corpus
    folder, rows = plain
    cfg = RunConfig(out=str(tmp_path / "r"), corpus=str(folder), format="plain", langs=["eng_Latn", "rus_Cyrl"],
                    min_languages=2, max_sentences=5)
    c = _read_corpus(cfg)
    assert c.languages == ["eng_Latn", "rus_Cyrl"]
    assert c.sentence_ids == _by_hand(rows, ["eng_Latn", "rus_Cyrl"], 2, 5)


def test_adjust_reads_once_and_selects_training_and_held_out_sentences(plain, tmp_path, monkeypatch):
    """adjust: training sentences = --sentences then --max-sentences; held-out ones =
    --eval-sentences (no --max-sentences), both for --src/--tgt only."""
    import babelmap.training.adjust as training
    from babelmap.cli import main
    folder, rows = plain
    reads, seen = [], {}
    from babelmap.engine import corpora
    real = corpora.read_corpus
    monkeypatch.setattr(corpora, "read_corpus", lambda *a, **k: reads.append(a) or real(*a, **k))

    class Stop(Exception):
        pass

    def fake_adjust(model, corpus, src, tgt, out, eval_corpus=None, **_):
        seen.update(corpus=corpus, eval=eval_corpus)
        raise Stop
    monkeypatch.setattr(training, "adjust", fake_adjust)
    with pytest.raises(Stop):
        main(["adjust", "--corpus", str(folder), "--format", "plain", "--src", "eng_Latn", "--tgt", "deu_Latn",
              "--sentences", "0:20", "--max-sentences", "6", "--eval-sentences", "20:30", "--out", str(tmp_path / "a")])
    assert len(reads) == 1
    pair = ["deu_Latn", "eng_Latn"]
    assert seen["corpus"].languages == pair and seen["eval"].languages == pair
    assert seen["corpus"].sentence_ids == _by_hand(rows, pair, None, 6, 0, 20)
    assert seen["eval"].sentence_ids == _by_hand(rows, pair, None, None, 20, 30)
