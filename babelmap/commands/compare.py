"""`babelmap compare`: how much each language's representation changed between two stores
(a base model and a fine-tuned copy), per layer: linear, debiased and optionally RBF CKA and the
mean matched cosine (see babelmap.kernels.cka)."""
from __future__ import annotations

import argparse
import time

NAME = "compare"
HELP = "per-language, per-layer representation change (CKA) between two stores of one corpus"
EXAMPLE = """babelmap extract --corpus flores200/dev --format flores --model xlmr-base --pooling cls --out base.h5
babelmap extract --corpus flores200/dev --format flores --model tuned/ --pooling cls --out tuned.h5
babelmap compare base.h5 tuned.h5 --out change.h5 [--rbf] [--device cuda] [--tsv change.tsv]"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", help="store of the base model")
    p.add_argument("tuned", help="store of the fine-tuned model (same corpus, languages, architecture)")
    p.add_argument("--out", required=True, help="result HDF5 (/cka_linear, /cka_debiased, /cosine [layers, languages])")
    p.add_argument("--rbf", action="store_true", help="also RBF CKA (n x n Gram per language and layer: "
                   "O(n^2 H) time, O(n^2) memory)")
    p.add_argument("--rbf-sigma", type=float, default=None, help="RBF bandwidth (default: median heuristic)")
    p.add_argument("--rbf-threshold", type=float, default=1.0,
                   help="median-heuristic multiplier: sigma^2 = t^2 * median squared distance (default 1)")
    p.add_argument("--layers", type=int, nargs="+", help="hidden states to compare (default all; 0 = embeddings)")
    p.add_argument("--langs", nargs="+", help="languages to compare (default all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--precision", default="float32", choices=("float32", "float64"),
                   help="accumulation dtype (default float32; the final combination is float64)")
    p.add_argument("--memory-gb", type=float, default=1.0, help="memory for accumulators and blocks (default 1)")
    p.add_argument("--tsv", help="also write the long table (language, layer, measures, change, count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from babelmap.engine.store import open_store
    from babelmap.kernels.cka import compare_stores

    t0 = time.perf_counter()
    with open_store(args.base) as base, open_store(args.tuned) as tuned:
        res = compare_stores(base, tuned, layers=args.layers, languages=args.langs, rbf=args.rbf,
                             rbf_sigma=args.rbf_sigma, rbf_threshold=args.rbf_threshold, device=args.device,
                             precision=args.precision, memory_gb=args.memory_gb, progress=not args.no_progress)
    out = res.save(args.out)
    if args.tsv:
        res.to_pandas().to_csv(args.tsv, sep="\t", index=False)
    print(f"{len(res.languages)} languages x {len(res.layers)} layers in {time.perf_counter() - t0:.1f} s -> {out}")
    print("layer  change(linear)  change(debiased)" + ("  change(rbf)" if res.cka_rbf is not None else "")
          + "  cosine   (means over languages)")
    with np.errstate(all="ignore"):
        for r, k in enumerate(res.layers):
            line = (f"{k:>5}  {np.nanmean(1 - res.cka_linear[r]):>14.4f}  {np.nanmean(1 - res.cka_debiased[r]):>16.4f}")
            if res.cka_rbf is not None:
                line += f"  {np.nanmean(1 - res.cka_rbf[r]):>11.4f}"
            print(line + f"  {np.nanmean(res.cosine[r]):>7.4f}")
    return 0
