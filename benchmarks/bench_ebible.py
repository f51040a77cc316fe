"""The ~1000-translation run: eBible (876 translations, 758 codes) end to end with the default model.

Stages timed separately: read the corpus, extract (a verse subset on CPU), similarity with a
bootstrap, sanity figures (translations of the same language vs different languages, with
intervals), and clustering against the eBible family metadata (purity, ARI).

    python benchmarks/bench_ebible.py --verses 64 [--device cpu] [--work /tmp/babelmap-ebible]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from _common import SHARED_DATA, peak_rss, write_json


def unpack_ebible() -> Path:
    from babelmap.engine.cache import cache_dir
    dest = cache_dir("data")
    if not (dest / ".ebible.unpacked").exists():
        subprocess.run(["tar", "-xJf", str(SHARED_DATA / "ebible.tar.xz"), "-C", str(dest)], check=True)
        (dest / ".ebible.unpacked").write_text("ok")
    return dest / "ebible"


def ebible_families(folder: Path, corpus) -> dict[str, str | None]:
    """Family of each translation id from metadata/lang_details.tsv (by file name)."""
    fam_by_file = {}
    with open(folder / "metadata" / "lang_details.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            fam_by_file[Path(row["file"]).stem] = (row.get("family") or "").strip() or None
    out = {}
    for lang in corpus.languages:
        src = Path(str(corpus.meta.get(lang, {}).get("file", ""))).stem
        out[lang] = fam_by_file.get(src)
    return out


def mean_ci(values: np.ndarray, B: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    v = values[np.isfinite(values)]
    boots = v[rng.integers(0, len(v), (B, len(v)))].mean(1)
    return {"mean": float(v.mean()), "ci_low": float(np.quantile(boots, 0.025)),
            "ci_high": float(np.quantile(boots, 0.975)), "pairs": int(len(v))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verses", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--work", type=Path, default=Path("/tmp/babelmap-ebible"))
    ap.add_argument("--bootstrap", type=int, default=200)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from babelmap.analysis.cluster import cluster
    from babelmap.engine.corpora import read_corpus
    from babelmap.engine.extract import extract
    from babelmap.engine.languages import iso639_3
    from babelmap.kernels.similarity import compute_similarity

    stages, mem = {}, {}
    folder = unpack_ebible()
    t = time.perf_counter()
    full = read_corpus(folder, "ebible")
    stages["read_corpus_s"] = time.perf_counter() - t
    corpus = full.select(first=args.verses)
    print(f"eBible: {len(full.languages)} translations x {len(full.sentence_ids)} verses read in "
          f"{stages['read_corpus_s']:.1f} s; using the first {args.verses} verses")

    store = args.work / f"ebible_{args.verses}.h5"
    done = args.work / f"ebible_{args.verses}.extract.json"  # a finished extraction is reused
    if store.exists() and done.exists():
        stages["extract_s"], mem["extract_peak_rss_mib"] = json.loads(done.read_text())
    else:
        with peak_rss() as m:
            t = time.perf_counter()
            extract(corpus, store, None, dtype=args.dtype, device=args.device)
            stages["extract_s"] = time.perf_counter() - t
        mem["extract_peak_rss_mib"] = m["peak_mib"]
        done.write_text(json.dumps([stages["extract_s"], mem["extract_peak_rss_mib"]]))
    with peak_rss() as m:
        t = time.perf_counter()
        res = compute_similarity(store, device=args.device, bootstrap=args.bootstrap)
        stages["similarity_s"] = time.perf_counter() - t
    mem["similarity_peak_rss_mib"] = m["peak_mib"]
    res.save(args.work / f"ebible_{args.verses}_sim.h5")

    langs = res.languages
    codes = np.array([iso639_3(l) for l in langs])
    iu = np.triu_indices(len(langs), 1)
    same = codes[iu[0]] == codes[iu[1]]
    sanity = {}
    for li, layer in enumerate(res.layers):
        s = res.sim[li][iu]
        sanity[int(layer)] = {"same_language": mean_ci(s[same]), "different_language": mean_ci(s[~same])}

    families = ebible_families(folder, corpus)
    known = [l for l in langs if families.get(l)]
    fam_counts = Counter(families[l] for l in known)
    big = {f for f, c in fam_counts.items() if c >= 5}
    eval_langs = [l for l in known if families[l] in big]
    k = len(big)
    clusters = {}
    t = time.perf_counter()
    for layer in res.layers:
        mat = res.matrix(layer).subset(eval_langs)
        c = cluster(mat, k=k)
        clusters[int(layer)] = c.evaluate({l: families[l] for l in eval_langs})
    stages["cluster_s"] = time.perf_counter() - t
    size = store.stat().st_size

    print(f"\n{'stage':14s} {'seconds':>9s}")
    for k_, v in stages.items():
        print(f"{k_:14s} {v:9.1f}")
    print(f"store: {size / 2**20:.1f} MiB; peak RSS extract {mem['extract_peak_rss_mib']:.0f} MiB, "
          f"similarity {mem['similarity_peak_rss_mib']:.0f} MiB")
    print(f"\n{'layer':>5s} {'same-language sim [95% CI]':>30s} {'different-language':>30s} {'purity':>7s} {'ARI':>6s}")
    for layer in res.layers:
        a, b = sanity[int(layer)]["same_language"], sanity[int(layer)]["different_language"]
        ce = clusters[int(layer)]
        print(f"{layer:5d} {a['mean']:.4f} [{a['ci_low']:.4f}, {a['ci_high']:.4f}]      "
              f"{b['mean']:.4f} [{b['ci_low']:.4f}, {b['ci_high']:.4f}] {ce.get('purity', float('nan')):7.3f} "
              f"{ce.get('ari', float('nan')):6.3f}")
    write_json(f"ebible_{args.verses}_{args.device}", {
        "translations": len(langs), "codes": len(set(codes)), "verses": args.verses,
        "stages_seconds": stages, "memory": mem, "store_bytes": size,
        "same_vs_different": sanity, "families_evaluated": len(big), "languages_evaluated": len(eval_langs),
        "clusters_vs_ebible_families": clusters,
        "command": f"python benchmarks/bench_ebible.py --verses {args.verses} --device {args.device}"})


if __name__ == "__main__":
    main()
