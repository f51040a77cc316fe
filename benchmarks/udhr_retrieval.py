"""UDHR structural alignment, checked with the default model: English-to-X top-1 retrieval at the
last layer over the UDHR units that are not titles (issue 16.3). Prints a table, writes JSON.

    .venv/bin/python benchmarks/udhr_retrieval.py [--udhr ../shared/data/udhr] [--layout reference]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

TARGETS = ["fra_Latn", "deu_Latn-deu_1996", "spa_Latn", "rus_Cyrl", "ita_Latn", "por_Latn-por_BR",
           "por_Latn-por_PT", "nld_Latn", "pol_Latn", "tur_Latn"]


def embed_units(lm, texts: list[str], lang: str, batch: int = 16) -> np.ndarray:
    """Pooled embeddings of `texts`, all layers: float64 [N, K, H]."""
    import torch
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            b = lm.tokenize(texts[i:i + batch], lang=lang)
            out.append(lm.embed(b).double().cpu().numpy())
    return np.concatenate(out)


def top1(ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
    """For each row of ea, the index of the most cosine-similar row of eb."""
    ea = ea / np.linalg.norm(ea, axis=1, keepdims=True)
    eb = eb / np.linalg.norm(eb, axis=1, keepdims=True)
    return (ea @ eb.T).argmax(axis=1)


def retrieval(corpus, lm, src: str, tgt: str) -> dict:
    """Top-1 accuracy of finding tgt's unit for each src unit among tgt's units (non-title ids
    present in both) at the last layer, the misses, and the accuracy at every layer."""
    a, b = corpus.text(src), corpus.text(tgt)
    idx = [j for j, s in enumerate(corpus.sentence_ids)
           if ".title" not in s and s != "title" and a[j] is not None and b[j] is not None]
    ea = embed_units(lm, [a[j] for j in idx], src)
    eb = embed_units(lm, [b[j] for j in idx], tgt)
    truth = np.arange(len(idx))
    best = top1(ea[:, -1], eb[:, -1])
    hits = best == truth
    misses = [(corpus.sentence_ids[idx[i]], corpus.sentence_ids[idx[best[i]]]) for i in np.flatnonzero(~hits)]
    per_layer = [float((top1(ea[:, k], eb[:, k]) == truth).mean()) for k in range(ea.shape[1])]
    return {"units": len(idx), "top1": float(hits.mean()), "misses": misses, "top1_per_layer": per_layer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--udhr", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "udhr"))
    ap.add_argument("--layout", default="reference", choices=["reference", "corpus"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "udhr_retrieval.json"))
    args = ap.parse_args()
    import torch
    torch.set_num_threads(int(os.environ.get("BABELMAP_THREADS", "2")))
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.models import load_model
    t0 = time.time()
    corpus = read_corpus(args.udhr, "udhr", layout=args.layout)
    lm = load_model(None)
    rows = {}
    print(f"{'language':22s} {'units':>5s} {'top-1':>6s}  (last layer; best layer; misses: English unit -> retrieved)")
    for tgt in TARGETS:
        r = retrieval(corpus, lm, "eng_Latn", tgt)
        rows[tgt] = r
        best = int(np.argmax(r["top1_per_layer"]))
        print(f"{tgt:22s} {r['units']:5d} {r['top1']:6.3f}  best layer {best}: {r['top1_per_layer'][best]:.3f}  "
              f"{r['misses'][:4]}", flush=True)
    res = {"model": lm.name, "layer": "last", "layout": args.layout, "pivot": "eng_Latn", "results": rows,
           "load_avg": os.getloadavg(), "threads": torch.get_num_threads(), "seconds": time.time() - t0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {args.out} ({res['seconds']:.0f} s, load {res['load_avg'][0]:.1f})")


if __name__ == "__main__":
    main()
