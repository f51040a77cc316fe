"""`babelmap info`: what a result or store file holds (languages, layers, provenance, best layer)."""
from __future__ import annotations

import argparse

NAME = "info"
HELP = "describe a similarity result, a results folder or a store"
EXAMPLE = """babelmap info results/default
babelmap info results/default/similarity.h5 --nearest German --k 5"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="similarity .h5, results folder, store .h5, or a shipped name (default/flores200)")
    p.add_argument("--nearest", metavar="LANG", help="also list the languages nearest to LANG (name or id)")
    p.add_argument("--k", type=int, default=10, help="how many nearest languages (default 10)")
    p.add_argument("--layer", type=int, default=None, help="layer for --nearest (default: the result's default)")


def _format(path: str) -> str | None:
    """The babelmap format of an HDF5 file (None when not a readable HDF5 file). A result
    written before results had their own format says `babelmap.store` but holds /sim."""
    import h5py
    from pathlib import Path
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with h5py.File(p, "r") as f:
            fmt = f.attrs.get("format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if fmt == "babelmap.store" and "sim" in f and "embeddings" not in f:
                return "babelmap.similarity"
            return None if fmt is None else str(fmt)
    except OSError:
        return None


def run(args: argparse.Namespace) -> int:
    fmt = _format(args.path)
    if fmt == "babelmap.store":
        from babelmap.engine.store import describe_store
        print(describe_store(args.path))
        return 0
    if fmt in ("babelmap.words", "babelmap.part"):
        from babelmap.engine.store import OTHER_FORMATS
        from babelmap.engine.errors import StoreError
        raise StoreError(f"{args.path} is {OTHER_FORMATS[fmt]}")
    import babelmap
    r = babelmap.load(args.path)
    a = r.attrs
    langs = r.languages
    print(f"{r.path or args.path}: similarity result, {len(langs)} languages x {len(r.layers)} layers "
          f"({r.layers[0]}..{r.layers[-1]})")
    print(f"  model {a.get('model', '?')}, corpus {a.get('corpus_name', '?')}, "
          f"{a.get('n_sentences', '?')} sentences, measure {a.get('measure', 'cosine-mean')}"
          + (f", bootstrap B={a.get('bootstrap')}" if r.raw.stderr is not None else ""))
    print(f"  default layer {r.default_layer}: {r.default_layer_reason}")
    shown = ", ".join(langs[:30]) + (f", ... (+{len(langs) - 30})" if len(langs) > 30 else "")
    print(f"  languages: {shown}")
    if args.nearest:
        lang = r.id(args.nearest)
        layer = r.default_layer if args.layer is None else args.layer
        print(f"nearest to {lang} at layer {layer}:")
        for other, v in r.nearest(lang, args.k, layer):
            print(f"  {other:<16} {v:.4f}")
    return 0
