"""Benchmark: streamed all-layer similarity on a synthetic store, against baselines measured in
the same run.

Store: L languages x K hidden states x S sentences x H dims, float16 on disk (default 1000 x 13 x
200 x 384 = 1.9 GiB; the issue's 1000 sentences would be 9.6 GiB, use --sentences 1000).
Measured, each phase in its own subprocess (own peak RSS), interleaved sim, syrk, syrk, sim:
  sim        compute_similarity over the whole store (default CPU backend: per hidden state, a
             read into a reused buffer; the block's sentences split in one part per core, each
             part normalised by Numba and multiplied by BLAS ssyrk (one BLAS thread) on its thread)
  syrk       the floor: BLAS ssyrk alone (SciPy, its own threads) over the same data already in
             memory, the same products as sim makes (K * n_blocks products of [L, s*H] float32,
             s = sim's block), each operand contiguous (no copy by SciPy) and written into one
             reused output
  parts      sim's own floor: the same products as sim makes them (each block's s sentences in
             one part per core, ssyrk on one BLAS thread per part, the parts on their threads),
             data already in memory: what sim adds to its products is sim / parts
  tri        one triangle through torch/MKL GEMMs on blocked halves (the GPU backend's Gram,
             here on the CPU), same products
  gemm       the former floor: a full GEMM (torch/MKL) of the same products, for comparison
  read       the reads sim makes, alone: every (block, hidden state) of the store through
             `similarity._Reader` (the file was just written, so mostly from the page cache)
  sim-1layer compute_similarity asking for one hidden state (reads only that one from disk)
  before     (--before DIR) compute_similarity from the kernels/ of another checkout (a git
             worktree of an older commit), interleaved with sim: the speed-up in the same run
With --all also: the NumPy and torch-all backends on the first --backend-langs languages, and
the reference method's loop (mPLM-Sim executor: per sentence, gather every pair's vectors,
vectorised cosine, per-pair accumulation in Python) on --ref-langs languages and
--ref-sentences sentences, extrapolated by pairs and sentences.
Load average and thread counts are recorded per phase, and CPU time (all threads of the
phase's process) beside wall time: on a machine shared with other jobs, the CPU-time ratio
depends less on how the load moved between phases. Writes benchmarks/results/similarity.json.

    python benchmarks/bench_similarity.py                    # default size
    python benchmarks/bench_similarity.py --before /tmp/old  # + an older checkout's kernels
    python benchmarks/bench_similarity.py --all              # + backends and the reference loop
    python benchmarks/bench_similarity.py --sentences 1000   # the issue's full size (9.6 GiB)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _threads() -> dict:
    """Threads the BLAS libraries and torch use in this process."""
    out = {"cpus": os.cpu_count()}
    try:
        import torch
        out["torch"] = torch.get_num_threads()
    except Exception:  # pragma: no cover
        pass
    try:
        import numba
        out["numba"] = numba.get_num_threads()
    except Exception:  # pragma: no cover
        pass
    try:
        from scipy.linalg import blas  # noqa: F401
        import ctypes
        import glob
        import scipy
        libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy_openblas*", "lib", "*.so*")) + \
            glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs", "*openblas*.so*"))
        for lib in libs:
            try:
                h = ctypes.CDLL(lib)
                for sym in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                            "openblas_get_num_threads"):
                    if hasattr(h, sym):
                        out["scipy_openblas"] = int(getattr(h, sym)())
                        break
            except OSError:
                continue
    except Exception:  # pragma: no cover
        pass
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_store(path: Path, L: int, K: int, S: int, H: int, seed: int = 0) -> float:
    from babelmap.engine.store import StoreWriter
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((K, S, H), dtype=np.float32)
    t0 = time.perf_counter()
    mask = rng.random((L, S)) > 0.05                       # 5% missing sentences
    with StoreWriter(path, [f"l{i:04d}_Latn" for i in range(L)], [f"s{j}" for j in range(S)], K, H,
                     "float16", {"model": "synthetic", "pooling": "mean"}, mask, mask.astype(np.int32)) as w:
        for i in range(L):
            e = base + rng.standard_normal((K, S, H), dtype=np.float32)
            e[:, ~mask[i]] = 0
            w.write_language(i, e.astype(np.float16))
    return time.perf_counter() - t0


def use_kernels_from(folder: Path) -> None:
    """Import `babelmap.kernels` from the kernels/ folder of another checkout (the rest of
    babelmap from this one), for a before/after comparison in the same conditions."""
    import importlib.abc
    import importlib.machinery
    import importlib.util
    root = Path(folder).resolve() / "kernels"
    if not (root / "similarity.py").is_file():
        raise SystemExit(f"--before: no kernels/similarity.py under {folder}")

    class KernelsFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "babelmap.kernels":
                return importlib.util.spec_from_file_location(name, root / "__init__.py",
                                                              submodule_search_locations=[str(root)])
            if name.startswith("babelmap.kernels."):
                return importlib.machinery.PathFinder.find_spec(name, [str(root)])
            return None

    sys.meta_path.insert(0, KernelsFinder())


# --- phases (run in subprocesses) ---------------------------------------------------------
def phase_sim(a) -> dict:
    import torch  # noqa: F401  (imported before timing, as in any session that has imported babelmap)
    if a.kernels:
        use_kernels_from(a.kernels)

    from babelmap.kernels.similarity import compute_similarity, similarity_from_arrays
    # warm up outside the timing: SciPy's BLAS import and loading Numba's cached machine code
    # (~2 s once per process; the floor phases pay no such cost either)
    similarity_from_arrays(np.ones((2, 1, 3, 4), np.float16), device="cpu", backend=a.backend)
    langs = None
    if a.langs:
        from babelmap.engine.store import open_store
        with open_store(a.store) as st:
            langs = st.languages[: a.langs]
    layers = None if a.one_layer < 0 else [a.one_layer]
    c0, t0 = time.process_time(), time.perf_counter()
    r = compute_similarity(a.store, device="cpu", backend=a.backend, languages=langs, progress=False,
                           layers=layers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    off = ~np.eye(len(r.languages), dtype=bool)
    import babelmap.kernels.similarity as mod
    return {"seconds": wall, "cpu_seconds": cpu, "read_seconds_in_thread": r.attrs["read_seconds"],
            "sim_last_layer_mean": float(np.nanmean(r.sim[-1][off])), "languages": len(r.languages),
            "kernels": str(Path(mod.__file__).parent)}


def _floor_products(a):
    """(L, K, S, H, s): the shapes compute_similarity's default plan multiplies."""
    from babelmap.engine.store import open_store
    from babelmap.kernels.similarity import default_block_sentences
    with open_store(a.store) as st:
        L, K, S, H = st.shape
        s = default_block_sentences(L, K, H, np.dtype(st.dtype).itemsize, st.chunk_sentences)
    return L, K, S, H, min(s, S)


def phase_syrk(a) -> dict:
    """BLAS ssyrk alone over the same products as sim, data already in memory: each operand a
    contiguous [L, s*H] float32 matrix (its transpose is the Fortran-ordered matrix BLAS wants,
    so SciPy copies nothing), the triangle written into one reused output (overwrite_c)."""
    from scipy.linalg import blas
    L, K, S, H, s = _floor_products(a)
    rng = np.random.default_rng(0)
    flat = rng.standard_normal(L * s * H, dtype=np.float32)
    widths = sorted({min(s, S - b0) for b0 in range(0, S, s)})
    X = {}
    for w in widths:                                   # a contiguous matrix per block width
        X[w] = flat[:L * w * H].reshape(L, w * H)
        X[w] /= np.linalg.norm(X[w], axis=1, keepdims=True)
    C = np.zeros((L, L), np.float32, order="F")
    n = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for _k in range(K):
        for b0 in range(0, S, s):
            out = blas.ssyrk(1.0, X[min(s, S - b0)].T, beta=0.0, c=C, trans=1, overwrite_c=1)
            n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert np.shares_memory(out, C)                    # in place: no output allocated per product
    return {"seconds": wall, "cpu_seconds": cpu, "products": n, "block_sentences": s,
            "gflop_triangle": 1.0 * L * (L + 1) * S * H * K / 1e9}


def phase_parts(a) -> dict:
    """The products sim makes, as it makes them, data in memory (see the module docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from babelmap.kernels.numba_kernels import syrk_upper_nogil
    from babelmap.kernels.similarity import _one_blas_thread
    L, K, S, H, s = _floor_products(a)
    T = numba.get_num_threads()
    rng = np.random.default_rng(0)
    X = {}
    for b0 in range(0, S, s):                        # one contiguous operand per part width
        for p in np.array_split(np.arange(min(s, S - b0)), T):
            if len(p) not in X:
                X[len(p)] = rng.standard_normal((L, len(p) * H), dtype=np.float32)
                X[len(p)] /= np.linalg.norm(X[len(p)], axis=1, keepdims=True)
    outs = [np.zeros((L, L), np.float32) for _ in range(T)]
    n = 0
    with ThreadPoolExecutor(T) as pool, _one_blas_thread():
        c0, t0 = time.process_time(), time.perf_counter()
        for _k in range(K):
            for b0 in range(0, S, s):
                parts = np.array_split(np.arange(min(s, S - b0)), T)
                list(pool.map(lambda t: syrk_upper_nogil(X[len(parts[t])], outs[t]), range(T)))
                n += T
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": wall, "cpu_seconds": cpu, "products": n, "threads": T}


def phase_tri(a) -> dict:
    """One triangle through torch/MKL GEMMs on blocked halves (what the default backend runs),
    same products, data in memory."""
    import torch

    from babelmap.kernels.torch_kernels import syrk_upper_torch
    L, K, S, H, s = _floor_products(a)
    torch.manual_seed(0)
    X = torch.randn(L, s * H, dtype=torch.float32)
    X /= X.norm(dim=1, keepdim=True)
    G = np.zeros((L, L), np.float64)
    n = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for _k in range(K):
        for b0 in range(0, S, s):
            w = min(s, S - b0) * H
            G += syrk_upper_torch(X[:, :w].contiguous()).numpy()
            n += 1
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "products": n}


def phase_gram(a) -> dict:
    """A full GEMM (torch/MKL) of the same products: the former floor."""
    import torch
    L, K, S, H, s = _floor_products(a)
    torch.manual_seed(0)
    X = torch.randn(L, s * H, dtype=torch.float32)
    X /= X.norm(dim=1, keepdim=True)
    G = torch.zeros(L, L, dtype=torch.float64)
    n = 0
    t0 = time.perf_counter()
    for _k in range(K):
        for b0 in range(0, S, s):
            w = min(s, S - b0) * H
            Xb = X[:, :w]
            G += (Xb @ Xb.T).double()
            n += 1
    return {"seconds": time.perf_counter() - t0, "products": n, "gflop": 2.0 * L * L * S * H * K / 1e9}


def phase_read(a) -> dict:
    """The reads sim makes, without the compute: every (block, hidden state) through the
    kernel's reader (one read of prefetch, two reused buffers)."""
    from babelmap.engine.store import open_store
    from babelmap.kernels.similarity import _Reader, default_block_sentences, plan_blocks, select_sentences
    n = 0
    c0, t0 = time.process_time(), time.perf_counter()
    with open_store(a.store) as st:
        L, K, S, H = st.shape
        bs = default_block_sentences(L, K, H, np.dtype(st.dtype).itemsize, st.chunk_sentences)
        plan = plan_blocks(select_sentences(st.sentence_ids, None), st.chunk_sentences, bs)
        for _, _, _, layers in _Reader(st, plan, None, list(range(K))):
            for raw in layers:
                n += raw.nbytes
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "bytes": n}


def reference_loop(lang2emb: dict, langs: list[str], S: int, K: int) -> np.ndarray:
    """The mPLM-Sim executor's similarity loop (mplm_sim/executor.py, `run`): per sentence, the
    vectors of every pair and layer are gathered in Python, cosines computed in one vectorised
    call, and accumulated per pair in Python. (The original accumulates into pandas DataFrames
    through chained assignment, which pandas >= 3 no longer supports; a dict of arrays is used
    instead, which is faster, so the ratio below is conservative.)"""
    from numpy.linalg import norm
    acc = np.zeros((K, len(langs), len(langs)))
    pos = {l: i for i, l in enumerate(langs)}
    for sent_id in range(S):
        emb1, emb2 = [], []
        for layer_id in range(K):
            for lang1 in langs:
                for lang2 in langs:
                    if lang2 <= lang1:
                        continue
                    emb1.append(lang2emb[lang1][sent_id][layer_id])
                    emb2.append(lang2emb[lang2][sent_id][layer_id])
        emb1, emb2 = np.array(emb1), np.array(emb2)
        sim = np.sum(emb1 * emb2, axis=1) / (norm(emb1, axis=1) * norm(emb2, axis=1))
        sim_id = 0
        for layer_id in range(K):
            for lang1 in langs:
                for lang2 in langs:
                    if lang2 <= lang1:
                        continue
                    acc[layer_id, pos[lang1], pos[lang2]] += sim[sim_id]
                    acc[layer_id, pos[lang2], pos[lang1]] += sim[sim_id]
                    sim_id += 1
    return acc / S


def phase_reference(a) -> dict:
    from babelmap.engine.store import open_store
    with open_store(a.store) as st:
        langs = st.languages[: a.ref_langs]
        S = min(a.ref_sentences, st.shape[2])
        K = st.shape[1]
        # the reference keeps embs as Sent Num * Layer Num * Hidden Size lists of float32 vectors
        lang2emb = {}
        for l in langs:
            e = st.block(slice(0, S), languages=[l])[0].astype(np.float32)   # [K, S, H]
            lang2emb[l] = [[e[k, s] for k in range(K)] for s in range(S)]
    t0 = time.perf_counter()
    reference_loop(lang2emb, langs, S, K)
    return {"seconds": time.perf_counter() - t0, "languages": len(langs), "sentences": S}


PHASES = {"sim": phase_sim, "syrk": phase_syrk, "parts": phase_parts, "tri": phase_tri, "gram": phase_gram,
          "read": phase_read, "reference": phase_reference}


def run_phase(name: str, a, **extra) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--store", str(a.store),
           "--ref-langs", str(a.ref_langs), "--ref-sentences", str(a.ref_sentences)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    load_before = os.getloadavg()[0]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["load_1min_before"], res["load_1min_after"] = load_before, os.getloadavg()[0]
    label = name + ("" if not extra else " " + " ".join(f"{k}={v}" for k, v in extra.items()))
    cpu = f"CPU {res['cpu_seconds']:6.2f} s" if "cpu_seconds" in res else " " * 12
    print(f"  {label[:40]:40s} {res['seconds']:8.2f} s  {cpu}  peak RSS {res['peak_rss_mib']:7.0f} MiB  "
          f"load {load_before:.1f} -> {res['load_1min_after']:.1f}", flush=True)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--languages", type=int, default=1000)
    p.add_argument("--layers", type=int, default=13)
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--store", type=Path, default=Path("/tmp/babelmap-bench-similarity.h5"))
    p.add_argument("--keep", action="store_true", help="keep the synthetic store (default: delete it)")
    p.add_argument("--ref-langs", type=int, default=10)
    p.add_argument("--ref-sentences", type=int, default=50)
    p.add_argument("--backend-langs", type=int, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "similarity.json")
    p.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    p.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    p.add_argument("--langs", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--one-layer", type=int, default=-1, help=argparse.SUPPRESS)
    p.add_argument("--kernels", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--before", type=Path, default=None, metavar="DIR",
                   help="also time compute_similarity from DIR/kernels (another checkout, e.g. a git worktree "
                        "of an older commit), interleaved with the current one")
    p.add_argument("--repeats", type=int, default=1, help="sim/syrk A B B A rounds (1)")
    p.add_argument("--all", action="store_true", help="also the backend comparison and the reference loop")
    a = p.parse_args()
    if a.phase:
        res = PHASES[a.phase](a)
        res["peak_rss_mib"] = peak_rss_mib()
        res["threads"] = _threads()
        print(json.dumps(res))
        return 0

    L, K, S, H = a.languages, a.layers, a.sentences, a.hidden
    size = L * K * S * H * 2
    print(f"synthetic store {L} languages x {K} layers x {S} sentences x {H} dims float16 "
          f"({size / 2**30:.2f} GiB) at {a.store}", flush=True)
    if a.store.exists():
        from babelmap.engine.store import open_store
        with open_store(a.store) as st:
            ok = st.shape == (L, K, S, H)
        if not ok:
            a.store.unlink()
    write_s = None
    if not a.store.exists():
        write_s = make_store(a.store, L, K, S, H)
        print(f"  written in {write_s:.1f} s", flush=True)
    try:
        order = ["sim", "syrk", "parts", "tri", "gram", "read", "read", "gram", "tri", "parts", "syrk", "sim"]
        order += ["sim", "syrk", "parts", "parts", "syrk", "sim"] * (a.repeats - 1)    # A B C ... C B A
        if a.before:                                     # sim before syrk ... syrk before sim
            order = order[:1] + ["before"] + order[1:-1] + ["before"] + order[-1:]
        runs: dict[str, list] = {}
        for name in order:
            if name == "before":
                runs.setdefault(name, []).append(run_phase("sim", a, kernels=a.before.resolve()))
            else:
                runs.setdefault(name, []).append(run_phase(name, a))
        one = run_phase("sim", a, one_layer=K - 1)
        extra = {}
        if a.all:
            bl = min(a.backend_langs, L)
            extra["reference"] = run_phase("reference", a)
            extra["sim_hybrid_subset"] = run_phase("sim", a, backend="hybrid", langs=bl)
            extra["sim_numpy_subset"] = run_phase("sim", a, backend="numpy", langs=bl)
            extra["sim_torch_all_subset"] = run_phase("sim", a, backend="torch-all", langs=bl)
    finally:
        if not a.keep:
            a.store.unlink(missing_ok=True)

    mean = lambda name: float(np.mean([r["seconds"] for r in runs[name]]))   # noqa: E731
    sim, syrk, gemm, read, tri = mean("sim"), mean("syrk"), mean("gram"), mean("read"), mean("tri")
    floor = min(syrk, tri)
    from babelmap.engine.store import sentence_chunk
    c = sentence_chunk(K, H, 2, S)
    bound_mib = (2 * L * c * H * 2 + L * c * H * 4 + L * L * 4 + (K + 1) * L * L * 8) / 2**20
    loads = [r["load_1min_before"] for rs in runs.values() for r in rs]
    summary = {
        "config": {"languages": L, "layers": K, "sentences": S, "hidden": H, "store_dtype": "float16",
                   "store_gib": size / 2**30, "chunk_sentences": c, "missing_fraction": 0.05,
                   "block_sentences": runs["syrk"][0]["block_sentences"]},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "threads": runs["sim"][0].get("threads"),
                    "load_1min_range": [min(loads), max(loads)], "load_average_at_end": os.getloadavg(),
                    "note": "2 cores shared with other jobs (7 other sessions building and testing)"},
        "order": order,
        "store_write_seconds": write_s,
        "phases": runs,
        "sim_one_layer": one,
        "sim_seconds": sim, "syrk_seconds": syrk, "gemm_seconds": gemm, "read_seconds": read,
        "sim_peak_rss_mib": max(r["peak_rss_mib"] for r in runs["sim"]),
        "memory_bound_mib": bound_mib,
        "ratio_to_syrk_floor": sim / syrk,
        "tri_seconds": tri,
        "floor_seconds": floor, "floor_is": "ssyrk" if syrk <= tri else "torch triangle",
        "ratio_to_floor": sim / floor,
        "ratio_to_syrk_floor_per_pair": [x["seconds"] / y["seconds"] for x, y in zip(runs["sim"], runs["syrk"])],
        "ratio_to_syrk_floor_cpu_time": float(np.mean([r["cpu_seconds"] for r in runs["sim"]])
                                              / np.mean([r["cpu_seconds"] for r in runs["syrk"]])),
        "ratio_to_floor_cpu_time": float(np.mean([r["cpu_seconds"] for r in runs["sim"]])
                                         / min(np.mean([r["cpu_seconds"] for r in runs["syrk"]]),
                                               np.mean([r["cpu_seconds"] for r in runs["tri"]]))),
        "ratio_to_syrk_floor_median_pair": float(np.median([x["seconds"] / y["seconds"]
                                                            for x, y in zip(runs["sim"], runs["syrk"])])),
        "target_ratio": 1.2,
        "syrk_over_gemm": syrk / gemm,
        "one_layer_over_all_layers": one["seconds"] / sim,
        "syrk_gflops_triangle": runs["syrk"][0]["gflop_triangle"] / syrk,
        **extra,
    }
    parts = mean("parts")
    parts_cpu = float(np.mean([r["cpu_seconds"] for r in runs["parts"]]))
    sim_cpu = float(np.mean([r["cpu_seconds"] for r in runs["sim"]]))
    summary.update(parts_seconds=parts, parts_cpu_seconds=parts_cpu, ratio_to_own_products=sim / parts,
                   ratio_to_own_products_cpu_time=sim_cpu / parts_cpu)
    if a.before:
        before = mean("before")
        before_cpu = float(np.mean([r["cpu_seconds"] for r in runs["before"]]))
        summary.update(before_kernels=str(a.before.resolve()), before_seconds=before,
                       before_ratio_to_syrk_floor=before / syrk,
                       before_ratio_to_syrk_floor_cpu_time=before_cpu
                       / float(np.mean([r["cpu_seconds"] for r in runs["syrk"]])),
                       speedup_over_before=before / sim)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(summary, indent=2))
    rows = [
        ("similarity (streamed, default CPU backend)", f"{sim:.1f} s",
         f"{summary['sim_peak_rss_mib']:.0f} MiB peak"),
        ("BLAS ssyrk alone, same products, in memory", f"{syrk:.1f} s",
         f"{summary['syrk_gflops_triangle']:.0f} GFLOP/s (triangle)"),
        (f"ratio to the syrk floor (means of {len(runs['sim'])}, interleaved)", f"{summary['ratio_to_syrk_floor']:.2f}x",
         "target <= 1.2x; per pair " + " / ".join(f"{x:.2f}" for x in summary["ratio_to_syrk_floor_per_pair"])
         + f" (median {summary['ratio_to_syrk_floor_median_pair']:.2f})"),
        ("ratio to the syrk floor in CPU time (all threads)", f"{summary['ratio_to_syrk_floor_cpu_time']:.2f}x",
         "less sensitive to the other jobs' load than wall time"),
        ("one triangle via torch/MKL blocked halves, same", f"{tri:.1f} s",
         f"ratio sim / min(syrk, this) = {summary['ratio_to_floor']:.2f}x wall, "
         f"{summary['ratio_to_floor_cpu_time']:.2f}x CPU time"),
        ("full GEMM (torch/MKL), same products", f"{gemm:.1f} s", f"syrk/gemm {summary['syrk_over_gemm']:.2f}"),
        ("the reads sim makes, alone", f"{read:.1f} s",
         f"{float(np.mean([r['cpu_seconds'] for r in runs['read']])):.1f} s CPU"),
        (f"similarity, one hidden state ({K - 1})", f"{one['seconds']:.1f} s",
         f"{summary['one_layer_over_all_layers']:.2f} of all {K}"),
        ("load average (1 min) over the phases", f"{min(loads):.1f}-{max(loads):.1f}",
         f"threads {summary['machine']['threads']}"),
        ("memory bound (docstring formula)", f"{bound_mib:.0f} MiB", ""),
    ]
    rows.insert(4, ("sim's own products alone (parts per core), in memory", f"{parts:.1f} s",
                    f"sim / this = {sim / parts:.2f}x wall, {sim_cpu / parts_cpu:.2f}x CPU time "
                    f"(what the reads and the element-wise pass add)"))
    if a.before:
        rows.insert(1, (f"  before: kernels of {a.before}", f"{summary['before_seconds']:.1f} s",
                        f"{summary['before_ratio_to_syrk_floor']:.2f}x the floor wall, "
                        f"{summary['before_ratio_to_syrk_floor_cpu_time']:.2f}x CPU; now "
                        f"{summary['speedup_over_before']:.2f}x faster"))
    if "reference" in extra:
        ref = extra["reference"]
        pairs_full, pairs_ref = L * (L - 1) / 2, ref["languages"] * (ref["languages"] - 1) / 2
        ref_extrap = ref["seconds"] * (pairs_full / pairs_ref) * (S / ref["sentences"])
        summary["reference_seconds_extrapolated"] = ref_extrap
        summary["speedup_vs_reference"] = ref_extrap / sim
        a.out.write_text(json.dumps(summary, indent=2))
        rows.append((f"reference loop extrapolated to {L} x {S}", f"{ref_extrap / 3600:.1f} h",
                     f"{summary['speedup_vs_reference']:.0f}x slower"))
        rows.append((f"CPU backends on {extra['sim_hybrid_subset']['languages']} langs: hybrid / numpy / torch-all",
                     f"{extra['sim_hybrid_subset']['seconds']:.1f} s",
                     f"{extra['sim_numpy_subset']['seconds']:.1f} s / {extra['sim_torch_all_subset']['seconds']:.1f} s"))
    w = max(len(r[0]) for r in rows)
    print()
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>10}  {r[2]}")
    print(f"\nwritten {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
