"""Benchmark: streamed all-layer similarity on a synthetic store, against baselines measured in
the same run.

Store: L languages x K hidden states x S sentences x H dims, float16 on disk (default 1000 x 13 x
200 x 384 = 1.9 GiB; the issue's 1000 sentences would be 9.6 GiB, use --sentences 1000).
Measured, each phase in its own subprocess (own peak RSS):
  sim        compute_similarity over the whole store (default CPU backend: torch/MKL)
  sim-numpy  the same with the NumPy/OpenBLAS backend on the first --backend-langs languages,
  sim-torch  ... and with torch, same subset (which CPU backend is faster)
  gram       bare BLAS Gram of the same total size (K * S/c products of [L, c*H] in float32,
             data already in memory, normalised): the compute floor
  read       one sequential read of the store (every chunk row through h5py, no compute): the
             I/O floor (the file was just written, so mostly from the page cache; stated)
  reference  the reference method's loop (mPLM-Sim executor: per sentence, gather every pair's
             vectors, vectorised cosine, per-pair accumulation in Python), on --ref-langs
             languages and --ref-sentences sentences, extrapolated by pairs and sentences
Writes benchmarks/results/similarity.json and prints a table.

    python benchmarks/bench_similarity.py                    # default size
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


# --- phases (run in subprocesses) ---------------------------------------------------------
def phase_sim(a) -> dict:
    import torch  # noqa: F401  (imported before timing, as in any session that has imported babelmap)

    from babelmap.kernels.similarity import compute_similarity
    langs = None
    if a.langs:
        from babelmap.engine.store import open_store
        with open_store(a.store) as st:
            langs = st.languages[: a.langs]
    t0 = time.perf_counter()
    r = compute_similarity(a.store, device="cpu", backend=a.backend, languages=langs, progress=False)
    wall = time.perf_counter() - t0
    off = ~np.eye(len(r.languages), dtype=bool)
    return {"seconds": wall, "read_seconds_in_thread": r.attrs["read_seconds"],
            "sim_last_layer_mean": float(np.nanmean(r.sim[-1][off])), "languages": len(r.languages)}


def phase_gram(a) -> dict:
    import torch
    from babelmap.engine.store import open_store
    with open_store(a.store) as st:
        L, K, S, H = st.shape
        c = st.chunk_sentences
    torch.manual_seed(0)
    X = torch.randn(L, c * H, dtype=torch.float32)
    X /= X.norm(dim=1, keepdim=True)
    G = torch.zeros(L, L, dtype=torch.float64)
    n_blocks = -(-S // c)
    t0 = time.perf_counter()
    for _k in range(K):
        for b in range(n_blocks):
            w = min(c, S - b * c) * H
            Xb = X[:, :w]
            G += (Xb @ Xb.T).double()
    return {"seconds": time.perf_counter() - t0, "products": K * n_blocks,
            "gflop": 2.0 * L * L * S * H * K / 1e9}


def phase_read(a) -> dict:
    from babelmap.engine.store import open_store
    t0 = time.perf_counter()
    n = 0
    with open_store(a.store) as st:
        S, c = st.shape[2], st.chunk_sentences
        for s0 in range(0, S, c):
            n += st.block(slice(s0, min(S, s0 + c))).nbytes
    return {"seconds": time.perf_counter() - t0, "bytes": n}


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


PHASES = {"sim": phase_sim, "gram": phase_gram, "read": phase_read, "reference": phase_reference}


def run_phase(name: str, a, **extra) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--store", str(a.store),
           "--ref-langs", str(a.ref_langs), "--ref-sentences", str(a.ref_sentences)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {name:10s} {res['seconds']:8.2f} s  peak RSS {res['peak_rss_mib']:7.0f} MiB", flush=True)
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
    a = p.parse_args()
    if a.phase:
        res = PHASES[a.phase](a)
        res["peak_rss_mib"] = peak_rss_mib()
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
        res = {"sim": run_phase("sim", a), "read": run_phase("read", a), "gram": run_phase("gram", a),
               "reference": run_phase("reference", a)}
        bl = min(a.backend_langs, L)
        res["sim_torch_subset"] = run_phase("sim", a, backend="torch", langs=bl)
        res["sim_numpy_subset"] = run_phase("sim", a, backend="numpy", langs=bl)
    finally:
        if not a.keep:
            a.store.unlink(missing_ok=True)

    sim = res["sim"]["seconds"]
    floor = max(res["gram"]["seconds"], res["read"]["seconds"])
    ref = res["reference"]
    pairs_full, pairs_ref = L * (L - 1) / 2, ref["languages"] * (ref["languages"] - 1) / 2
    ref_extrap = ref["seconds"] * (pairs_full / pairs_ref) * (S / ref["sentences"])
    from babelmap.engine.store import sentence_chunk
    c = sentence_chunk(K, H, 2, S)
    bound_mib = (2 * L * K * c * H * 2 + 3 * L * c * H * 4 + (K + 1) * L * L * 8) / 2**20
    summary = {
        "config": {"languages": L, "layers": K, "sentences": S, "hidden": H, "store_dtype": "float16",
                   "store_gib": size / 2**30, "chunk_sentences": c, "missing_fraction": 0.05},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg(), "note": "2 cores shared with other jobs"},
        "store_write_seconds": write_s,
        "phases": res,
        "sim_seconds": sim,
        "sim_peak_rss_mib": res["sim"]["peak_rss_mib"],
        "memory_bound_mib": bound_mib,
        "floor_seconds": floor,
        "floor_is": "gram" if res["gram"]["seconds"] >= res["read"]["seconds"] else "read",
        "ratio_to_floor": sim / floor,
        "target_ratio": 1.5,
        "gram_gflops": res["gram"]["gflop"] / res["gram"]["seconds"],
        "reference_seconds_measured": ref["seconds"],
        "reference_seconds_extrapolated": ref_extrap,
        "speedup_vs_reference": ref_extrap / sim,
        "cpu_backend_subset": {"languages": bl, "torch_seconds": res["sim_torch_subset"]["seconds"],
                               "numpy_seconds": res["sim_numpy_subset"]["seconds"]},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(summary, indent=2))
    rows = [
        ("similarity (streamed, torch CPU)", f"{sim:.1f} s", f"{res['sim']['peak_rss_mib']:.0f} MiB"),
        ("bare BLAS Gram, same size", f"{res['gram']['seconds']:.1f} s", f"{summary['gram_gflops']:.0f} GFLOP/s"),
        ("sequential read of the store", f"{res['read']['seconds']:.1f} s",
         f"{res['read']['bytes'] / 2**30 / res['read']['seconds']:.2f} GiB/s"),
        ("ratio to max(Gram, read)", f"{summary['ratio_to_floor']:.2f}x", "target <= 1.5x"),
        (f"reference loop, {ref['languages']} langs x {ref['sentences']} sents", f"{ref['seconds']:.1f} s", ""),
        (f"reference extrapolated to {L} x {S}", f"{ref_extrap / 3600:.1f} h",
         f"{summary['speedup_vs_reference']:.0f}x slower"),
        (f"CPU backends on {bl} langs: torch / numpy", f"{res['sim_torch_subset']['seconds']:.1f} s",
         f"{res['sim_numpy_subset']['seconds']:.1f} s"),
        ("memory bound (docstring formula)", f"{bound_mib:.0f} MiB", ""),
    ]
    w = max(len(r[0]) for r in rows)
    print()
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>10}  {r[2]}")
    print(f"\nwritten {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
