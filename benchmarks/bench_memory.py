"""Bounded memory: peak RSS of extraction and of similarity at ~100 and at all 876 eBible
translations. Each measurement runs in a fresh process and reads its own ru_maxrss, so the
numbers are the whole process's high-water mark (model, corpus, buffers, store writes).

    python benchmarks/bench_memory.py [--verses 8] [--counts 100 876] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import write_json
from bench_ebible import unpack_ebible

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from babelmap.engine.corpora import read_corpus
stage, folder, n, verses, out, model = sys.argv[1:7]
model = None if model == "default" else model
t = time.perf_counter()
if stage == "extract":
    from babelmap.engine.extract import extract
    c = read_corpus(folder, "ebible")
    c = c.select(languages=c.languages[:int(n)], first=int(verses))
    extract(c, out, model, device="cpu", progress=False)
    what = {"sentences": int(c.mask.sum())}
else:
    from babelmap.engine.store import open_store
    from babelmap.kernels.similarity import compute_similarity
    langs = open_store(out).languages[:int(n)]
    r = compute_similarity(out, languages=langs, device="cpu", progress=False)
    what = {"pairs": len(langs) ** 2}
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - t, **what}))
"""


def child(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verses", type=int, default=8)
    ap.add_argument("--counts", type=int, nargs="+", default=[100, 876])
    ap.add_argument("--model", default="default")
    ap.add_argument("--work", type=Path, default=Path("/tmp/babelmap-memory"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folder = str(unpack_ebible())
    rows = []
    for n in args.counts:
        store = args.work / f"mem_{n}_{args.verses}.h5"
        if store.exists():
            store.unlink()
        ex = child("extract", folder, str(n), str(args.verses), str(store), args.model)
        sim = child("similarity", folder, str(n), str(args.verses), str(store), args.model)
        rows.append({"translations": n, "verses": args.verses, "extract": ex, "similarity": sim,
                     "store_mib": store.stat().st_size / 2**20})
        print(f"{n:5d} translations: extract peak {ex['peak_rss_mib']:7.0f} MiB ({ex['seconds']:.0f} s), "
              f"similarity peak {sim['peak_rss_mib']:7.0f} MiB ({sim['seconds']:.1f} s)")
    lo, hi = rows[0], rows[-1]
    ratio = {"extract": hi["extract"]["peak_rss_mib"] / lo["extract"]["peak_rss_mib"],
             "similarity": hi["similarity"]["peak_rss_mib"] / lo["similarity"]["peak_rss_mib"],
             "languages": hi["translations"] / lo["translations"]}
    print(f"peak RSS ratio {hi['translations']} vs {lo['translations']} translations "
          f"({ratio['languages']:.1f}x the languages): extract {ratio['extract']:.2f}x, "
          f"similarity {ratio['similarity']:.2f}x")
    write_json("memory", {"rows": rows, "ratio_high_over_low": ratio,
                          "command": "python benchmarks/bench_memory.py " +
                          f"--verses {args.verses} --counts {' '.join(map(str, args.counts))}"})


if __name__ == "__main__":
    main()
