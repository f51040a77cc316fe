"""`babelmap words`: every word's embedding at every layer into a word store (HDF5)."""
from __future__ import annotations

import argparse
import time

NAME = "words"
HELP = "embed every word of every sentence at every layer into a word store (for word alignment)"
EXAMPLE = """babelmap words --corpus ../shared/data/flores200/dev --format flores \\
    --langs eng_Latn deu_Latn --max-sentences 300 --out words.h5
babelmap words ... --model adjusted-model/ --out words-adjusted.h5   (a checkpoint from `babelmap adjust`)
(interrupted? run the same command again: finished languages are kept)"""

FORMATS = ("flores", "ebible", "udhr", "pbc", "plain", "cldr")


def add_corpus_arguments(p: argparse.ArgumentParser) -> None:
    """--corpus/--format/--langs/--max-sentences, shared with `babelmap adjust`."""
    p.add_argument("--corpus", help="corpus folder or file (not needed for --format cldr)")
    p.add_argument("--format", required=True, choices=FORMATS, help="corpus format")
    p.add_argument("--max-sentences", type=int, metavar="N", help="only the first N sentences")
    p.add_argument("--sentences", metavar="A:B", help="only sentences A to B-1 (0-based; e.g. 300:500 "
                   "for held-out ones after training on the first 300)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad corpus input instead of stopping")


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


def load_corpus(args: argparse.Namespace, langs, sentences: str | None = None):
    """The corpus of --corpus/--format restricted to `langs` (ids or globs), --sentences (or
    `sentences`) and --max-sentences."""
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.errors import CorpusError
    if args.corpus is None and args.format != "cldr":
        raise CorpusError(f"--corpus is required for --format {args.format}")
    corpus = read_corpus(args.corpus, args.format, skip_bad=args.skip_bad)
    corpus = corpus.select(pattern=list(langs) if langs else None)
    corpus = sentence_slice(corpus, sentences if sentences is not None else getattr(args, "sentences", None))
    return corpus.select(first=args.max_sentences)


def set_threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_corpus_arguments(p)
    p.add_argument("--langs", nargs="+", metavar="GLOB", required=True, help="languages: ids or globs")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the embedded multilingual-e5-small-q4)")
    p.add_argument("--pooling", default="mean", choices=("mean", "first", "last"),
                   help="sub-word pooling into words (default mean)")
    p.add_argument("--segmentation", default="unicode", choices=("unicode", "whitespace"),
                   help="unicode: punctuation split off, scripts without spaces per character; "
                        "whitespace: for pre-tokenised text (default unicode)")
    p.add_argument("--store-dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--batch-size", type=int, default=16, help="sentences per forward pass (default 16)")
    p.add_argument("--max-length", type=int, default=None, help="truncate sentences to N tokens")
    p.add_argument("--prefix", default=None, help="text before every sentence (default: the model's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--keep-parts", action="store_true", help="keep <out>.parts/ after the join")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="the word store to write (HDF5)")


def run(args: argparse.Namespace) -> int:
    from babelmap.engine.words import extract_words, open_words
    set_threads(args.threads)
    t0 = time.perf_counter()
    corpus = load_corpus(args, args.langs)
    out = extract_words(corpus, args.out, args.model, pooling=args.pooling, segmentation=args.segmentation,
                        store_dtype=args.store_dtype, device=args.device, max_length=args.max_length,
                        prefix=args.prefix, batch_size=args.batch_size, progress=not args.no_progress,
                        keep_parts=args.keep_parts)
    with open_words(out) as ws:
        n = {l: int(ws.offsets(l)[-1]) for l in ws.languages}
        print(f"word store {out}: {len(ws.languages)} languages x {len(ws.sentence_ids)} sentences, "
              f"{ws.num_hidden_states} hidden states x {ws.hidden_size} dims, model {ws.attrs.get('model')}, "
              f"{time.perf_counter() - t0:.1f} s")
        print("  words: " + ", ".join(f"{l} {c}" for l, c in n.items()))
    return 0
