"""Regenerate the result that ships with the package: `babelmap.load("default/flores200")`.

The default model (multilingual-e5-small-q4) on all 204 FLORES-200 dev languages, the first
N sentences (100 on a 2-core CPU; all 997 on a GPU), all 13 hidden states. The best layer
(highest mean Pearson r with URIEL genetic, geographic, syntactic, inventory, phonological,
featural, LEX and Glottolog, averaged over the measures) is recorded as the default layer.
Only numbers ship (similarities and counts), no corpus text.

    babelmap extract --corpus ../shared/data/flores200 --format flores --max-sentences 100 --out /tmp/flores-default/store.h5
    python benchmarks/make_default_flores200.py /tmp/flores-default/store.h5
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _common import SHARED_DATA

OUT = Path(__file__).resolve().parents[1] / "babelmap" / "data" / "default_flores200.h5"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from babelmap.analysis.correlation import correlate
    from babelmap.analysis.linguistic import compute_measure
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.store import open_store
    from babelmap.kernels.similarity import compute_similarity

    with open_store(args.store) as st:
        n = len(st.sentence_ids)
    corpus = read_corpus(SHARED_DATA / "flores200", "flores").select(first=n)
    res = compute_similarity(args.store)
    langs = res.languages
    names = ["genetic", "geographic", "syntactic", "inventory", "phonological", "featural", "lex", "glottolog"]
    inputs = {"corpus": corpus, "glottolog": SHARED_DATA / "glottolog"}
    table = {}
    for name in names:
        m = compute_measure(name, langs, **inputs)
        c = correlate(res, m)
        table[name] = [float(x) for x in c.mean_pearson]
        print(f"{name:13s} best layer {c.best_layer():2d}  mean Pearson by layer: "
              + " ".join(f"{x:.3f}" for x in c.mean_pearson))
    mean = np.nanmean(np.array(list(table.values())), axis=0)
    best = int(res.layers[int(np.nanargmax(mean))])
    res.attrs.update(best_layer=best,
                     best_layer_measure=f"highest mean Pearson r averaged over {', '.join(names)}",
                     correlation_by_layer=json.dumps(table), sentences_used=n,
                     regenerate="babelmap extract --corpus flores200 --format flores --max-sentences "
                                f"{n} --out store.h5; python benchmarks/make_default_flores200.py store.h5")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    res.save(args.out)
    print(f"best layer {best}; wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
