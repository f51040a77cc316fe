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

def add_arguments(p: argparse.ArgumentParser) -> None:
    from babelmap.corpus_options import add_corpus_arguments
    from babelmap.threads import add_threads_argument
    add_corpus_arguments(p, langs_required=True, sentence_range=True)
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
    add_threads_argument(p)
    p.add_argument("--keep-parts", action="store_true", help="keep <out>.parts/ after the join")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="the word store to write (HDF5)")


def run(args: argparse.Namespace) -> int:
    from babelmap.corpus_options import corpus_from_args
    from babelmap.engine.words import extract_words, open_words
    from babelmap.threads import set_threads
    set_threads(args.threads)
    t0 = time.perf_counter()
    corpus = corpus_from_args(args)
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
