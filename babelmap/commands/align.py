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
    from babelmap.engine.errors import BabelmapError
    from babelmap.engine.words import open_words
    from babelmap.engine.alignments import drop_identical_links, read_pharaoh
    from babelmap.kernels.align import align_store

    ws = open_words(args.words)
    for lang in (args.src, args.tgt):
        ws.offsets(lang)  # a clear error for an unknown language
    src_words = [ws.sentence_words(args.src, s) for s in range(len(ws.sentence_ids))]
    tgt_words = [ws.sentence_words(args.tgt, s) for s in range(len(ws.sentence_ids))]
    if args.pharaoh or args.alignment:
        al = read_pharaoh(args.pharaoh or args.alignment, src_words, tgt_words,
                          keep_one_to_one=bool(args.pharaoh) and not args.all_links,
                          drop_identical=args.drop_identical, src_lang=args.src, tgt_lang=args.tgt)
    else:
        al = align_store(ws, args.src, args.tgt, layer=args.layer, device=args.device)
        if args.drop_identical:
            al = drop_identical_links(al, src_words, tgt_words)
    n_pairs = sum(1 for s in range(al.n_sentences) if al.offsets[s + 1] > al.offsets[s])
    n_src = sum(map(len, src_words))
    print(f"{len(al)} links over {n_pairs} sentence pairs ({len(al) / max(1, n_pairs):.1f} per pair; "
          f"{100 * len(al) / max(1, n_src):.0f}% of {n_src} {args.src} words)")
    if args.out:
        print(f"alignment written to {al.save(args.out)}")
    if args.report:
        from babelmap.analysis.wordalign import analyse, write_report
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
        for name in rep.checkpoints:
            rows = [r for r in rep.rows if r["checkpoint"] == name]
            best = max(rows, key=lambda r: r["retrieval"])
            last = rows[-1]
            print(f"  {name}: last layer cos distance aligned {last['cos_aligned']:.3f} vs unrelated "
                  f"{last['cos_unrelated']:.3f}, retrieval {last['retrieval']:.3f}; best retrieval "
                  f"{best['retrieval']:.3f} at layer {best['layer']}")
    return 0
