"""LEX over all FLORES-200 dev languages (204 languages x 997 sentences, ~20,700 pairs).

In one run: (1) `babelmap.kernels.lex.lex_matrix` on all languages, cache off (target:
< 10 minutes on the 2-core machine); (2) the baseline, a naive per-pair, per-sentence Python
loop calling the same distance (`rapidfuzz.distance.Levenshtein.distance`), timed on a subset
of languages and extrapolated to all pairs by its O(pairs) cost; (3) a warm call (cache hit).
Also checks the result against the released `edit_flores200.tsv` (max abs difference).

    python benchmarks/bench_lex.py [--baseline-langs 10] [--workers N]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from _common import SHARED_DATA, peak_rss, write_json

RENAMES = {"cmn_Hani": "zho_Hans", "ekk_Latn": "est_Latn", "gug_Latn": "grn_Latn",
           "kng_Latn": "kon_Latn", "sro_Latn": "srd_Latn", "yue_Hani": "yue_Hant"}


def naive_loop(corpus, langs):
    """The reference method's shape: for each pair, for each sentence, one distance call."""
    from rapidfuzz.distance import Levenshtein
    rows = {l: corpus.text(l) for l in langs}
    out = {}
    for i, a in enumerate(langs):
        for b in langs[i + 1:]:
            d = [Levenshtein.distance(x.strip(), y.strip()) for x, y in zip(rows[a], rows[b])
                 if x is not None and y is not None]
            out[(a, b)] = -float(np.mean(d))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-langs", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args()
    os.environ["BABELMAP_CACHE"] = tempfile.mkdtemp(prefix="bench-lex-cache-")

    from babelmap.engine.corpora import read_corpus
    from babelmap.kernels.lex import lex_matrix
    from babelmap.kernels.matrix import LanguageMatrix

    t = time.perf_counter()
    corpus = read_corpus(SHARED_DATA / "flores200", "flores")
    t_read = time.perf_counter() - t
    L, S = len(corpus.languages), len(corpus.sentence_ids)
    pairs = L * (L - 1) // 2
    load0 = os.getloadavg()

    with peak_rss() as mem:
        t, c = time.perf_counter(), time.process_time()
        m = lex_matrix(corpus, workers=args.workers, progress=not args.quiet, cache=True)
        t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    lex_matrix(corpus, progress=False, cache=True)
    t_warm = time.perf_counter() - t

    sub = corpus.languages[:: max(1, L // args.baseline_langs)][: args.baseline_langs]
    t, c = time.perf_counter(), time.process_time()
    base = naive_loop(corpus, sub)
    t_base_sub, c_base_sub = time.perf_counter() - t, time.process_time() - c
    sub_pairs = len(base)
    t_base = t_base_sub * pairs / sub_pairs
    c_base = c_base_sub * pairs / sub_pairs
    assert all(abs(m.get(a, b) - v) < 1e-9 for (a, b), v in base.items())

    ref = LanguageMatrix.from_tsv(SHARED_DATA / "mplm_sim_linguistic" / "edit_flores200.tsv").rename(RENAMES)
    a, b = m.align(ref)
    off = ~np.eye(len(a), dtype=bool)
    max_diff = float(np.nanmax(np.abs(a.values[off] - b.values[off])))

    load1 = os.getloadavg()
    rows = [("babelmap lex_matrix (cold, all pairs)", t_ours, c_ours),
            (f"naive per-pair loop (extrapolated from {sub_pairs} pairs)", t_base, c_base),
            ("babelmap lex_matrix (warm, cache hit)", t_warm, float("nan"))]
    print(f"\nLEX on FLORES-200 dev: {L} languages x {S} sentences = {pairs} pairs "
          f"({pairs * S:,} distances); load average before/after: {load0[0]:.2f}/{load1[0]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"{'method':58s} {'wall s':>9s} {'CPU s':>9s}")
    for name, sec, cpu in rows:
        print(f"{name:58s} {sec:9.1f} {cpu:9.1f}")
    print(f"speed-up over the naive loop: wall {t_base / t_ours:.2f}x, CPU {c_base / c_ours:.2f}x; "
          f"peak RSS {mem['peak_mib']:.0f} MiB; max |ours - released| over {int(off.sum() // 2)} "
          f"shared pairs: {max_diff:.2e}")
    write_json("lex", {
        "corpus": "flores200 dev", "languages": L, "sentences": S, "pairs": pairs,
        "distances": pairs * S, "read_corpus_s": t_read, "lex_cold_s": t_ours, "lex_cold_cpu_s": c_ours, "lex_warm_s": t_warm,
        "workers": args.workers or os.cpu_count(), "peak_rss_mib": mem["peak_mib"],
        "baseline": {"method": "per-pair per-sentence Python loop, rapidfuzz Levenshtein.distance",
                     "languages": len(sub), "pairs": sub_pairs, "measured_s": t_base_sub,
                     "measured_cpu_s": c_base_sub, "extrapolated_all_pairs_s": t_base,
                     "extrapolated_all_pairs_cpu_s": c_base},
        "speedup_vs_baseline": t_base / t_ours, "cpu_ratio_vs_baseline": c_base / c_ours,
        "max_abs_diff_vs_released": max_diff, "released_pairs_compared": int(off.sum() // 2),
        "load_average_before": load0, "load_average_after": load1, "target_s": 600,
    })


if __name__ == "__main__":
    main()
