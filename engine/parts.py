"""Part files: one small HDF5 file per finished unit of work, in `<store>.parts/`.

A part is written under a temporary name, flushed, fsynced and atomically renamed, so a
file with a part name is a finished unit and anything else (a `.tmp-` file, or nothing)
is work to redo. Each part carries the run's provenance, its unit (language, batch range,
sentence indices) and a sha256 checksum of its arrays, so a resumed run and the join can
tell a good part from a corrupt, truncated or foreign one.

Layout: `/sentences` int64 [n] (positions on the corpus sentence axis), `/n_tokens` int32 [n],
`/embeddings` [K, n, H] in the store dtype; attributes as in `part_attrs`.

Test hooks (environment, per process; used by the fault tests with real subprocesses):
`BABELMAP_TEST_KILL_AFTER_PARTS=N` SIGKILLs the process right after its N-th rename,
`BABELMAP_TEST_KILL_BEFORE_RENAME=N` right before it (the temporary file stays behind),
`BABELMAP_TEST_ENOSPC_AT_PART=N` makes the N-th write fail as a full disk would.
"""
from __future__ import annotations

import errno
import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from babelmap.engine.store import PROVENANCE_KEYS

PART_FORMAT = "babelmap.part"
PART_VERSION = 1
# `dtype` is the stored dtype (as in the store); `compute_dtype` the forward precision.
PART_KEYS = tuple(PROVENANCE_KEYS) + ("compute_dtype", "token_budget")
TMP_MARK = ".tmp-"

_written = 0  # parts renamed into place by this process (for the test hooks)


def reset_test_counter() -> None:
    """Start counting parts for the test hooks afresh (once per extraction run)."""
    global _written
    _written = 0


class BadPart(Exception):
    """A part file that cannot be trusted (unreadable, truncated, checksum or shape wrong)."""


@dataclass
class Part:
    """A part's unit and attributes; arrays are read on demand with `read_arrays`."""

    path: Path
    attrs: dict

    @property
    def lang(self) -> str:
        return str(self.attrs["language"])

    @property
    def batch_range(self) -> tuple[int, int]:
        return int(self.attrs["batch_start"]), int(self.attrs["batch_stop"])


def parts_dir(out: str | os.PathLike) -> Path:
    """`<store>.parts/` beside the store."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def is_tmp(path: Path) -> bool:
    return TMP_MARK in path.name


def checksum(sentences: np.ndarray, n_tokens: np.ndarray, emb: np.ndarray) -> str:
    """sha256 over shapes, dtypes and bytes of the three arrays."""
    h = hashlib.sha256()
    for a in (sentences, n_tokens, emb):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _env_n(name: str) -> int | None:
    v = os.environ.get(name)
    return int(v) if v else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_part(folder: Path, filename: str, sentences: np.ndarray, n_tokens: np.ndarray, emb: np.ndarray,
               attrs: Mapping) -> Path:
    """Write one finished unit atomically: temp name, flush, fsync, rename, fsync the folder.
    On any error the temporary file is removed and the error re-raised."""
    global _written
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / filename
    tmp = folder / f".{filename}{TMP_MARK}{os.getpid()}"
    sentences = np.asarray(sentences, np.int64)
    n_tokens = np.asarray(n_tokens, np.int32)
    nth = _written + 1
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("sentences", data=sentences)
            f.create_dataset("n_tokens", data=n_tokens)
            if _env_n("BABELMAP_TEST_ENOSPC_AT_PART") == nth:
                raise OSError(errno.ENOSPC, f"No space left on device (simulated) writing {tmp}")
            f.create_dataset("embeddings", data=emb)
            for k, v in attrs.items():
                f.attrs[k] = "" if v is None else v
            f.attrs["format"] = PART_FORMAT
            f.attrs["part_version"] = PART_VERSION
            f.attrs["checksum"] = checksum(sentences, n_tokens, emb)
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if _env_n("BABELMAP_TEST_KILL_BEFORE_RENAME") == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    _written = nth
    if _env_n("BABELMAP_TEST_KILL_AFTER_PARTS") == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return final


def _attrs(f: h5py.File) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}


def read_part(path: Path) -> Part:
    """A part's attributes, or BadPart when it is not a readable babelmap part."""
    try:
        with h5py.File(path, "r") as f:
            attrs = _attrs(f)
            for name in ("sentences", "n_tokens", "embeddings"):
                if name not in f:
                    raise BadPart(f"{path.name}: dataset /{name} is missing")
    except BadPart:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises OSError/KeyError/RuntimeError on damage
        raise BadPart(f"{path.name}: unreadable ({e.__class__.__name__}: {e})") from None
    if attrs.get("format") != PART_FORMAT:
        raise BadPart(f"{path.name}: not a babelmap part (format {attrs.get('format')!r})")
    for k in ("language", "batch_start", "batch_stop", "checksum"):
        if k not in attrs:
            raise BadPart(f"{path.name}: attribute {k!r} is missing")
    return Part(path, attrs)


def read_arrays(part: Part, n_layers: int, hidden: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sentences, n_tokens, embeddings [K, n, H]) of a part, verified against its checksum
    and the expected shape and dtype; BadPart otherwise."""
    try:
        with h5py.File(part.path, "r") as f:
            sent = f["sentences"][()]
            ntok = f["n_tokens"][()]
            emb = f["embeddings"][()]
    except Exception as e:  # noqa: BLE001
        raise BadPart(f"{part.path.name}: unreadable ({e.__class__.__name__}: {e})") from None
    if checksum(sent, ntok, emb) != part.attrs["checksum"]:
        raise BadPart(f"{part.path.name}: checksum mismatch (the file is corrupt)")
    n = sent.shape[0]
    if sent.ndim != 1 or ntok.shape != (n,) or emb.shape != (n_layers, n, hidden):
        raise BadPart(f"{part.path.name}: shapes sentences {sent.shape}, n_tokens {ntok.shape}, "
                      f"embeddings {emb.shape}; expected [n], [n], [{n_layers}, n, {hidden}]")
    if emb.dtype != np.dtype(dtype):
        raise BadPart(f"{part.path.name}: embeddings are {emb.dtype}, expected {dtype}")
    return sent, ntok, emb


def provenance_diff(found: Mapping, expected: Mapping) -> list[tuple[str, object, object]]:
    """(key, found, expected) for every provenance attribute that differs. The model name
    is not compared when the weights' fingerprints agree (a path spelled differently)."""
    out = []
    for k in PART_KEYS:
        if k == "model" and found.get("model_fingerprint") == expected.get("model_fingerprint"):
            continue
        a, b = found.get(k), expected.get(k)
        if _norm(a) != _norm(b):
            out.append((k, a, b))
    return out


def _norm(v):
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v


# settings a user can simply give again to continue a run (model and corpus differences cannot)
HINTS = {"token_budget": "--token-budget {there}", "compute_dtype": "--dtype {there}",
         "dtype": "--store-dtype {there}", "max_length": "--max-length {there}", "pooling": "--pooling {there}",
         "prefix": "--prefix '{there}'"}


def describe_diff(where: str, diffs: list[tuple[str, object, object]], out: Path) -> str:
    """The refusal message for parts or a store of another run."""
    lines = [f"{where} was written by a different run and cannot be mixed with this one:"]
    for k, a, b in diffs:
        a_s, b_s = str(_norm(a)), str(_norm(b))
        if len(a_s) > 70:
            a_s = a_s[:67] + "..."
        if len(b_s) > 70:
            b_s = b_s[:67] + "..."
        lines.append(f"  {k}: there {a_s!r}, this run {b_s!r}")
    same = [HINTS[k].format(there=_norm(a)) for k, a, _ in diffs if k in HINTS]
    if same and len(same) == len(diffs):
        lines.append(f"  to continue that run, give the same settings: {' '.join(same)}")
    lines.append(f"  what to do: run with --overwrite to discard it, or choose another --out than {out}")
    return "\n".join(lines)
