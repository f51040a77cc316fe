"""`babelmap extract`: every layer's pooled sentence embeddings of a corpus into a store."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from babelmap.corpus_options import add_corpus_arguments, corpus_from_args

NAME = "extract"
HELP = "embed every sentence of every language at every layer into an HDF5 store"
EXAMPLE = """babelmap extract --corpus ../shared/data/flores200/dev --format flores --langs 'eng_*' 'deu_*' \\
    --max-sentences 100 --out flores.h5
one node, N GPUs (one process per GPU; bf16 by default on CUDA):
  torchrun --nproc_per_node N -m babelmap extract --corpus bible/ --format ebible --out bible.h5
  accelerate launch --multi_gpu --num_processes N -m babelmap extract --corpus bible/ --format ebible --out bible.h5
one machine, N CPU processes (gloo; accelerate needs --multi_gpu here too, else it starts ONE process):
  torchrun --nproc_per_node N -m babelmap extract --device cpu ...
  accelerate launch --multi_gpu --num_processes N -m babelmap extract --device cpu ...
M nodes x G GPUs, --out on a filesystem every node sees (run on each node; node rank 0..M-1):
  torchrun --nnodes M --nproc_per_node G --node_rank R --master_addr HOST0 --master_port 29500 \\
      -m babelmap extract --corpus bible/ --format ebible --out /shared/bible.h5
  accelerate launch --multi_gpu --num_machines M --num_processes M*G --machine_rank R \\
      --main_process_ip HOST0 --main_process_port 29500 -m babelmap extract ... --out /shared/bible.h5
(a process that dies stops the others; interrupted? run the same command again: finished parts
are kept; -v logs where the time went; --layers 0,6,12 keeps only those hidden states)"""

DTYPES = {"auto": "auto", "fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_corpus_arguments(p)
    p.add_argument("--model", default=None, help="model id or checkpoint folder (default: the embedded "
                   "multilingual-e5-small-q4)")
    p.add_argument("--revision", default=None, help="hub model revision: branch, tag or commit (default: main); "
                   "the store records the resolved commit")
    p.add_argument("--pooling", default=None, help="pooling (default: the model family's)")
    p.add_argument("--dtype", default="auto", choices=sorted(DTYPES),
                   help="forward precision (default auto: bf16 on CUDA, fp32 on CPU; recorded in the store)")
    p.add_argument("--store-dtype", default="float16", choices=("float16", "float32"),
                   help="dtype of the stored embeddings (default float16)")
    p.add_argument("--layers", default=None, metavar="K,K,...",
                   help="keep only these hidden states (0 = embedding output; e.g. 0,6,12); default all")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--max-length", type=int, default=None, help="truncate sentences to N tokens")
    p.add_argument("--token-budget", type=int, default=None, metavar="N",
                   help="padded tokens per batch (default 4096 on CPU, 65536 on GPU)")
    p.add_argument("--tokenizer-threads", type=int, default=None, metavar="N",
                   help="threads tokenizing ahead of the model (default: 1 on CPU, enough cores on GPU)")
    p.add_argument("--unit-sentences", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--prefix", default=None, help="text put before every sentence (default: the model's)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing store and its parts")
    p.add_argument("--keep-parts", action="store_true", help="(kept for old scripts: the parts now become the "
                   "store's shards in <out>.shards/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="the store to write (HDF5)")


def run(args: argparse.Namespace) -> int:
    from babelmap.engine.extract import check_out, extract
    from babelmap.engine.store import describe_store
    t0 = time.perf_counter()
    check_out(Path(args.out), args.overwrite)
    out = extract(corpus_from_args(args), args.out, args.model, pooling=args.pooling, dtype=DTYPES[args.dtype],
                  store_dtype=args.store_dtype, device=args.device, max_length=args.max_length,
                  token_budget=args.token_budget, prefix=args.prefix, progress=not args.no_progress,
                  skip_bad=args.skip_bad, overwrite=args.overwrite, keep_parts=args.keep_parts,
                  layers=args.layers, unit_sentences=args.unit_sentences,
                  tokenizer_threads=args.tokenizer_threads, release_texts=True, revision=args.revision)
    if int(os.environ.get("RANK", "0")) == 0:
        print(describe_store(Path(out), time.perf_counter() - t0))
    return 0
