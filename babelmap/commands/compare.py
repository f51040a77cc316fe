"""`babelmap compare`: how much each language's representation changed between two stores
(a base model and a fine-tuned copy), per layer: linear, debiased and optionally RBF CKA and the
mean matched cosine (babelmap.kernels.cka); optionally, how that change correlates with the
linguistic distance from the fine-tuning source language and with transfer scores
(babelmap.analysis.change), with figures."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

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
                   help="URIEL kinds (genetic, geographic, syntactic, inventory, phonological, featural), "
                   "'glottolog' (with --glottolog), or matrix files (.tsv/.h5 similarity; name = file stem)")
    g.add_argument("--glottolog", help="Glottolog folder for the glottolog measure")
    g.add_argument("--transfer", help="CSV/TSV with source,target,score (or lang_train,lang_pred,score)")
    g.add_argument("--change", default="cka_linear", choices=("cka_linear", "cka_debiased", "cka_rbf"),
                   help="which CKA the change is 1 minus (default cka_linear)")
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over languages (default 1000)")
    g.add_argument("--figures", help="folder for change_by_layer.{png,pdf} and correlation_by_layer.{png,pdf}")
    g.add_argument("--correlations", help="write the correlation table (measure x layer) as TSV")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _compute(args):
    from babelmap.engine.errors import BabelmapError
    from babelmap.engine.store import open_store
    from babelmap.kernels.cka import compare_stores

    if not args.out:
        raise BabelmapError("--out is needed when comparing two stores")
    t0 = time.perf_counter()
    with open_store(args.inputs[0]) as base, open_store(args.inputs[1]) as tuned:
        res = compare_stores(base, tuned, layers=args.layers, languages=args.langs, rbf=args.rbf,
                             rbf_sigma=args.rbf_sigma, rbf_threshold=args.rbf_threshold, device=args.device,
                             precision=args.precision, memory_gb=args.memory_gb, progress=not args.no_progress)
    out = res.save(args.out)
    print(f"{len(res.languages)} languages x {len(res.layers)} layers in {time.perf_counter() - t0:.1f} s -> {out}")
    return res


def _summary(res) -> None:
    import warnings

    import numpy as np
    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
    print("layer  change(linear)  change(debiased)" + ("  change(rbf)" if res.cka_rbf is not None else "")
          + "  cosine   (means over languages)")
    with np.errstate(all="ignore"):
        for r, k in enumerate(res.layers):
            line = f"{k:>5}  {np.nanmean(1 - res.cka_linear[r]):>14.4f}  {np.nanmean(1 - res.cka_debiased[r]):>16.4f}"
            if res.cka_rbf is not None:
                line += f"  {np.nanmean(1 - res.cka_rbf[r]):>11.4f}"
            print(line + f"  {np.nanmean(res.cosine[r]):>7.4f}")


def _measures(args, languages):
    from babelmap.engine.errors import BabelmapError
    out = {}
    for m in args.measure:
        if Path(m).suffix.lower() in (".tsv", ".h5", ".hdf5"):
            from babelmap.analysis.linguistic import read_matrix
            out[Path(m).stem] = read_matrix(m, rename=True)
        elif m == "glottolog":
            if not args.glottolog:
                raise BabelmapError("the glottolog measure needs --glottolog FOLDER")
            from babelmap.analysis.linguistic import glottolog_matrix
            out[m] = glottolog_matrix(args.glottolog, languages)
        else:
            from babelmap.analysis.linguistic import uriel_matrix
            out[m] = uriel_matrix(m, languages)
    return out


def _correlate(args, res) -> None:
    import numpy as np

    from babelmap.analysis.change import (correlate_all, plot_change_by_layer, plot_correlation_by_layer,
                                          read_transfer, table)
    from babelmap.engine.errors import BabelmapError

    if args.source not in res.languages:
        from babelmap.engine.languages import suggest
        raise BabelmapError(f"source {args.source!r} is not in the result (close: "
                            f"{', '.join(suggest(args.source, res.languages)) or 'none'})")
    measures = _measures(args, res.languages)
    transfer = None
    if args.transfer:
        transfer, unmatched = read_transfer(args.transfer, args.source, res.languages)
        print(f"transfer scores from {args.source}: {len(transfer)} of {len(res.languages)} languages "
              f"({len(unmatched)} codes in the table are not in the result)")
    corrs = correlate_all(res, args.source, measures=measures, transfer=transfer, change=args.change,
                          bootstrap=args.bootstrap)
    if corrs:
        df = table(corrs)
        if args.correlations:
            df.to_csv(args.correlations, sep="\t", index=False)
        print(f"\ncorrelation of change (1 - {args.change}) with distance from / transfer from {args.source}:")
        for name, c in corrs.items():
            best = int(np.nanargmax(np.abs(np.nan_to_num(c.spearman, nan=0.0))))
            print(f"  {name:<14} n={int(c.n.max()):>4}  Spearman by layer: "
                  + " ".join("   nan" if not np.isfinite(v) else f"{v:+.2f}" for v in c.spearman)
                  + f"  (max |rho| at layer {c.layers[best]}, p={c.spearman_p[best]:.2g})")
    if args.figures:
        folder = Path(args.figures)
        color = transfer if transfer else None
        label = "transfer score" if transfer else ""
        if color is None and measures:
            from babelmap.analysis.change import distance_row
            name, m = next(iter(measures.items()))
            color, label = distance_row(m, args.source, res.languages), f"{name} distance"
        files = plot_change_by_layer(res, folder / "change_by_layer", change=args.change, color_by=color,
                                     color_label=label, source=args.source)
        if corrs:
            files += plot_correlation_by_layer(corrs, folder / "correlation_by_layer")
        print("figures: " + ", ".join(str(f) for f in files))


def run(args: argparse.Namespace) -> int:
    from babelmap.engine.errors import BabelmapError
    from babelmap.kernels.cka import CKAResult

    if len(args.inputs) == 2:
        res = _compute(args)
    elif len(args.inputs) == 1:
        res = CKAResult.load(args.inputs[0])
    else:
        raise BabelmapError("give two stores (base tuned) or one compare result")
    if args.tsv:
        res.to_pandas().to_csv(args.tsv, sep="\t", index=False)
    _summary(res)
    if args.source:
        _correlate(args, res)
    elif args.measure or args.transfer or args.figures:
        if args.figures and not (args.measure or args.transfer):
            from babelmap.analysis.change import plot_change_by_layer
            files = plot_change_by_layer(res, Path(args.figures) / "change_by_layer", change=args.change)
            print("figures: " + ", ".join(str(f) for f in files))
        else:
            raise BabelmapError("--measure/--transfer need --source (the fine-tuning language)")
    return 0
