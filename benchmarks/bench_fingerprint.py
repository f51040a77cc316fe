"""Benchmark: the full-content model fingerprint of a ~100 MB safetensors file.

Cold (streamed sha256 of every byte, the cache entry absent) against a rerun (the digest taken
from the babelmap cache by path, size and mtime_ns), interleaved A B B A, against the old
size + first/last MiB hash as the peer. The page cache is warm for every row (the file was
just written), so "cold" measures hashing, not the disk. Prints a table, writes
benchmarks/results/fingerprint.json.

    python benchmarks/bench_fingerprint.py [--mib 100] [--repeats 3]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json  # noqa: E402


def old_style(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(str(os.path.getsize(path)).encode() + fh.read(1 << 20))
        fh.seek(-(1 << 20), 2)
        h.update(fh.read())
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    work = Path(tempfile.mkdtemp(prefix="bench-fp-"))
    os.environ["BABELMAP_CACHE"] = str(work / "cache")
    from babelmap.engine.models.fingerprint import _entry_path, fingerprint_dir

    try:
        folder = work / "model"
        folder.mkdir()
        g = torch.Generator().manual_seed(0)
        save_file({f"w{i}": torch.randn(256, 1024, generator=g) for i in range(args.mib)},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text('{"model_type": "bert"}')
        weights = folder / "model.safetensors"
        size = weights.stat().st_size

        def cold():
            _entry_path(os.path.realpath(weights)).unlink(missing_ok=True)
            return fingerprint_dir(folder)

        rows = {"full content, cold (hash every byte)": [], "full content, rerun (cache hit)": [],
                "old: size + first/last MiB (peer)": []}
        fns = {"full content, cold (hash every byte)": cold,
               "full content, rerun (cache hit)": lambda: fingerprint_dir(folder),
               "old: size + first/last MiB (peer)": lambda: old_style(weights)}
        order = list(rows) + list(rows)[::-1]  # A B C C B A
        for _ in range(args.repeats):
            for name in order:
                t = time.perf_counter()
                fns[name]()
                rows[name].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in rows.items()}
        load = os.getloadavg()[0]
        print(f"file {size / 1e6:.1f} MB, load average {load:.1f}, best of {2 * args.repeats}")
        print(f"{'method':42s} {'seconds':>9s} {'MB/s':>9s} {'vs cache hit':>12s}")
        for k, v in best.items():
            print(f"{k:42s} {v:9.4f} {size / 1e6 / v:9.0f} {v / best['full content, rerun (cache hit)']:11.0f}x")
        write_json("fingerprint", {"file_bytes": size, "load_average_1min": load, "times_s": rows,
                                   "best_s": best, "torch_threads": torch.get_num_threads()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
