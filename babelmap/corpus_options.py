"""The corpus options every command shares (`--corpus/--format/--langs/--max-sentences/...`).

One owner for how a command line becomes a `ParallelCorpus`, so `extract`, `check`, `words`,
`adjust`, `lex` and `run` read and select a corpus the same way.
"""
from __future__ import annotations

import argparse

from babelmap.engine.corpora import FORMATS as _FORMATS

FORMATS = tuple(_FORMATS)


def add_corpus_arguments(p: argparse.ArgumentParser, *, langs: bool = True, langs_required: bool = False,
                         format_required: bool = True, sentence_range: bool = False,
                         sample: bool | None = None) -> None:
    """Add the shared corpus options to `p`. `sample` (default: unless `sentence_range`) adds
    `--sample N --seed S --stratify document`."""
    p.add_argument("--corpus", help="corpus folder or file (not needed for --format cldr)")
    p.add_argument("--format", required=format_required, choices=FORMATS, help="corpus format")
    if langs:
        p.add_argument("--langs", nargs="+", metavar="GLOB", required=langs_required,
                       help="languages to keep: ids or globs ('deu_*')")
    p.add_argument("--split", metavar="SPLIT", help="split to read: FLORES dev (default), devtest or "
                   "dev+devtest; FLEURS train, dev (default) or test; recorded in the store")
    p.add_argument("--max-sentences", type=int, metavar="N", help="only the first N sentences (after "
                   "--min-languages)")
    p.add_argument("--min-languages", type=int, metavar="K",
                   help="only sentences present in at least K languages (applied first)")
    if sample if sample is not None else not sentence_range:
        p.add_argument("--sample", type=int, metavar="N", help="a random sample of N sentences instead of the "
                       "first N (recorded in the store)")
        p.add_argument("--seed", type=int, metavar="S", help="seed of --sample (default 0; recorded)")
        p.add_argument("--stratify", choices=["document"], help="with --sample: draw whole documents (FLORES "
                       "articles, Bible chapters, UDHR articles) until N sentences")
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


def open_corpus(path, fmt: str, *, split: str | None = None, skip_bad: bool = False,
                check_alignment: bool = True, languages=None):
    """Read the corpus at `path` in format `fmt` (`split` only for flores/fleurs; `languages`, ids
    or globs, lets a plain corpus read only the files named), with no sentence selection."""
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.errors import CorpusError
    if path is None and fmt != "cldr":
        raise CorpusError(f"--corpus is required for --format {fmt}")
    opts = {}
    if split is not None:
        if fmt not in ("flores", "fleurs"):  # fleurs: train, dev (default) or test
            raise CorpusError(f"--split is for --format flores or fleurs, not {fmt}")
        opts["split"] = split
    if fmt == "plain" and languages:
        opts["langs"] = list(languages)    # a file named by a common word is read only when named here
    return read_corpus(path, fmt, skip_bad=skip_bad, check_alignment=check_alignment, **opts)


def select_corpus(corpus, *, languages=None, sentences: str | None = None, max_sentences: int | None = None,
                  min_languages: int | None = None, sample: int | None = None, seed: int | None = 0,
                  stratify: str | None = None):
    """`corpus` restricted as the corpus options ask: `languages` (ids or globs), `sentences`
    ("A:B", applied after the languages), then sentences present in at least `min_languages`
    languages, then the first `max_sentences` or a random `sample` of N (`seed`; `stratify=
    "document"`: whole documents). The one selection every command and the pipeline apply."""
    from babelmap.engine.errors import CorpusError
    pattern = list(languages) if languages else None
    if sentences:
        corpus = sentence_slice(corpus.select(pattern=pattern), sentences)
        pattern = None
    pick = {}
    if sample is not None:
        pick = {"sample": sample, "seed": 0 if seed is None else seed, "stratify": stratify}
    elif stratify:
        raise CorpusError("--stratify needs --sample N")
    if pattern or max_sentences is not None or min_languages is not None or pick:
        corpus = corpus.select(pattern=pattern, first=max_sentences, min_languages=min_languages, **pick)
    return corpus


def selection_from_args(args: argparse.Namespace, langs=None, sentences: str | None = None) -> dict:
    """The keyword arguments of `select_corpus` that the parsed options ask for (`langs` and
    `sentences` override `--langs` and `--sentences`)."""
    return {"languages": list(langs) if langs else getattr(args, "langs", None),
            "sentences": sentences if sentences is not None else getattr(args, "sentences", None),
            "max_sentences": getattr(args, "max_sentences", None),
            "min_languages": getattr(args, "min_languages", None),
            "sample": getattr(args, "sample", None), "seed": getattr(args, "seed", None),
            "stratify": getattr(args, "stratify", None)}


def read_args_corpus(args: argparse.Namespace, langs=None, check_alignment: bool = True):
    """The corpus of `--corpus/--format/--split/--skip-bad`, before any sentence selection."""
    pattern = list(langs) if langs else getattr(args, "langs", None)
    return open_corpus(args.corpus, args.format, split=getattr(args, "split", None),
                       skip_bad=getattr(args, "skip_bad", False), check_alignment=check_alignment,
                       languages=pattern)


def corpus_from_args(args: argparse.Namespace, langs=None, sentences: str | None = None,
                     check_alignment: bool = True):
    """The corpus of `--corpus/--format` with the selection the options ask for. `langs`
    (ids or globs) overrides `--langs`; `sentences` overrides `--sentences`; `check_alignment`
    lets the reader warn of same-count shifts."""
    corpus = read_args_corpus(args, langs, check_alignment)
    return select_corpus(corpus, **selection_from_args(args, langs, sentences))
