"""`babelmap compare`: how much each language's representation changed between two stores
(a base model and a fine-tuned copy), per layer: linear, debiased and optionally RBF CKA and the
mean matched cosine (babelmap.kernels.cka); optionally, how that change correlates with the
linguistic distance from the fine-tuning source language and with transfer scores
(babelmap.analysis.change), with figures."""
from __future__ import annotations

import argparse
import time

NAME = "compare"
HELP = "per-language, per-layer representation change (CKA) between two stores; correlate it with distance/transfer"
EXAMPLE = """babelmap extract --corpus flores200 --format flores --model base/ --pooling cls --out base.h5
babelmap extract --corpus flores200 --format flores --model tuned/ --pooling cls --out tuned.h5
babelmap compare base.h5 tuned.h5 --out change.h5 [--rbf] [--device cuda] [--tsv change.tsv]
babelmap compare change.h5 --source eng_Latn --measure genetic geographic lex_flores.tsv \\
    --transfer udpos-ft-10000.csv --figures figs/ --correlations corr.tsv"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="STORE",
                   help="two stores (base, tuned) to compare, or one result of an earlier compare")
    p.add_argument("--out", help="result HDF5 (/cka_linear, /cka_debiased, /cosine [layers, languages]); "
                   "needed when comparing stores")
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
    g = p.add_argument_group("correlation with distance and transfer (needs --source)")
    g.add_argument("--source", help="the language the model was fine-tuned on (an id in the stores)")
    g.add_argument("--measure", nargs="+", default=[], metavar="M",
                   help="measures of the registry (URIEL kinds, 'glottolog' with --glottolog, ...; see "
                   "babelmap.analysis.linguistic.MEASURES), or matrix files (.tsv/.h5 similarity; name = file stem)")
    g.add_argument("--glottolog", help="Glottolog folder for the glottolog measure")
    g.add_argument("--transfer", help="CSV/TSV with source,target,score (or lang_train,lang_pred,score)")
    g.add_argument("--change", default="cka_linear", choices=("cka_linear", "cka_debiased", "cka_rbf", "cosine"),
                   help="which measure the change is 1 minus (default cka_linear; cosine = the mean matched cosine)")
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over languages (default 1000)")
    g.add_argument("--figures", help="folder for change_by_layer.{png,pdf} and correlation_by_layer.{png,pdf}")
    g.add_argument("--correlations", help="write the correlation table (measure x layer) as TSV")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from babelmap.analysis.change import change_summary_lines, study_change
    from babelmap.engine.errors import BabelmapError
    from babelmap.kernels.cka import CKAResult, compare_stores

    if len(args.inputs) == 2:
        if not args.out:
            raise BabelmapError("--out is needed when comparing two stores")
        t0 = time.perf_counter()
        res = compare_stores(args.inputs[0], args.inputs[1], layers=args.layers, languages=args.langs,
                             rbf=args.rbf, rbf_sigma=args.rbf_sigma, rbf_threshold=args.rbf_threshold,
                             device=args.device, precision=args.precision, memory_gb=args.memory_gb,
                             progress=not args.no_progress)
        out = res.save(args.out)
        print(f"{len(res.languages)} languages x {len(res.layers)} layers in {time.perf_counter() - t0:.1f} s -> {out}")
    elif len(args.inputs) == 1:
        res = CKAResult.load(args.inputs[0])
    else:
        raise BabelmapError("give two stores (base tuned) or one compare result")
    if args.tsv:
        res.to_pandas().to_csv(args.tsv, sep="\t", index=False)
    print("\n".join(change_summary_lines(res)))
    study = study_change(res, args.source, measures=args.measure, glottolog=args.glottolog, transfer=args.transfer,
                         change=args.change, bootstrap=args.bootstrap, figures=args.figures,
                         correlations=args.correlations)
    for line in study.lines():
        print(line)
    return 0
