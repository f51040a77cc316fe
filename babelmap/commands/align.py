"""`babelmap align`: word alignments of a language pair (Pharaoh file or the model's own), and
the aligned-vs-unrelated report across checkpoints."""
from __future__ import annotations

import argparse

NAME = "align"
HELP = "align words of two languages in a word store; --report: aligned vs unrelated distances per layer"
EXAMPLE = """babelmap align words.h5 --src eng_Latn --tgt deu_Latn --layer 8 --out eng-deu.align
babelmap align words.h5 --src eng_Latn --tgt deu_Latn --pharaoh gold.align --drop-identical --out eng-deu.align
babelmap align words.h5 --src eng_Latn --tgt deu_Latn --alignment eng-deu.align \\
    --compare adjusted=words-adjusted.h5 --report report/"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", help="word store from `babelmap words`")
    p.add_argument("--src", required=True, help="source language id")
    p.add_argument("--tgt", required=True, help="target language id")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pharaoh", help="read links from a Pharaoh i-j file (one line per sentence); "
                   "only one-to-one links are kept")
    g.add_argument("--alignment", help="an alignment written by `babelmap align --out` (read as is)")
    p.add_argument("--all-links", action="store_true", help="with --pharaoh: keep links that are not one-to-one")
    p.add_argument("--drop-identical", action="store_true", help="drop links between identical strings")
    p.add_argument("--layer", type=int, default=8, help="hidden state of the similarity aligner (default 8)")
    p.add_argument("--device", default="cpu", help="cpu (Numba), cuda (torch) or auto (default cpu)")
    p.add_argument("--out", help="write the alignment (Pharaoh format, line = sentence of the store)")
    p.add_argument("--report", metavar="FOLDER", help="write the table (CSV, Markdown) and figures here")
    p.add_argument("--name", default="base", help="checkpoint name of WORDS in the report (default base)")
    p.add_argument("--compare", nargs="+", default=[], metavar="NAME=WORDS.h5",
                   help="more checkpoints' word stores of the same corpus (adjusted, fine-tuned...)")
    p.add_argument("--hist-layer", type=int, default=None, help="layer of the histograms (default --layer)")
    p.add_argument("--seed", type=int, default=0, help="seed of the unrelated pairs (default 0)")
    p.add_argument("--no-pdf", action="store_true", help="PNG figures only")


def run(args: argparse.Namespace) -> int:
    from babelmap.analysis.wordalign import analyse, store_alignment, summary_lines, write_report
    from babelmap.engine.errors import BabelmapError
    from babelmap.engine.words import open_words

    ws = open_words(args.words)
    al, line = store_alignment(ws, args.src, args.tgt, pharaoh=args.pharaoh, alignment=args.alignment,
                               all_links=args.all_links, drop_identical=args.drop_identical, layer=args.layer,
                               device=args.device)
    print(line)
    if args.out:
        print(f"alignment written to {al.save(args.out)}")
    if args.report:
        stores = {args.name: ws}
        for item in args.compare:
            name, sep, path = item.partition("=")
            if not sep:
                raise BabelmapError(f"--compare wants NAME=WORDS.h5, got {item!r}")
            stores[name] = open_words(path)
        rep = analyse(stores, al, args.src, args.tgt, seed=args.seed)
        files = write_report(rep, args.report, hist_layer=args.hist_layer if args.hist_layer is not None
                             else args.layer, pdf=not args.no_pdf)
        print(f"report: {', '.join(str(f) for f in files)}")
        print("\n".join(summary_lines(rep)))
    return 0
