"""Benchmark: CKA (linear + debiased + mean cosine) between two models' embeddings for
1000 languages x 13 hidden states x 1000 sentences x 384 dims (float16), the size of a
multilingual-e5-small / FLORES-dev study.

Three parts, each in its own subprocess (so peak RSS is its own):
  ours   babelmap.kernels.cka.stream_cka (feature-space sums, languages batched through
         torch.bmm), on synthetic float16 arrays generated in memory block by block (two full
         stores would be 2 x 10 GB on disk); timed on a subset of languages (whole groups)
         and extrapolated linearly to all languages (groups are independent).
  naive  the straightforward per-language, per-layer NumPy loop (Kornblith et al.'s reference
         formulas: n x n Gram matrices in float64, biased and unbiased centring), same data,
         timed on a few languages and extrapolated; also the largest difference to ours.
  disk   end to end `compare_stores` on two real float16 stores written to /tmp (fewer
         languages), to show the cost of reading.
Writes benchmarks/results/cka.json. Usage: python benchmarks/bench_cka.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "cka.json"


# ---- synthetic data: deterministic per (language, sentence slice) -----------------------------
class Synthetic:
    """Two models' embeddings [L, K, S, H] float16 without materialising them: language l's
    rows are a random pool rolled by l along the sentence axis; the tuned model's pool is the
    base pool plus noise growing with the layer, rolled a little differently per language.
    Any block can be produced on demand, identically every time."""

    def __init__(self, L: int, K: int, S: int, H: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.L, self.K, self.S, self.H = L, K, S, H
        self.px = (rng.normal(size=(K, 2 * S, H)) + 2 * rng.normal(size=(K, 1, H))).astype(np.float16)
        scale = np.linspace(0.1, 1.5, K, dtype=np.float32)[:, None, None]
        pn = rng.normal(size=(K, 2 * S, H)).astype(np.float32)
        self.py = (self.px.astype(np.float32) + scale * pn).astype(np.float16)

    def read(self, rows, sl: slice):
        """A block as a store would return it (a gather, about the cost of a copy)."""
        idx = np.arange(sl.start, sl.stop)
        x = np.stack([self.px[:, (idx + 7 * l) % (2 * self.S)] for l in rows])
        y = np.stack([self.py[:, (idx + 7 * l + 13 * (l % 5) + 1) % (2 * self.S)] for l in rows])
        return x, y


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- parts ------------------------------------------------------------------------------------
def part_ours(a) -> dict:
    import torch

    from babelmap.engine.models.loading import resolve_device
    from babelmap.kernels.cka import _group_sizes, stream_cka

    rss0 = peak_rss_mb()
    dev = resolve_device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    data = Synthetic(a.languages, a.layers, a.sentences, a.hidden)
    chunk = max(1, (1 << 20) // (a.layers * a.hidden * 2))  # the store's chunk for these sizes
    group, block = _group_sizes(a.layers, a.hidden, 4, chunk, a.memory_gb)
    n = a.languages if a.subset <= 0 else min(a.languages, max(group, (a.subset // group) * group))
    joint = np.ones((n, a.sentences), bool)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t, c = time.perf_counter(), time.process_time()
    out = stream_cka(data.read, joint, a.layers, a.hidden, group=group, block=block, dtype=torch.float32,
                     device=dev, progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    res = {"device": str(dev), "languages_timed": n, "group": group, "block_sentences": block,
           "seconds_timed": secs, "seconds_all": secs * a.languages / n,
           "cpu_seconds_timed": cpu, "cpu_seconds_all": cpu * a.languages / n,
           "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
           "threads": torch.get_num_threads(),
           "values": {k: v[:, : a.naive_languages].tolist() for k, v in out.items()}}
    if dev.type == "cuda":
        res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        res["gpu"] = torch.cuda.get_device_name()
    return res


def naive_cka(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Per pair, float64, n x n Grams (Kornblith et al. 2019 / Nguyen et al. 2021 reference code)."""
    def center(g, unbiased):
        g = g.copy()
        if unbiased:
            n = g.shape[0]
            np.fill_diagonal(g, 0)
            means = g.sum(0) / (n - 2)
            means -= means.sum() / (2 * (n - 1))
            g -= means[:, None]
            g -= means[None, :]
            np.fill_diagonal(g, 0)
        else:
            means = g.mean(0)
            means -= means.mean() / 2
            g -= means[:, None]
            g -= means[None, :]
        return g

    def cka(gx, gy, unbiased):
        gx, gy = center(gx, unbiased), center(gy, unbiased)
        hxy = gx.ravel() @ gy.ravel()
        return hxy / (np.linalg.norm(gx) * np.linalg.norm(gy))

    gx, gy = x @ x.T, y @ y.T
    cos = np.mean((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1))
    return cka(gx, gy, False), cka(gx, gy, True), cos


def part_naive(a) -> dict:
    rss0 = peak_rss_mb()
    data = Synthetic(a.languages, a.layers, a.sentences, a.hidden)
    n = a.naive_languages
    vals = np.zeros((3, a.layers, n))
    t, c = time.perf_counter(), time.process_time()
    for l in range(n):
        x, y = data.read([l], slice(0, a.sentences))
        for k in range(a.layers):
            vals[:, k, l] = naive_cka(x[0, k].astype(np.float64), y[0, k].astype(np.float64))
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {"languages_timed": n, "seconds_timed": secs, "seconds_all": secs * a.languages / n,
            "cpu_seconds_timed": cpu, "cpu_seconds_all": cpu * a.languages / n,
            "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss0,
            "values": {"cka_linear": vals[0].tolist(), "cka_debiased": vals[1].tolist(), "cosine": vals[2].tolist()}}


def part_disk(a) -> dict:
    import torch

    from babelmap.engine.store import StoreWriter
    from babelmap.kernels.cka import compare_stores

    L = a.disk_languages
    data = Synthetic(L, a.layers, a.sentences, a.hidden)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cka-"))
    try:
        t = time.perf_counter()
        sids = [str(i) for i in range(a.sentences)]
        langs = [f"l{i:04d}_Latn" for i in range(L)]
        attrs = dict(corpus_fingerprint="synthetic", pooling="mean")
        ws = [StoreWriter(tmp / f"{tag}.h5", langs, sids, a.layers, a.hidden, "float16",
                          {**attrs, "model_fingerprint": tag}, mask=np.ones((L, a.sentences), bool))
              for tag in ("base", "tuned")]
        for i in range(L):
            x, y = data.read([i], slice(0, a.sentences))
            ws[0].write_language(i, x[0])
            ws[1].write_language(i, y[0])
        for w in ws:
            w.close()
        write_s = time.perf_counter() - t
        size = sum((tmp / f"{t}.h5").stat().st_size for t in ("base", "tuned"))
        t = time.perf_counter()
        res = compare_stores(tmp / "base.h5", tmp / "tuned.h5", device=a.device, memory_gb=a.memory_gb,
                             progress=False)
        secs = time.perf_counter() - t
        return {"languages": L, "bytes_both_stores": size, "write_seconds": write_s, "compare_seconds": secs,
                "seconds_per_language": secs / L, "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads(),
                "mean_change_linear_by_layer": np.nanmean(1 - res.cka_linear, 1).round(4).tolist()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def gemm_gflops() -> float:
    """Measured float32 GEMM speed of this machine right now (context for the timings)."""
    import torch
    x = torch.randn(1024, 1024)
    x @ x
    t = time.perf_counter()
    for _ in range(5):
        x @ x
    return 5 * 2 * 1024 ** 3 / (time.perf_counter() - t) / 1e9


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--languages", type=int, default=1000)
    p.add_argument("--layers", type=int, default=13)
    p.add_argument("--sentences", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--subset", type=int, default=23, help="languages ours is timed on (0 = all)")
    p.add_argument("--naive-languages", type=int, default=2, help="languages the naive loop is timed on")
    p.add_argument("--disk-languages", type=int, default=12)
    p.add_argument("--memory-gb", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    p.add_argument("--part", choices=("ours", "naive", "disk"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args()
    if a.quick:
        a.languages, a.layers, a.sentences, a.hidden = 20, 3, 200, 32
        a.subset, a.naive_languages, a.disk_languages = 10, 2, 4
    if a.part:
        res = {"ours": part_ours, "naive": part_naive, "disk": part_disk}[a.part](a)
        print("JSON" + json.dumps(res))
        return 0
    parts = {}
    for part in ("ours", "naive", "disk"):
        cmd = [sys.executable, __file__, "--part", part] + [x for x in sys.argv[1:] if x != "--quick"]
        if a.quick:
            cmd.append("--quick")
        print(f"running {part} ...", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        parts[part] = json.loads(next(l for l in r.stdout.splitlines() if l.startswith("JSON"))[4:])
    ours, naive, disk = parts["ours"], parts["naive"], parts["disk"]
    diffs = {k: float(np.max(np.abs(np.array(ours["values"][k])[:, : a.naive_languages]
                                    - np.array(naive["values"][k])))) for k in naive["values"]}
    for part in (ours, naive):
        part.pop("values")
    import torch
    result = {
        "problem": {"languages": a.languages, "layers": a.layers, "sentences": a.sentences, "hidden": a.hidden,
                    "store_dtype": "float16", "data": "synthetic, generated in memory block by block (ours, naive); "
                    "written to two HDF5 stores (disk part)"},
        "ours": ours, "naive": naive, "disk": disk,
        "speedup_vs_naive": naive["seconds_all"] / ours["seconds_all"],
        "speedup_vs_naive_cpu_time": naive["cpu_seconds_all"] / ours["cpu_seconds_all"],
        "max_abs_difference_vs_naive_float64": diffs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                    "torch": torch.__version__, "gemm_gflops_fp32_now": gemm_gflops(),
                    "cuda": torch.cuda.is_available()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    L = a.languages
    print(f"\nCKA (linear + debiased + cosine), {L} languages x {a.layers} layers x {a.sentences} sentences "
          f"x {a.hidden} dims, float16")
    print(f"{'method':<38}{'timed on':>10}{'wall s (all ' + str(L) + ')':>20}{'CPU s (all)':>13}{'peak RSS MB':>13}")
    print(f"{'babelmap stream_cka (' + ours['device'] + ', fp32 acc.)':<38}{ours['languages_timed']:>10}"
          f"{ours['seconds_all']:>20.1f}{ours['cpu_seconds_all']:>13.1f}{ours['peak_rss_mb']:>13.0f}")
    print(f"{'naive NumPy loop (n x n Grams, fp64)':<38}{naive['languages_timed']:>10}"
          f"{naive['seconds_all']:>20.1f}{naive['cpu_seconds_all']:>13.1f}{naive['peak_rss_mb']:>13.0f}")
    print(f"speed-up: {result['speedup_vs_naive']:.1f}x wall, {result['speedup_vs_naive_cpu_time']:.1f}x CPU time; "
          "max |ours - naive|: "
          + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(f"end to end from disk ({disk['languages']} languages, {disk['bytes_both_stores'] / 2**20:.0f} MiB of "
          f"stores): {disk['compare_seconds']:.1f} s = {disk['seconds_per_language']:.2f} s/language "
          f"(in memory: {ours['seconds_timed'] / ours['languages_timed']:.2f} s/language)")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, fp32 GEMM now "
          f"{result['machine']['gemm_gflops_fp32_now']:.0f} GFLOP/s -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
