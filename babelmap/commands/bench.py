"""`babelmap bench`: throughput per device against the reference loop, measured in one run."""
from __future__ import annotations

import json
from pathlib import Path

NAME = "bench"
HELP = "measure extraction throughput (sentences/s, tokens/s, FLOPs fraction) against the reference loop"
EXAMPLE = ("babelmap bench --corpus ../shared/data/flores200 --format flores --langs eng_Latn deu_Latn "
           "--max-sentences 200 --json bench.json")


def add_arguments(p) -> None:
    p.add_argument("--corpus", help="corpus path (omit for the embedded CLDR corpus)")
    p.add_argument("--format", default="flores", help="corpus format (flores, ebible, udhr, pbc, plain, cldr)")
    p.add_argument("--model", default=None, help="model id or checkpoint folder (default: the embedded model)")
    p.add_argument("--langs", nargs="*", help="language ids or globs")
    p.add_argument("--max-sentences", type=int, default=200)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto")
    p.add_argument("--token-budget", type=int, default=None)
    p.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    p.add_argument("--reference-sentences", type=int, default=None,
                   help="time the reference on the first N sentences of each language only")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")


def run(args) -> int:
    from babelmap.corpus_options import corpus_from_args
    from babelmap.engine.throughput import format_table, run_bench

    if not args.corpus:
        args.format = "cldr"
    corpus = corpus_from_args(args)
    result = run_bench(corpus, args.model, dtype=args.dtype, device=args.device, token_budget=args.token_budget,
                       reference=not args.no_reference, reference_sentences=args.reference_sentences)
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
