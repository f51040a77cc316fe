"""Helpers shared by the extraction tests: a small plain corpus on disk, running
`python -m babelmap ...` as a real subprocess, and comparing two stores."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORDS = {
    "eng_Latn": "In the beginning was the Word and the Word was with God the quick brown fox".split(),
    "deu_Latn": "Der schnelle braune Fuchs springt über den faulen Hund am Anfang war das Wort".split(),
    "fra_Latn": "Au commencement était la Parole et la Parole était avec Dieu le renard".split(),
    "rus_Cyrl": "Быстрая коричневая лиса прыгает через ленивую собаку в начале было Слово".split(),
    "ell_Grek": "Η γρήγορη καφέ αλεπού πηδά πάνω από το τεμπέλικο σκυλί εν αρχή ην ο λόγος".split(),
}


def corpus_rows(langs=("deu_Latn", "eng_Latn", "fra_Latn", "rus_Cyrl"), n: int = 20, seed: int = 0,
                missing: float = 0.15, long: dict | None = None) -> dict[str, list[str | None]]:
    """Random sentences per language (None = missing); `long={lang: factor}` makes a
    language's sentences `factor` times longer (a heavy language for balancing)."""
    rng = random.Random(seed)
    rows = {}
    for lang in langs:
        words = WORDS[lang]
        f = (long or {}).get(lang, 1)
        row = []
        for j in range(n):
            if j > 0 and rng.random() < missing:
                row.append(None)
                continue
            k = rng.randint(1, 10) * f
            row.append(" ".join(rng.choice(words) for _ in range(k)) + f" {j}.")
        rows[lang] = row
    return rows


def write_plain(folder: Path, rows: dict[str, list[str | None]]) -> Path:
    """A plain line-aligned corpus folder: `<lang>.txt`, an empty line = missing."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, row in rows.items():
        (folder / f"{lang}.txt").write_text("".join((t or "") + "\n" for t in row), encoding="utf-8")
    return folder


def env(tmp: Path, **extra: str) -> dict:
    e = dict(os.environ)
    # one thread per process: the tiny models gain nothing from more, and on a shared machine
    # spinning OpenMP threads make each forward 10-30x slower
    e.setdefault("OMP_NUM_THREADS", "1")
    e.update({"BABELMAP_CACHE": str(tmp / "cache"), "TOKENIZERS_PARALLELISM": "false",
              "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    for k in [k for k in e if k.startswith("BABELMAP_TEST_")]:
        del e[k]
    e.update(extra)
    return e


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """In-process extractions on one torch thread (restored afterwards); see `env`."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def babelmap(args: list[str], tmp: Path, timeout: int = 120, launcher: list[str] | None = None,
             **hooks: str) -> subprocess.CompletedProcess:
    """Run `python -m babelmap ARGS` (or under `launcher`) as a real subprocess."""
    cmd = (launcher or [sys.executable]) + ["-m", "babelmap"] + list(args)
    return subprocess.run(cmd, cwd=str(tmp), env=env(tmp, **hooks), capture_output=True, text=True,
                          timeout=timeout)


def extract_args(corpus: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["extract", "--corpus", str(corpus), "--format", "plain", "--model", str(model), "--device", "cpu",
            "--token-budget", "64", "--no-progress", "--out", str(out), *extra]


def read_store(path: Path) -> tuple[dict, dict]:
    """(arrays, attributes) of a store file, read raw with h5py: every dataset (the
    by-reference /embeddings read through its virtual mapping), by its path."""
    arrays = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                value = obj[()]
                if name == "blocks/shard":  # `<store name>.shards/<part>`: the part names must agree
                    value = np.array([v.split(b"/", 1)[-1] for v in value], dtype=object)
                arrays[name] = value
        f.visititems(visit)
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    return arrays, attrs


def assert_same_store(a: Path, b: Path, ignore=("command", "created", "shards")) -> None:
    """Same arrays bit for bit and the same attributes except `ignore` (when and how it was
    run, and the shard folder, which is named after the store)."""
    xa, aa = read_store(a)
    xb, ab = read_store(b)
    assert sorted(xa) == sorted(xb)
    for k in xa:
        assert xa[k].dtype == xb[k].dtype and xa[k].shape == xb[k].shape, k
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    for k in ignore:
        aa.pop(k, None)
        ab.pop(k, None)
    assert aa == ab


def parts_written(proc: subprocess.CompletedProcess) -> int:
    """Parts this run wrote, from its `process N wrote M parts` log line (-v)."""
    import re
    return sum(int(m) for m in re.findall(r"process \d+ wrote (\d+) parts", proc.stderr))
