"""`babelmap lex`: the LEX baseline (minus mean character Levenshtein distance) of a corpus."""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "lex"
HELP = "lexical similarity LEX: minus the mean character edit distance over shared sentences"
EXAMPLE = """babelmap lex --corpus ../shared/data/flores200 --format flores --out lex.tsv
babelmap lex --corpus flores200 --format flores --langs eng_Latn deu_Latn '*_Cyrl' --romanize --out lex.h5
(--langs also takes one comma-separated list: 'eng_Latn,deu_Latn,*_Cyrl')"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from babelmap.corpus_options import add_corpus_arguments
    add_corpus_arguments(p)
    p.add_argument("--romanize", action="store_true", help="romanise every text with uroman first")
    p.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the user cache")
    p.add_argument("--out", required=True, help="output: .tsv (reference square format) or .h5")


def run(args: argparse.Namespace) -> int:
    from babelmap.corpus_options import corpus_from_args
    from babelmap.engine.errors import BabelmapError, CorpusError
    from babelmap.kernels.lex import lex_matrix

    out = Path(args.out)
    if out.suffix.lower() not in (".tsv", ".h5", ".hdf5"):
        raise BabelmapError(f"--out {out}: use a .tsv or .h5 file name")
    langs = [x.strip() for a in (args.langs or []) for x in a.split(",") if x.strip()]
    corpus = corpus_from_args(args, langs=langs or None)
    if len(corpus) < 2:
        raise CorpusError(f"LEX needs at least two languages, the corpus has {len(corpus)}",
                          file=str(args.corpus))
    m = lex_matrix(corpus, romanize=args.romanize, workers=args.workers, cache=not args.no_cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".tsv":
        m.to_tsv(out)
    else:
        if out.exists():
            out.unlink()
        m.to_hdf5(out)
    print(f"LEX for {len(m)} languages over {len(corpus.sentence_ids)} sentences -> {out}")
    for lang in m.missing:
        print(f"  not covered: {lang}: {m.notes.get(lang, '')}")
    return 0
