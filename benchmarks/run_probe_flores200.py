"""The topic-probe transfer grid on the default model over all 204 FLORES-200 dev languages,
and source selection evaluated on it (issue 18, item 2). Two stages:

    python benchmarks/run_probe_flores200.py extract --out /tmp/probe/flores_probe.h5
    python benchmarks/run_probe_flores200.py analyse /tmp/probe/flores_probe.h5

`extract` embeds a category-balanced subset of whole articles (SIB-200-style categories,
analysis/topics.py; --per-category sentences per category, seed 0) in every language.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _common import RESULTS, SHARED_DATA

FLORES = SHARED_DATA / "flores200"


def language_chunks(languages: list[str], n_chunks: int, seed: int = 0) -> list[list[str]]:
    """English first, then the rest in a seeded random order, cut into n_chunks: each finished
    chunk is a random sample of languages (so a run cut short is still an unbiased subset)."""
    import numpy as np
    rest = [l for l in languages if l != "eng_Latn"]
    order = ["eng_Latn"] + [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    return [list(c) for c in np.array_split(np.array(order, dtype=object), n_chunks)]


def extract(args) -> None:
    from babelmap.analysis.topics import read_flores_topics, sample_articles
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.extract import extract as run_extract

    labels = read_flores_topics(FLORES)
    sids = sample_articles(labels, args.per_category, seed=args.seed)
    corpus = read_corpus(FLORES, "flores").select(sentence_ids=sids)
    chunks = language_chunks(corpus.languages, args.chunks, args.seed)
    print(f"{len(corpus.languages)} languages x {len(sids)} sentences "
          f"({args.per_category} per category, seed {args.seed}) in {len(chunks)} chunks", flush=True)
    t0 = time.time()
    for i, langs in enumerate(chunks):
        out = args.out.with_name(f"{args.out.stem}.c{i}{args.out.suffix}")
        if out.exists():
            continue
        run_extract(corpus.select(languages=langs), out, progress=True)
        print(f"chunk {i}: {len(langs)} languages done at {time.time() - t0:.0f} s; "
              f"load {os.getloadavg()}", flush=True)
    print(f"extract took {time.time() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    e = sub.add_parser("extract")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--per-category", type=int, default=50)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--chunks", type=int, default=6, help="language chunks, each its own store <out>.c<i>.h5")
    e.add_argument("--minus", type=int, default=0,
                   help="leave out the subset that --per-category MINUS picks (extend a first store)")
    args = ap.parse_args()
    {"extract": extract}[args.stage](args)


if __name__ == "__main__":
    main()
