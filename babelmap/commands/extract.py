"""`babelmap extract`: every layer's pooled sentence embeddings of a corpus into a store."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

NAME = "extract"
HELP = "embed every sentence of every language at every layer into an HDF5 store"
EXAMPLE = """babelmap extract --corpus ../shared/data/flores200/dev --format flores --langs 'eng_*' 'deu_*' \\
    --max-sentences 100 --out flores.h5
accelerate launch --multi_gpu --num_processes 8 -m babelmap extract --corpus bible/ --format ebible --out bible.h5
torchrun --nproc_per_node 2 -m babelmap extract --device cpu ...   # several CPU processes (gloo)
(interrupted? run the same command again: finished parts are kept; -v logs where the time went)"""

FORMATS = ("flores", "ebible", "udhr", "pbc", "plain", "cldr")
DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", help="corpus folder or file (not needed for --format cldr)")
    p.add_argument("--format", required=True, choices=FORMATS, help="corpus format")
    p.add_argument("--model", default=None, help="model id or checkpoint folder (default: the embedded "
                   "multilingual-e5-small-q4)")
    p.add_argument("--langs", nargs="+", metavar="GLOB", help="languages to keep: ids or globs ('deu_*')")
    p.add_argument("--max-sentences", type=int, metavar="N", help="only the first N sentences")
    p.add_argument("--min-languages", type=int, metavar="K", help="only sentences present in at least K languages")
    p.add_argument("--pooling", default=None, help="pooling (default: the model family's)")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="forward precision (default fp32)")
    p.add_argument("--store-dtype", default="float16", choices=("float16", "float32"),
                   help="dtype of the stored embeddings (default float16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--max-length", type=int, default=None, help="truncate sentences to N tokens")
    p.add_argument("--token-budget", type=int, default=None, metavar="N",
                   help="padded tokens per batch (default 4096 on CPU, 65536 on GPU)")
    p.add_argument("--prefix", default=None, help="text put before every sentence (default: the model's)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad input (logged, recorded in the store) "
                   "instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="discard an existing store and its parts")
    p.add_argument("--keep-parts", action="store_true", help="keep <out>.parts/ after the join")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="the store to write (HDF5)")


def load_corpus(args: argparse.Namespace):
    """The corpus of `--corpus/--format`, with the `--langs/--max-sentences/--min-languages` selection."""
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.errors import CorpusError
    if args.corpus is None and args.format != "cldr":
        raise CorpusError(f"--corpus is required for --format {args.format}")
    corpus = read_corpus(args.corpus, args.format, skip_bad=args.skip_bad)
    if args.langs or args.max_sentences is not None or args.min_languages is not None:
        corpus = corpus.select(pattern=args.langs, first=args.max_sentences, min_languages=args.min_languages)
    return corpus


def summary(path: Path, seconds: float | None = None) -> str:
    """A few lines describing a store."""
    from babelmap.engine.store import open_store
    with open_store(path) as st:
        L, K, S, H = st.shape
        mask = st.mask
        ntok = st.n_tokens
        a = st.attrs
    size = os.path.getsize(path) / 2**20
    lines = [f"store {path}: {L} languages x {S} sentences x {K} hidden states x {H} dims, "
             f"{a.get('dtype')}, {size:.1f} MiB",
             f"  model {a.get('model')} (pooling {a.get('pooling')}, {a.get('compute_dtype', '?')}), "
             f"corpus {a.get('corpus_name')}",
             f"  {int(mask.sum())} sentences present ({100 * mask.mean():.1f}% of the grid), "
             f"{int(ntok.sum())} tokens"]
    if seconds is not None:
        lines[-1] += f", {seconds:.1f} s"
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from babelmap.engine.extract import extract
    t0 = time.perf_counter()
    corpus = load_corpus(args)
    out = extract(corpus, args.out, args.model, pooling=args.pooling, dtype=DTYPES[args.dtype],
                  store_dtype=args.store_dtype, device=args.device, max_length=args.max_length,
                  token_budget=args.token_budget, prefix=args.prefix, progress=not args.no_progress,
                  skip_bad=args.skip_bad, overwrite=args.overwrite, keep_parts=args.keep_parts)
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(Path(out), time.perf_counter() - t0))
    return 0
