"""`babelmap check`: verify a store and exit non-zero with one message per defect."""
from __future__ import annotations

import argparse
import sys

NAME = "check"
HELP = ("verify a store by content: per-block sha256 recorded at extraction, provenance against the "
        "shards' records, completeness, mask/token consistency, NaN/Inf, shapes")
EXAMPLE = """babelmap check flores.h5
babelmap check flores.h5 --corpus ../shared/data/flores200/dev --format flores   # also against the corpus
babelmap check flores.h5 --pack flores-single.h5   # verify, then write a self-contained one-file copy
babelmap check --corpus bible/ --format ebible     # no store: look for same-count shifts in the corpus (no model)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from babelmap.corpus_options import add_corpus_arguments
    p.add_argument("store", nargs="?", help="the store (HDF5) to verify (leave out to check only --corpus)")
    add_corpus_arguments(p, format_required=False)   # the corpus options the store was extracted with
    p.add_argument("--pivot", help="with --corpus: the language the shift check compares against (default: the "
                   "consensus of all languages)")
    p.add_argument("--pack", metavar="FILE", help="after a clean check, write a self-contained single-file copy "
                   "of the store (no <store>.shards/ folder needed) to FILE")


def run(args: argparse.Namespace) -> int:
    from babelmap.engine.check import check_store
    from babelmap.engine.errors import CorpusError
    corpus = None
    if args.corpus or args.format == "cldr":
        if not args.format:
            raise CorpusError("--corpus needs --format")
        from babelmap.corpus_options import corpus_from_args
        corpus = corpus_from_args(args, check_alignment=args.store is not None)
    elif args.store is None:
        raise CorpusError("give a store to check, or --corpus PATH --format FMT to check a corpus's alignment")
    if args.store is None:
        return _check_corpus_alignment(corpus, args.pivot)
    defects = check_store(args.store, corpus=corpus, progress=sys.stderr.isatty())
    if defects:
        for d in defects:
            print(f"{args.store}: {d}", file=sys.stderr)
        print(f"{args.store}: {len(defects)} defect(s)", file=sys.stderr)
        advice = redo_advice(args.store, defects)
        if advice:
            print(advice, file=sys.stderr)
        return 1
    from babelmap.engine.store import describe_store
    print(describe_store(args.store))
    import h5py
    with h5py.File(args.store, "r") as f:
        if "blocks" not in f:
            print("note: this store records no content checksums (written by an older babelmap): its structure "
                  "and values were checked, not its content against the extraction")
    print("ok: no defects")
    if args.pack:
        from babelmap.engine.store import pack_store
        pack_store(args.store, args.pack, progress=sys.stderr.isatty())
        again = check_store(args.pack)
        if again:
            for d in again:
                print(f"{args.pack}: {d}", file=sys.stderr)
            return 1
        print(describe_store(args.pack))
        print(f"packed into {args.pack}: checksums verified")
    return 0


def redo_advice(store: str, defects) -> str:
    """What to do about shards whose content differs from their checksums: delete the store and
    those shards and rerun the extraction, which recomputes only their units ("" when none)."""
    from pathlib import Path

    from babelmap.engine.check import DefectKind
    shards = sorted({d.shard for d in defects if d.kind == DefectKind.CONTENT and d.shard})
    if not shards:
        return ""
    path = Path(store)
    paths = " ".join(str(path.parent / s) for s in shards)
    return (f"  what to do: delete {path} and {paths}, then run the same extract command again "
            "(only those units are recomputed)")


def _check_corpus_alignment(corpus, pivot: str | None) -> int:
    """Print every span whose sentence lengths look shifted (Gale-Church style, no model); exit 1 if any."""
    from babelmap.engine.corpora.aligncheck import find_shifts
    suspects = find_shifts(corpus, pivot=pivot)
    for s in suspects:
        print(s.message, file=sys.stderr)
    n = len(corpus.languages)
    if suspects:
        print(f"{corpus.name}: {len(suspects)} suspect span(s) in {len({s.language for s in suspects})} of {n} "
              "languages; look at those lines, fix the files, and check again", file=sys.stderr)
        return 1
    print(f"{corpus.name}: {n} languages x {len(corpus.sentence_ids)} sentences: no shifted spans found")
    return 0
