"""`babelmap similarity`: all-layer language similarity (mPLM-Sim) from a store."""
from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from pathlib import Path

NAME = "similarity"
HELP = ("language-by-language similarity at every layer from a store (mean cosine over shared sentences, "
        "MEXA alignment or retrieval accuracy)")
EXAMPLE = """babelmap similarity flores.h5 --out sims.h5
babelmap similarity flores.h5 --out sims.h5 --layers 0,6,12 --bootstrap 200 --tsv sims_tsv/
babelmap similarity flores.h5 --out mexa.h5 --measure mexa --bootstrap 200
babelmap similarity flores.h5 --out r1.h5 --measure retrieval@1 --pivot eng_Latn
babelmap similarity flores.h5 --out sims.h5 --langs 'eng_*' 'deu_*' 'fra_*' --device cuda --precision float64"""


def _int_list(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, help="the store (HDF5) written by `babelmap extract`")
    p.add_argument("--out", type=Path, required=True, help="where to write the result (HDF5)")
    p.add_argument("--measure", default="cosine-mean", metavar="NAME",
                   help="cosine-mean (default: mean cosine over shared sentences, mPLM-Sim), mexa (fraction "
                        "of sentences whose translation is the strict nearest both ways) or retrieval@K "
                        "(top-K retrieval accuracy, row language -> column language)")
    p.add_argument("--pivot", metavar="ID", help="mexa/retrieval: only the pairs with this language (L-1 "
                                                   "pairs instead of L(L-1)/2), e.g. eng_Latn")
    p.add_argument("--layers", type=_int_list, help="hidden states, e.g. 0,6,12 or 4-8 (default: all)")
    p.add_argument("--langs", nargs="+", metavar="ID_OR_GLOB", help="languages (ids or globs; default: all)")
    p.add_argument("--max-sentences", type=int, help="use only the first N sentences of the store")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="float32", choices=["float32", "float64"],
                   help="products in this precision; sums are always float64 (default float32)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                   help="B bootstrap replicates (over documents where known, else sentence blocks): "
                        "adds stderr and a 95%% interval")
    p.add_argument("--bootstrap-block", type=int, default=16,
                   help="sentences per bootstrap block when blocks are resampled (16)")
    p.add_argument("--bootstrap-unit", default="auto", choices=["auto", "document", "block"],
                   help="what the bootstrap resamples: documents where the store records them (auto, the "
                        "default), else blocks of consecutive sentences")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--center", action="store_true",
                   help="subtract each layer's mean embedding first (extension; not the reference measure)")
    p.add_argument("--tsv", type=Path, metavar="FOLDER",
                   help="also write one square TSV per layer (sents_layer<N>.tsv, reference format)")
    p.add_argument("--no-progress", action="store_true")


def _languages(patterns, available):
    from babelmap.engine.errors import LanguageError
    from babelmap.engine.languages import suggest
    if not patterns:
        return None
    out = []
    for pat in patterns:
        hits = [l for l in available if fnmatch.fnmatchcase(l, pat)]
        if not hits:
            raise LanguageError(f"{pat!r} matches no language in the store "
                                f"(close: {', '.join(suggest(pat, available)) or 'none'})")
        out.extend(h for h in hits if h not in out)
    return out


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that cannot be written before any work is done."""
    from babelmap.engine.errors import BabelmapError
    if args.out.is_dir():
        raise BabelmapError(f"--out {args.out} is a folder; give the path of the result file to write, "
                            f"e.g. {args.out / 'similarity.h5'}")
    if args.tsv is not None and args.tsv.exists() and not args.tsv.is_dir():
        raise BabelmapError(f"--tsv {args.tsv} is a file; give a folder for the per-layer TSV files")


def run(args: argparse.Namespace) -> int:
    from babelmap.engine.store import open_store
    from babelmap.kernels.similarity import compute_similarity

    t0 = time.perf_counter()
    _check_outputs(args)
    if args.measure != "cosine-mean":
        from babelmap.kernels.mexa import parse_measure
        parse_measure(args.measure)
    with open_store(args.store) as st:
        langs = _languages(args.langs, st.languages)
        sents = None if args.max_sentences is None else slice(0, args.max_sentences)
        result = compute_similarity(st, layers=args.layers, languages=langs, sentences=sents, device=args.device,
                                    precision=args.precision, bootstrap=args.bootstrap, center=args.center,
                                    progress=not args.no_progress and sys.stderr.isatty(), seed=args.seed,
                                    bootstrap_block=args.bootstrap_block, bootstrap_unit=args.bootstrap_unit,
                                    measure=args.measure, pivot=args.pivot)
    result.attrs["command"] = " ".join(["babelmap"] + sys.argv[1:])
    out = result.save(args.out)
    tsv = result.export_tsv(args.tsv) if args.tsv else []
    wall = time.perf_counter() - t0

    L, last = len(result.languages), result.layers[-1]
    measure = result.attrs.get("measure", "cosine-mean")
    boot = ""
    if args.bootstrap:
        boot = f", bootstrap B={args.bootstrap} over {result.attrs.get('bootstrap_groups')} " + \
            ("documents" if result.attrs.get("bootstrap_unit") == "document" else "sentence blocks")
    print(f"{out}: {measure}, {L} languages x {len(result.layers)} layers ({result.layers[0]}..{last}), "
          f"{result.attrs['n_sentences']} sentences, device {result.attrs['device']}, {args.precision}"
          f"{', centered' if args.center else ''}{f', pivot {args.pivot}' if args.pivot else ''}{boot}")
    lines = result.summary_lines()
    read = f" (read {result.attrs['read_seconds']:.1f} s)" if "read_seconds" in result.attrs else ""
    print(f"  time {wall:.1f} s{read}" + (f"; {lines.pop(0)}" if L > 1 else ""))
    for d in result.attrs.get("nan_inputs", []) or []:
        print(f"warning: the store holds NaN in {d['language']} at layer {d['layer']} ({d['sentences']} "
              f"sentences): its values at that layer are NaN", file=sys.stderr)
    for line in lines:
        print(f"  {line}")
    if tsv:
        print(f"  {len(tsv)} TSV files in {args.tsv}")
    return 0
