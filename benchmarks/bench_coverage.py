"""Do the similarity's bootstrap intervals cover a new sample? A check on FLORES dev split by article.

FLORES dev (997 sentences) is 281 articles of 1-5 consecutive sentences. The script splits the
articles at random into two halves (about 500 sentences each), computes the mean-cosine
similarity of every language pair at every layer on each half with a bootstrap, and asks, per
layer, for the fraction of pairs whose two values agree within the difference test

    |sim_A - sim_B| <= z * sqrt(se_A^2 + se_B^2)        (z = 1.96: nominal 0.95)

(both halves sample the same population of articles, so the true difference is 0; a sound
interval covers it 95% of the time). Repeated over --splits random article splits and averaged.
Compared, on the same splits:
  document   the bootstrap over articles (the default where the store knows documents)
  block      the bootstrap over blocks of 16 consecutive selected sentences
and the former practice: the first N sentences against the next N (consecutive articles, not a
sample) with the block bootstrap (and with the document bootstrap). Target: document-bootstrap
coverage >= 0.93 at every layer on random article halves.

Documents come from the store's `/documents` where it has them, else from FLORES's
metadata_dev.tsv (one row per dev line: the article URL), matched through the sentence ids
(`dev:<line>`).

    babelmap extract --corpus ../shared/data/flores200/dev --format flores --langs <24 ids> --out /tmp/f24.h5
    python benchmarks/bench_coverage.py --store /tmp/f24.h5            # writes benchmarks/results/coverage.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "flores200"


def documents_of(store, metadata: Path) -> tuple[list[str], str]:
    """Per-sentence article ids of the store (its own /documents, else FLORES metadata)."""
    docs = getattr(store, "documents", None)
    if docs is not None:
        return list(docs), "store /documents"
    with open(metadata, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for sid in store.sentence_ids:
        split, _, line = sid.partition(":")
        if split != "dev" or not line.isdigit() or not 1 <= int(line) <= len(rows):
            raise SystemExit(f"sentence id {sid!r} is not a FLORES dev line (dev:1..dev:{len(rows)})")
        out.append(rows[int(line) - 1]["URL"])
    return out, f"{metadata} (URL column)"


def article_halves(docs: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of two halves, whole articles each, articles assigned at random (balanced
    in sentences: each article in turn goes to the half with fewer sentences so far)."""
    names = list(dict.fromkeys(docs))
    order = rng.permutation(len(names))
    arr = np.asarray(docs, dtype=object)
    a = np.zeros(len(docs), bool)
    n_a = n_b = 0
    for i in order:
        sel = arr == names[i]
        if n_a <= n_b:
            a |= sel
            n_a += int(sel.sum())
        else:
            n_b += int(sel.sum())
    return a, ~a


def coverage(r_a, r_b, z: float = 1.96) -> np.ndarray:
    """Per layer: fraction of language pairs (upper triangle) passing the difference test."""
    L = len(r_a.languages)
    iu = np.triu_indices(L, 1)
    d = r_a.sim[:, iu[0], iu[1]] - r_b.sim[:, iu[0], iu[1]]
    se = np.sqrt(r_a.stderr[:, iu[0], iu[1]] ** 2 + r_b.stderr[:, iu[0], iu[1]] ** 2)
    ok = np.abs(d) <= z * se
    return ok.mean(axis=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, required=True, help="a FLORES dev store (all 997 sentences)")
    p.add_argument("--metadata", type=Path, default=DATA / "metadata_dev.tsv")
    p.add_argument("--splits", type=int, default=10, help="random article splits (10)")
    p.add_argument("--bootstrap", type=int, default=400, help="replicates per half (400)")
    p.add_argument("--block", type=int, default=16, help="sentences per block for the block bootstrap (16)")
    p.add_argument("--first", type=int, default=150, help="N of the first-N-vs-next-N comparison (150)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coverage.json")
    a = p.parse_args()

    from babelmap.engine.store import open_store
    from babelmap.kernels.similarity import compute_similarity
    t0 = time.perf_counter()
    with open_store(a.store) as st:
        docs, doc_source = documents_of(st, a.metadata)
        L, K, S, H = st.shape
        langs, layers = list(st.languages), list(st.layers)

        def sim(mask, unit, seed):
            return compute_similarity(st, sentences=mask, bootstrap=a.bootstrap, bootstrap_unit=unit,
                                      documents=docs, bootstrap_block=a.block, seed=seed, device="cpu",
                                      progress=False)

        rng = np.random.default_rng(a.seed)
        cov = {"document": [], "block": []}
        sizes = []
        for sp in range(a.splits):
            half_a, half_b = article_halves(docs, rng)
            sizes.append([int(half_a.sum()), int(half_b.sum())])
            for unit in cov:
                ra, rb = sim(half_a, unit, 2 * sp), sim(half_b, unit, 2 * sp + 1)
                cov[unit].append(coverage(ra, rb))
            print(f"split {sp + 1}/{a.splits}: halves {sizes[-1]}, coverage document "
                  f"{cov['document'][-1].min():.3f}..{cov['document'][-1].max():.3f}, block "
                  f"{cov['block'][-1].min():.3f}..{cov['block'][-1].max():.3f}  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        first = np.zeros(S, bool)
        first[: a.first] = True
        nxt = np.zeros(S, bool)
        nxt[a.first: 2 * a.first] = True
        consecutive = {}
        for unit in ("block", "document"):
            consecutive[unit] = coverage(sim(first, unit, 101), sim(nxt, unit, 102))

    doc_cov = np.mean(cov["document"], axis=0)
    blk_cov = np.mean(cov["block"], axis=0)
    n_docs = len(set(docs))
    summary = {
        "store": str(a.store), "languages": L, "pairs": L * (L - 1) // 2, "layers": layers, "sentences": S,
        "documents": n_docs, "documents_from": doc_source, "splits": a.splits, "half_sizes": sizes,
        "bootstrap": a.bootstrap, "block": a.block, "z": 1.96, "seed": a.seed,
        "test": "|sim_A - sim_B| <= 1.96 * sqrt(se_A^2 + se_B^2), per pair (upper triangle) and layer",
        "coverage_document_random_halves": doc_cov.tolist(),
        "coverage_block_random_halves": blk_cov.tolist(),
        "coverage_document_per_split": np.asarray(cov["document"]).tolist(),
        "coverage_block_first_vs_next": consecutive["block"].tolist(),
        "coverage_document_first_vs_next": consecutive["document"].tolist(),
        "first_n": a.first,
        "target": 0.93, "target_met_every_layer": bool((doc_cov >= 0.93).all()),
        "seconds": time.perf_counter() - t0,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(summary, indent=2))
    print(f"\n{L} languages ({L * (L - 1) // 2} pairs), {S} sentences in {n_docs} articles; "
          f"{a.splits} random article halves, B = {a.bootstrap}")
    print(f"{'layer':>5}  {'document':>9}  {'block':>9}  {'first' + str(a.first) + ' vs next, block':>24}  "
          f"{'... document':>12}")
    for i, k in enumerate(layers):
        print(f"{k:>5}  {doc_cov[i]:9.3f}  {blk_cov[i]:9.3f}  {consecutive['block'][i]:24.3f}  "
              f"{consecutive['document'][i]:12.3f}")
    print(f"{'mean':>5}  {doc_cov.mean():9.3f}  {blk_cov.mean():9.3f}  {consecutive['block'].mean():24.3f}  "
          f"{consecutive['document'].mean():12.3f}")
    print(f"target >= 0.93 at every layer (document bootstrap, random halves): "
          f"{'met' if summary['target_met_every_layer'] else 'NOT met'} (min {doc_cov.min():.3f})")
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
