"""Free-space checks and size estimates, so a full disk is refused early with one clear line.

`check_free_space(path, needed, what)` raises StoreError naming the folder, the bytes needed
and the bytes free; `estimate_store_bytes(...)` is what an extraction will write (parts that
become the store's shards, plus the small index); `write_failure(...)` turns any write error
(ENOSPC as OSError, or the RuntimeError/OSError h5py raises instead) into one StoreError.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np

from babelmap.engine.errors import StoreError

MARGIN = 1.05            # estimates are rounded up by 5 % ...
SLACK_BYTES = 4 << 20    # ... plus 4 MiB (HDF5 metadata, partial chunks, the index)


def human(n: float) -> str:
    """Bytes as a short human string (`1.5 GiB`)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def existing_folder(path: str | os.PathLike) -> Path:
    """The nearest folder that exists at or above `path` (where the bytes will land)."""
    p = Path(path).absolute()
    while not p.is_dir():
        if p.parent == p:
            break
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free for this user on the file system that holds `path`."""
    return int(shutil.disk_usage(existing_folder(path)).free)


def check_free_space(path: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """StoreError when the file system holding `path` has less than `needed_bytes` free.
    `what` says what would be written ("the store", "the join", "the similarity export")."""
    needed = int(needed_bytes)
    free = free_bytes(path)
    if needed > free:
        raise StoreError(f"not enough free space for {what} in {existing_folder(path)}: needs about "
                         f"{human(needed)}, {human(free)} free; free some space or choose another --out")


def estimate_store_bytes(n_present_rows: int, n_layers: int, hidden: int, dtype: str = "float16",
                         n_languages: int = 0, n_sentences: int = 0) -> int:
    """Bytes a store of `n_present_rows` (language, sentence) rows will take on disk: the
    embeddings (rows x hidden states x hidden x itemsize), the index (mask and token counts,
    5 bytes per grid cell, and the ids), with a margin for HDF5 metadata and partial chunks."""
    item = np.dtype(dtype).itemsize
    emb = int(n_present_rows) * int(n_layers) * int(hidden) * item
    index = int(n_languages) * int(n_sentences) * 5 + 64 * (int(n_languages) + int(n_sentences))
    return int((emb + index) * MARGIN) + SLACK_BYTES


def is_disk_full(err: BaseException, path: str | os.PathLike | None = None, needed: int = 0) -> bool:
    """Whether a write error is (most likely) a full disk: ENOSPC/EDQUOT, HDF5's words for
    it, or fewer bytes free than the write needed."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(err).lower()
    if "no space left" in text or "disk quota" in text or "file too large" in text:
        return True
    if path is not None:
        try:
            return free_bytes(path) < max(needed, 1 << 20)
        except OSError:
            return False
    return False


def write_failure(err: BaseException, path: str | os.PathLike, needed: int, what: str, after: str) -> StoreError:
    """One clear StoreError for a failed write of `what` at `path` (needing `needed` bytes);
    `after` says what was kept and what to do."""
    path = Path(path)
    if is_disk_full(err, path.parent, needed):
        try:
            free = human(free_bytes(path.parent))
        except OSError:
            free = "?"
        why = f"the disk is full (needs about {human(needed)}, {free} free in {existing_folder(path.parent)})"
    else:
        why = f"writing failed ({err.__class__.__name__}: {err})"
    return StoreError(f"cannot write {what} {path}: {why}. {after}")
