"""The corpus options every command shares (`--corpus/--format/--langs/--max-sentences/...`).

One owner for how a command line becomes a `ParallelCorpus`, so `extract`, `check`, `words`,
`adjust`, `lex` and `run` read and select a corpus the same way.
"""
from __future__ import annotations

import argparse

from babelmap.engine.corpora import FORMATS as _FORMATS

FORMATS = tuple(_FORMATS)


def add_corpus_arguments(p: argparse.ArgumentParser, *, langs: bool = True, langs_required: bool = False,
                         format_required: bool = True, sentence_range: bool = False) -> None:
    """Add the shared corpus options to `p`."""
    p.add_argument("--corpus", help="corpus folder or file (not needed for --format cldr)")
    p.add_argument("--format", required=format_required, choices=FORMATS, help="corpus format")
    if langs:
        p.add_argument("--langs", nargs="+", metavar="GLOB", required=langs_required,
                       help="languages to keep: ids or globs ('deu_*')")
    p.add_argument("--max-sentences", type=int, metavar="N", help="only the first N sentences")
    p.add_argument("--min-languages", type=int, metavar="K",
                   help="only sentences present in at least K languages")
    if sentence_range:
        p.add_argument("--sentences", metavar="A:B", help="only sentences A to B-1 (0-based; e.g. 300:500 "
                       "for held-out ones after training on the first 300)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad input (logged, recorded in the store) "
                   "instead of stopping")


def sentence_slice(corpus, spec: str | None):
    """The corpus restricted to sentences A:B (a Python slice of the sentence axis)."""
    if not spec:
        return corpus
    from babelmap.engine.errors import CorpusError
    try:
        a, b = (int(x) if x else None for x in spec.split(":"))
    except ValueError:
        raise CorpusError(f"--sentences wants A:B, got {spec!r}") from None
    return corpus.select(sentence_ids=corpus.sentence_ids[slice(a, b)])


def corpus_from_args(args: argparse.Namespace, langs=None, sentences: str | None = None):
    """The corpus of `--corpus/--format` with the selection the options ask for. `langs`
    (ids or globs) overrides `--langs`; `sentences` overrides `--sentences`."""
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.errors import CorpusError
    if args.corpus is None and args.format != "cldr":
        raise CorpusError(f"--corpus is required for --format {args.format}")
    corpus = read_corpus(args.corpus, args.format, skip_bad=getattr(args, "skip_bad", False))
    pattern = list(langs) if langs else getattr(args, "langs", None)
    spec = sentences if sentences is not None else getattr(args, "sentences", None)
    if spec:
        corpus = corpus.select(pattern=pattern)
        corpus = sentence_slice(corpus, spec)
        pattern = None
    first, min_languages = getattr(args, "max_sentences", None), getattr(args, "min_languages", None)
    if pattern or first is not None or min_languages is not None:
        corpus = corpus.select(pattern=pattern, first=first, min_languages=min_languages)
    return corpus
