"""Benchmark: the store joined by reference (index + HDF5 virtual dataset over the parts)
against the copy that the former join did, measured in the same run on the same parts.

Synthetic parts (random float16, L languages x K hidden states x S sentences x H dims, a
language cut into 2 blocks, units of 4 blocks mixing languages). Phases, interleaved A B B A:
  join-ref   engine.join.join_parts: read the parts' block tables, write the small index
             (moves the parts folder; moved back for the next repetition)
  join-copy  a full copy into one file (engine.store.pack_store: read every row, write it),
             what the join cost before (plus it re-hashed every part: see resume-hash)
  resume     engine.parts.finished_units: what a resume reads (records only)
  resume-hash  the former resume: every part re-read and re-hashed (engine.parts.verify_part)
  read-vds / read-one  kernels' access pattern: Store.block over all languages, sentence
             blocks of 8 chunk rows, through the virtual dataset vs the packed single file
  check      babelmap check (every block's sha256 recomputed, NaN/zero scans)
Pages are mostly in the page cache (just written): the read figures are not disk figures.
Writes benchmarks/results/store.json with load average and thread count.

    python benchmarks/bench_store.py                 # 64 x 13 x 2048 x 128 (436 MiB)
    python benchmarks/bench_store.py --languages 16  # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROV = {"model": "synthetic", "model_fingerprint": "ab" * 32, "pooling": "mean", "dtype": "float16",
        "max_length": 128, "prefix": "", "corpus_name": "synthetic", "corpus_fingerprint": "cd" * 32,
        "compute_dtype": "float32", "token_budget": 4096}


def make_parts(folder: Path, L: int, K: int, S: int, H: int, seed: int = 0):
    from babelmap.engine.parts import Block, write_part
    rng = np.random.default_rng(seed)
    mask = rng.random((L, S)) > 0.1
    ntok = np.where(mask, rng.integers(5, 60, (L, S)), 0).astype(np.int32)
    blocks = []
    half = S // 2
    for i in range(L):
        for a, b in ((0, half), (half, S)):
            s = a + np.flatnonzero(mask[i, a:b])
            e = rng.standard_normal((K, s.size, H), dtype=np.float32).astype(np.float16)
            blocks.append(Block(f"l{i:04d}_Latn", i, a, b, s, ntok[i, s], e))
    for u in range(0, len(blocks), 4):
        write_part(folder, f"u{u // 4:05d}", blocks[u:u + 4], PROV)
    return mask


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", type=int, default=64)
    ap.add_argument("--sentences", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "store.json"))
    args = ap.parse_args()
    from babelmap.engine.check import check_store
    from babelmap.engine.join import join_parts
    from babelmap.engine.parts import finished_units, list_parts, parts_dir, read_part_info, shards_dir, verify_part
    from babelmap.engine.store import open_store, pack_store

    L, K, S, H = args.languages, args.layers, args.sentences, args.hidden
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    out = tmp / "s.h5"
    try:
        t_make, mask = timed(lambda: make_parts(parts_dir(out), L, K, S, H))
        langs = [f"l{i:04d}_Latn" for i in range(L)]
        sids = [f"s{j}" for j in range(S)]
        kw = dict(languages=langs, sentence_ids=sids, mask=mask, provenance=PROV, n_layers=K, hidden=H,
                  store_dtype="float16", attrs=dict(PROV), progress=False)
        single = tmp / "single.h5"
        times: dict[str, list[float]] = {k: [] for k in ("join-ref", "join-copy", "resume", "resume-hash",
                                                         "read-vds", "read-one", "check")}

        def join_ref():
            if out.exists():
                out.unlink()
                os.replace(shards_dir(out), parts_dir(out))
            return timed(lambda: join_parts(parts_dir(out), out, **kw))[0]

        def join_copy():
            single.unlink(missing_ok=True)
            return timed(lambda: pack_store(out, single))[0]

        def read(path):
            def go():
                with open_store(path) as st:
                    step = st.chunk_sentences * 8
                    n = 0
                    for a in range(0, S, step):
                        n += st.block(slice(a, a + step)).nbytes
                    return n
            return timed(go)

        order = ["A", "B", "B", "A"] * args.repeat
        times["join-ref"].append(join_ref())
        times["join-copy"].append(join_copy())
        for x in order:
            if x == "A":
                times["join-ref"].append(join_ref())
                times["read-vds"].append(read(out)[0])
                folder = shards_dir(out)
                times["resume"].append(timed(lambda: finished_units(folder, PROV, tmp / "other.h5"))[0])
            else:
                times["join-copy"].append(join_copy())
                times["read-one"].append(read(single)[0])
                folder = shards_dir(out)
                times["resume-hash"].append(timed(lambda: [verify_part(read_part_info(p))
                                                           for p in list_parts(folder)])[0])
        times["check"].append(timed(lambda: check_store(out))[0])
        n_parts = len(list_parts(shards_dir(out)))
        emb_bytes = int(mask.sum()) * K * H * 2
        index_bytes = out.stat().st_size
        shard_bytes = sum(p.stat().st_size for p in list_parts(shards_dir(out)))
        med = {k: float(np.median(v[1:] if k.startswith("join") else v)) for k, v in times.items() if v}
        result = {
            "shape": {"languages": L, "hidden_states": K, "sentences": S, "hidden": H, "dtype": "float16"},
            "parts": n_parts, "blocks": 2 * L, "embedding_bytes": emb_bytes, "index_bytes": index_bytes,
            "shard_bytes": shard_bytes, "single_file_bytes": single.stat().st_size,
            "seconds_median": med, "seconds_all": times, "make_parts_seconds": t_make,
            "ratios": {"join copy / by reference": med["join-copy"] / med["join-ref"],
                       "resume re-hash / records only": med["resume-hash"] / med["resume"],
                       "read vds / single file": med["read-vds"] / med["read-one"]},
            "read_MiB_per_s": {"vds": emb_bytes / 2**20 / med["read-vds"], "single": emb_bytes / 2**20 / med["read-one"]},
            "loadavg": os.getloadavg(), "cpus": os.cpu_count(), "threads": 1,
            "machine": platform.platform(), "note": "shared machine with other jobs running; page cache warm",
        }
        print(f"store {L} x {K} x {S} x {H} float16: {emb_bytes / 2**20:.0f} MiB of embeddings in {n_parts} parts; "
              f"index {index_bytes / 2**10:.0f} KiB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'phase':<14}{'median s':>10}")
        for k, v in med.items():
            print(f"{k:<14}{v:>10.3f}")
        for k, v in result["ratios"].items():
            print(f"{k:<36}{v:>8.1f}x")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
