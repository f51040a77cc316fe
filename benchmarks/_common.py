"""Helpers shared by the benchmark scripts: peak-RSS sampling, machine facts, JSON output."""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(os.environ.get("BABELMAP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@contextmanager
def peak_rss(interval: float = 0.02):
    """Sample this process's RSS (plus its children's) while the block runs; yields a dict
    whose 'peak_mib' is filled in on exit."""
    proc = psutil.Process()
    out = {"peak_mib": 0.0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss = proc.memory_info().rss
            for c in proc.children(recursive=True):
                try:
                    rss += c.memory_info().rss
                except psutil.Error:
                    pass
            out["peak_mib"] = max(out["peak_mib"], rss / 2**20)
            time.sleep(interval)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()


def machine() -> dict:
    import torch
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")
    return path
