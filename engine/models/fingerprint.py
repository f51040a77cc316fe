"""A model's fingerprint: sha256 over the whole content of its config, tokenizer and weight files.

Every byte counts (a tensor changed in the middle of a file of the same size changes it). Each
file's sha256 is streamed once and kept in the babelmap cache under its real path, size and
mtime_ns, so a rerun on unchanged files reads no weights. For a hub snapshot the commit is
hashed in too.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from babelmap.engine.cache import cache_dir

FINGERPRINT_VERSION = "content-sha256-v1"
HASHED_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".model", ".txt", ".tiktoken")
"""Files of a checkpoint folder that decide its outputs (config, tokenizer, weights)."""
SKIPPED_NAMES = {"babelmap_model.json"}  # its prefix is recorded on its own
BLOCK = 1 << 24  # 16 MiB reads


def _entry_path(real: str) -> Path:
    return cache_dir("fingerprints") / (hashlib.sha256(real.encode()).hexdigest()[:32] + ".json")


def file_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """sha256 of a file's whole content, cached by (real path, size, mtime_ns)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = {"path": real, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    entry = _entry_path(real)
    if use_cache:
        try:
            cached = json.loads(entry.read_text(encoding="utf-8"))
            if {k: cached.get(k) for k in key} == key and len(str(cached.get("sha256", ""))) == 64:
                return str(cached["sha256"])
        except (OSError, ValueError):
            pass
    h = hashlib.sha256()
    with open(real, "rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    digest = h.hexdigest()
    if use_cache and os.stat(real).st_mtime_ns == st.st_mtime_ns:  # unchanged while we read it
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({**key, "sha256": digest}), encoding="utf-8")
            os.replace(tmp, entry)
        except OSError:  # a read-only cache only costs speed
            tmp.unlink(missing_ok=True)
    return digest


def hashed_files(folder: str | os.PathLike) -> list[Path]:
    """The files of a checkpoint folder (top level) that go into its fingerprint, sorted by name."""
    folder = Path(folder)
    return sorted(f for f in folder.iterdir()
                  if f.suffix in HASHED_SUFFIXES and f.name not in SKIPPED_NAMES and f.is_file())


def fingerprint_dir(folder: str | os.PathLike, commit: str = "", use_cache: bool = True) -> str:
    """sha256 over each hashed file's name and content sha256 (and the hub commit, if any)."""
    files = hashed_files(folder)
    workers = max(1, min(len(files), os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(workers) as pool:  # sha256 releases the GIL: shards hash in parallel
        digests = list(pool.map(lambda f: file_sha256(f, use_cache), files))
    h = hashlib.sha256(FINGERPRINT_VERSION.encode())
    if commit:
        h.update(f"\0commit={commit}".encode())
    for f, digest in zip(files, digests):
        h.update(f"\0{f.name}={digest}".encode())
    return h.hexdigest()
