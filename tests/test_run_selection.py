"""`babelmap run --sample/--seed/--stratify/--split` reach the pipeline's corpus (they used to
be parsed and silently ignored) and its reproduction line; checked on a real plain corpus
against the same selection made with `select_corpus` directly."""
from __future__ import annotations

from babelmap.cli import build_parser
from babelmap.commands.run import config_from_args
from babelmap.corpus_options import open_corpus, select_corpus
from babelmap.pipeline.config import command_line
from babelmap.pipeline.runner import _read_corpus
from extract_util import corpus_rows, write_plain

LANGS = ("deu_Latn", "eng_Latn", "fra_Latn")


def test_sample_and_seed_reach_the_pipeline_corpus(tmp_path):
    folder = write_plain(tmp_path / "plain", corpus_rows(LANGS, n=40, seed=3, missing=0.0))
    args = build_parser().parse_args(["run", "--corpus", str(folder), "--format", "plain", "--sample", "7",
                                      "--seed", "5", "--out", str(tmp_path / "out")])
    cfg = config_from_args(args)
    assert (cfg.sample, cfg.seed, cfg.stratify, cfg.split) == (7, 5, None, None)
    got = _read_corpus(cfg)
    want = select_corpus(open_corpus(str(folder), "plain"), sample=7, seed=5)
    assert got.sentence_ids == want.sentence_ids and len(got.sentence_ids) == 7
    other = select_corpus(open_corpus(str(folder), "plain"), sample=7, seed=6)
    assert other.sentence_ids != got.sentence_ids          # the seed matters, so the check can fail
    line = command_line(cfg)
    assert "--sample 7" in line and "--seed 5" in line and "--stratify" not in line


def test_seed_left_out_is_zero_and_not_printed(tmp_path):
    args = build_parser().parse_args(["run", "--sample", "3", "--out", str(tmp_path / "o")])
    cfg = config_from_args(args)
    assert cfg.seed == 0 and "--seed" not in command_line(cfg)
