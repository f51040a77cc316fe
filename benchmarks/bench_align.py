"""Benchmark: the mutual-argmax word aligner over thousands of synthetic sentence pairs.

Numba kernel (packed ragged sentences, parallel over pairs) versus the per-pair NumPy loop
(the baseline), measured in the same run; the torch version too (CPU here, GPU when present).
Checks that all give identical links. Prints a table, writes benchmarks/results/align.json.

    python benchmarks/bench_align.py [--pairs 5000] [--hidden 384] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def ragged(rng, S, H, lo=5, hi=40):
    lens = rng.integers(lo, hi, S)
    off = np.zeros(S + 1, np.int64)
    off[1:] = np.cumsum(lens)
    return rng.standard_normal((off[-1], H)).astype(np.float32), off


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "align.json"))
    args = ap.parse_args(argv)

    import numba
    import torch

    from babelmap.kernels.align import align_numba, align_numpy, align_torch

    rng = np.random.default_rng(0)
    a, a_off = ragged(rng, args.pairs, args.hidden)
    b, b_off = ragged(rng, args.pairs, args.hidden)
    align_numba(a[:200], a_off[:3], b[:200], b_off[:3])  # compile (cached on disk afterwards)

    rows = {}
    t_np, ref = best_of(lambda: align_numpy(a, a_off, b, b_off), args.repeats)
    rows["numpy per-pair loop (baseline)"] = t_np
    t_nb, got = best_of(lambda: align_numba(a, a_off, b, b_off), args.repeats)
    rows[f"numba kernel ({numba.get_num_threads()} threads)"] = t_nb
    same_nb = np.array_equal(ref.offsets, got.offsets) and np.array_equal(ref.src, got.src) \
        and np.array_equal(ref.tgt, got.tgt)
    t_tc, got_t = best_of(lambda: align_torch(a, a_off, b, b_off, device="cpu"), args.repeats)
    rows["torch cpu (padded batches)"] = t_tc
    same_tc = np.array_equal(ref.tgt, got_t.tgt) and np.array_equal(ref.offsets, got_t.offsets)
    if torch.cuda.is_available():
        align_torch(a[:200], a_off[:3], b[:200], b_off[:3], device="cuda")
        rows["torch cuda"], _ = best_of(lambda: align_torch(a, a_off, b, b_off, device="cuda"), args.repeats)

    n_words = int(a_off[-1] + b_off[-1])
    print(f"mutual-argmax aligner: {args.pairs} sentence pairs, {n_words} words, H={args.hidden}, "
          f"{len(ref)} links; best of {args.repeats}")
    print(f"{'method':40s} {'seconds':>9s} {'pairs/s':>10s} {'speed-up':>9s}")
    for name, t in rows.items():
        print(f"{name:40s} {t:9.3f} {args.pairs / t:10.0f} {t_np / t:8.1f}x")
    print(f"identical links: numba {same_nb}, torch {same_tc}")
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    result = {"benchmark": "align", "pairs": args.pairs, "hidden": args.hidden, "words": n_words, "links": len(ref),
              "repeats": args.repeats, "seconds": rows, "speedup_vs_numpy": {k: t_np / v for k, v in rows.items()},
              "identical_links": {"numba": bool(same_nb), "torch": bool(same_tc)},
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "loadavg": load,
                          "numba_threads": numba.get_num_threads(), "torch": torch.__version__}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
