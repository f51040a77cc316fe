"""Part files: one small HDF5 file per finished unit of work; after the join, the store's shards.

A unit (decided by engine.extract) is a group of *blocks*; a block is one language's
contiguous range [start, stop) of corpus sentence positions. A part is written in memory,
then to a temporary name, fsynced and atomically renamed, so a file with a part name is a
finished unit and anything else (a `.tmp-` file, or nothing) is work to redo. Because HDF5
only ever writes into memory, a full disk is a plain OSError from `write`, never an HDF5
file object left half-written (which can segfault when collected).

Layout of a part:
- `/blocks/lang` [B] str, `/blocks/lang_index`, `/blocks/start`, `/blocks/stop`, `/blocks/offset`
  ([B+1], block j's rows are offset[j]:offset[j+1] of the two arrays below) int64,
  `/blocks/sha256` [B] str (see `BlockHasher`), computed once here;
- `/sentences` int64 [N] (corpus positions), `/n_tokens` int32 [N];
- `/emb/<j>` [K', stop-start, H] in the store dtype: block j dense over its whole range
  (missing rows are never written and read as 0; chunks of ~1 MiB along sentences, and
  chunks with no present row are not even allocated). The store's virtual dataset maps
  each `/emb/<j>` onto its hyperslab (engine.join).
- attributes: the run's provenance (`provenance_keys` lists them), `format`, `part_version`, `uid`;
- `/record`: one JSON string repeating the attributes and the block table (read in one go
  when resuming or joining thousands of parts).

Test hooks (environment, per process; used by the fault tests with real subprocesses):
`BABELMAP_TEST_KILL_AFTER_PARTS=N` SIGKILLs the process right after its N-th rename,
`BABELMAP_TEST_KILL_BEFORE_RENAME=N` right before it (the temporary file stays behind),
`BABELMAP_TEST_ENOSPC_AT_PART=N` makes the N-th write fail as a full disk would,
`BABELMAP_TEST_FILL_AFTER_PARTS=N` fills the real file system holding the parts folder right
after the N-th rename (a file `<folder>/../FILLER_NAME`), so the disk is really full from there.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from babelmap.engine.diskwrite import TMP_MARK, write_bytes_safely
from babelmap.engine.diskspace import write_failure
from babelmap.engine.errors import StoreError
from babelmap.engine.store import CHUNK_BYTES, PROVENANCE_KEYS, STR

log = logging.getLogger("babelmap")

PART_FORMAT = "babelmap.part"
PART_VERSION = 2
# `dtype` is the stored dtype (as in the store); `compute_dtype` the forward precision.
PART_KEYS = tuple(PROVENANCE_KEYS) + ("compute_dtype", "token_budget")
# attributes that are bookkeeping, never provenance
NOT_PROVENANCE = {"format", "format_version", "part_version", "uid", "provenance_keys", "babelmap_version",
                  "created", "command", "skipped", "skip_bad", "storage", "shards", "provenance",
                  "provenance_sha256", "chunk_sentences", "language", "language_index", "unit", "batch_start",
                  "batch_stop", "sentence_first", "sentence_last", "checksum"}
FILLER_NAME = "babelmap-test-filler"
HASH_VERSION = "babelmap-block-sha256-v1"
HASH_PIECE = 4096  # rows hashed per update (any value gives the same digest)

_written: dict[str, int] = {}  # parts renamed into place by this process, per folder (test hooks)


def reset_test_counter() -> None:
    """Start counting parts for the test hooks afresh."""
    _written.clear()


class BadPart(Exception):
    """A part file that cannot be trusted (unreadable, truncated, or not shaped as a part)."""


@dataclass
class Block:
    """One language's rows [start, stop) of a unit: `sentences` (ascending positions present),
    `n_tokens` and `emb` [K', n, H] aligned with them."""

    lang: str
    lang_index: int
    start: int
    stop: int
    sentences: np.ndarray
    n_tokens: np.ndarray
    emb: np.ndarray


@dataclass
class PartInfo:
    """A finished part, read from its attributes and small datasets only (no embeddings)."""

    path: Path
    uid: str
    blocks: list[tuple[str, int, int, np.ndarray]]   # (lang, start, stop, sentences)
    attrs: dict = field(default_factory=dict)
    lang_index: list[int] = field(default_factory=list)
    n_tokens: list[np.ndarray] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    n_layers: int = 0
    hidden: int = 0
    dtype: str = ""

    def dataset(self, j: int) -> str:
        """The HDF5 path of block j's embeddings inside the part."""
        return f"emb/{j}"


# ---------------------------------------------------------------------------------- names
def parts_dir(out: str | os.PathLike) -> Path:
    """`<store>.parts/` beside the store."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def shards_dir(out: str | os.PathLike) -> Path:
    """`<store>.shards/` beside the store: the joined parts the store's index refers to."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def part_filename(uid: str) -> str:
    """A file-system-safe, collision-free part file name for unit `uid`."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", uid)[:80]
    tag = hashlib.sha1(uid.encode("utf-8")).hexdigest()[:8]
    return f"{safe}.{tag}.h5"


def is_tmp(path: Path) -> bool:
    return TMP_MARK in path.name


def list_parts(folder: Path) -> list[Path]:
    """Finished part files (not temporaries), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".h5" and not is_tmp(p))


# ------------------------------------------------------------------------------ checksums
class BlockHasher:
    """sha256 of a block: its positions, token counts and embedding rows, row by row.

    The digest covers a header (version, shapes, dtypes), `sentences` as int64, `n_tokens` as
    int32 and then every present row's [K', H] values in position order, so it can be fed
    from an in-memory [K', n, H] array (write time) or from pieces read back from a store
    (`babelmap check`) and gives the same digest."""

    def __init__(self, sentences: np.ndarray, n_tokens: np.ndarray, n_layers: int, hidden: int, dtype):
        sentences = np.ascontiguousarray(sentences, "<i8")
        n_tokens = np.ascontiguousarray(n_tokens, "<i4")
        self.h = hashlib.sha256()
        self.h.update(f"{HASH_VERSION}|n={sentences.size}|K={n_layers}|H={hidden}|"
                      f"{np.dtype(dtype).str}|".encode())
        self.h.update(sentences.tobytes())
        self.h.update(n_tokens.tobytes())
        self.dtype = np.dtype(dtype)

    def rows(self, emb_rows: np.ndarray) -> None:
        """Add rows given as [K', r, H] (the next r present rows in position order). Rows that
        are a [K', r, H] view of row-major [r, K', H] memory (as extraction holds them) are
        hashed in place; anything else is made row-major first."""
        a = np.asarray(emb_rows, self.dtype).transpose(1, 0, 2)
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        self.h.update(a)  # the buffer itself (C-contiguous): no bytes copy

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def block_checksum(sentences: np.ndarray, n_tokens: np.ndarray, emb: np.ndarray) -> str:
    """The `BlockHasher` digest of a block held in memory (emb [K', n, H])."""
    K, n, H = emb.shape
    h = BlockHasher(sentences, n_tokens, K, H, emb.dtype)
    for a in range(0, n, HASH_PIECE):
        h.rows(emb[:, a:a + HASH_PIECE])
    return h.hexdigest()


def span_chunk(n_layers: int, hidden: int, itemsize: int, span: int) -> int:
    """Sentences per chunk of a block dataset [K', span, H]: at most about 1 MiB, and the
    span cut into equal chunks (HDF5 allocates a partial last chunk in full, so a span of
    1024 rows in chunks of 315 would waste 23 %; in 4 chunks of 256 it wastes nothing)."""
    c = max(1, CHUNK_BYTES // max(1, n_layers * hidden * itemsize))
    if span <= c:
        return int(max(1, span))
    pieces = -(-span // c)
    return int(-(-span // pieces))


# --------------------------------------------------------------------------------- writing
def _env_n(name: str) -> int | None:
    v = os.environ.get(name)
    return int(v) if v else None


def _validate(block: Block, dtype: np.dtype | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(block.sentences, np.int64)
    nt = np.asarray(block.n_tokens, np.int32)
    e = np.asarray(block.emb) if dtype is None else np.asarray(block.emb, dtype)
    where = f"block {block.lang}[{block.start}:{block.stop}]"
    if not (0 <= block.start <= block.stop):
        raise StoreError(f"{where}: bad range")
    if s.ndim != 1 or nt.shape != s.shape or e.ndim != 3 or e.shape[1] != s.size:
        raise StoreError(f"{where}: sentences {s.shape}, n_tokens {nt.shape}, emb {e.shape} do not align "
                         "(expected [n], [n], [K, n, H])")
    if s.size and (s[0] < block.start or s[-1] >= block.stop or (np.diff(s) <= 0).any()):
        raise StoreError(f"{where}: sentence positions must be ascending and inside the range")
    if e.dtype.kind == "f" and e.size and not np.isfinite(e).all():
        rows = np.flatnonzero(~np.isfinite(e).all(axis=(0, 2)))
        raise StoreError(f"language {block.lang}: NaN or Inf embeddings for {rows.size} sentences "
                         f"(positions {s[rows[:5]].tolist()}); a float16 overflow? try --dtype fp32 or bf16")
    return s, nt, e


def part_image(uid: str, blocks: Sequence[Block], attrs: Mapping[str, Any]) -> tuple[bytes | memoryview, list[str]]:
    """The HDF5 bytes of a part (built in memory) and its blocks' checksums."""
    checked = [_validate(b, None) for b in blocks]
    dtypes = {e.dtype for _, _, e in checked}
    if len(dtypes) > 1:
        raise StoreError(f"part {uid}: blocks have different dtypes {sorted(map(str, dtypes))}")
    shapes = {(e.shape[0], e.shape[2]) for _, _, e in checked}
    if len(shapes) > 1:
        raise StoreError(f"part {uid}: blocks have different (hidden states, hidden size) {sorted(shapes)}")
    B = len(blocks)
    sums = [block_checksum(s, nt, e) for s, nt, e in checked]
    offsets = np.zeros(B + 1, np.int64)
    for j, (s, _, _) in enumerate(checked):
        offsets[j + 1] = offsets[j] + s.size
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        g = f.create_group("blocks")
        g.create_dataset("lang", data=np.array([b.lang for b in blocks], dtype=object), dtype=STR)
        g.create_dataset("lang_index", data=np.array([b.lang_index for b in blocks], np.int64))
        g.create_dataset("start", data=np.array([b.start for b in blocks], np.int64))
        g.create_dataset("stop", data=np.array([b.stop for b in blocks], np.int64))
        g.create_dataset("offset", data=offsets)
        g.create_dataset("sha256", data=np.array(sums, dtype=object), dtype=STR)
        f.create_dataset("sentences", data=np.concatenate([s for s, _, _ in checked]) if B else np.zeros(0, np.int64))
        f.create_dataset("n_tokens", data=np.concatenate([n for _, n, _ in checked]) if B else np.zeros(0, np.int32))
        eg = f.create_group("emb")
        for j, (b, (s, _, e)) in enumerate(zip(blocks, checked)):
            K, _, H = e.shape
            span = b.stop - b.start
            c = span_chunk(K, H, e.dtype.itemsize, span)
            ds = eg.create_dataset(str(j), shape=(K, span, H), dtype=e.dtype, chunks=(K, c, H), fillvalue=0)
            local = s - b.start
            for a in range(0, span, c):
                lo, hi = np.searchsorted(local, [a, a + c])
                if lo == hi:
                    continue  # no present row: the chunk is never allocated
                if hi - lo == min(c, span - a) :
                    ds[:, a:a + (hi - lo), :] = e[:, lo:hi, :]
                else:
                    buf = np.zeros((K, min(c, span - a), H), e.dtype)
                    buf[:, local[lo:hi] - a, :] = e[:, lo:hi, :]
                    ds[:, a:a + buf.shape[1], :] = buf
        for k, v in attrs.items():
            f.attrs[k] = "" if v is None else v
        f.attrs["provenance_keys"] = json.dumps(sorted(k for k in attrs if k not in NOT_PROVENANCE))
        f.attrs["format"] = PART_FORMAT
        f.attrs["part_version"] = PART_VERSION
        f.attrs["uid"] = uid
        # everything `read_part_info` needs but the positions and token counts, in one read
        K, H = (checked[0][2].shape[0], checked[0][2].shape[2]) if B else (0, 0)
        record = {"attrs": {k: _plain(v) for k, v in f.attrs.items()},
                  "blocks": {"lang": [b.lang for b in blocks], "lang_index": [int(b.lang_index) for b in blocks],
                             "start": [int(b.start) for b in blocks], "stop": [int(b.stop) for b in blocks],
                             "offset": offsets.tolist(), "sha256": sums},
                  "n_layers": int(K), "hidden": int(H), "dtype": np.dtype(dtypes.pop()).name if B else ""}
        f.create_dataset("record", data=json.dumps(record, ensure_ascii=False), dtype=STR)
    return bio.getbuffer(), sums


def _plain(v):
    """An HDF5 attribute value as plain JSON (int, float, bool, str)."""
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "item"):
        v = v.item()
    return v if isinstance(v, (int, float, bool, str)) else str(v)


def _write_part_bytes(data, final: Path, hook: int) -> Path:
    """write_bytes_safely with the part test hooks (simulated ENOSPC, kill before rename)."""
    def kill() -> None:
        if _env_n("BABELMAP_TEST_KILL_BEFORE_RENAME") == hook:
            os.kill(os.getpid(), signal.SIGKILL)
    fail = len(data) // 2 if _env_n("BABELMAP_TEST_ENOSPC_AT_PART") == hook else None
    return write_bytes_safely(data, final, "part",
                              "Finished parts are kept; free space and run the same command again to resume",
                              before_rename=kill, fail_after=fail)


def write_part(folder: Path, uid: str, blocks: Sequence[Block], attrs: Mapping[str, Any]) -> Path:
    """Write one finished unit atomically (temp name, fsync, rename, fsync the folder) and
    return its path. Each block's sha256 is computed here, once. Any failure (full disk,
    I/O error) removes the temporary and raises one StoreError; finished parts are kept.
    Safe to call from a writer thread: it touches only NumPy, h5py and the file system."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_failure(e, folder / part_filename(uid), 0, "part", "free space or choose another --out") from None
    image, _ = part_image(uid, blocks, attrs)
    key = str(folder.resolve())
    nth = _written.get(key, 0) + 1
    final = _write_part_bytes(image, folder / part_filename(uid), nth)
    _written[key] = nth
    if _env_n("BABELMAP_TEST_FILL_AFTER_PARTS") == nth:
        _fill_disk(folder.parent / FILLER_NAME)
    if _env_n("BABELMAP_TEST_KILL_AFTER_PARTS") == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return final


def _fill_disk(path: Path) -> None:
    """Test hook: write zeros to `path` until the file system is full."""
    block = b"\0" * (1 << 16)
    with open(path, "ab", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


# --------------------------------------------------------------------------------- reading
def read_part_info(path: Path) -> PartInfo:
    """A part's attributes and block table (never its embeddings): one JSON record and the
    two small arrays, so a resume over thousands of parts stays quick. BadPart when it is not
    a readable, well-formed part (truncated files fail to open)."""
    try:
        with h5py.File(path, "r") as f:
            if "record" not in f:
                fmt = f.attrs.get("format")
                raise BadPart(f"{path.name}: not a babelmap part of this version (format {fmt!r}, no /record)")
            raw = f["record"][()]
            rec = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            sent = f["sentences"][()].astype(np.int64)
            ntok = f["n_tokens"][()].astype(np.int32)
    except BadPart:
        raise
    except Exception as e:  # noqa: BLE001 - h5py raises OSError/KeyError/RuntimeError on damage
        raise BadPart(f"{path.name}: unreadable ({e.__class__.__name__}: {e})") from None
    try:
        attrs = dict(rec["attrs"])
        if attrs.get("format") != PART_FORMAT:
            raise BadPart(f"{path.name}: not a babelmap part (format {attrs.get('format')!r})")
        if attrs.get("part_version") != PART_VERSION:
            raise BadPart(f"{path.name}: part version {attrs.get('part_version')!r} (another babelmap version)")
        g = rec["blocks"]
        langs, li, start, stop, sums = g["lang"], g["lang_index"], g["start"], g["stop"], g["sha256"]
        off = np.asarray(g["offset"], np.int64)
        K, H, dtype = int(rec["n_layers"]), int(rec["hidden"]), str(rec["dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise BadPart(f"{path.name}: damaged record ({e})") from None
    B = len(langs)
    if not (len(li) == len(start) == len(stop) == len(sums) == B and off.shape == (B + 1,)
            and off[0] == 0 and off[-1] == sent.size == ntok.size and (np.diff(off) >= 0).all()):
        raise BadPart(f"{path.name}: inconsistent block table")
    blocks, nts = [], []
    for j in range(B):
        s = sent[off[j]:off[j + 1]]
        if s.size and (s[0] < start[j] or s[-1] >= stop[j] or (np.diff(s) <= 0).any()):
            raise BadPart(f"{path.name}: block {j} positions are outside its range or not ascending")
        blocks.append((langs[j], int(start[j]), int(stop[j]), s))
        nts.append(ntok[off[j]:off[j + 1]])
    return PartInfo(path=path, uid=str(attrs.get("uid", "")), blocks=blocks, attrs=attrs, lang_index=list(li),
                    n_tokens=nts, sha256=list(sums), n_layers=K, hidden=H, dtype=dtype)


def read_block(info: PartInfo, j: int) -> np.ndarray:
    """Block j's present rows [K', n, H] (reads the embeddings; for tests and tools)."""
    lang, start, stop, s = info.blocks[j]
    with h5py.File(info.path, "r") as f:
        dense = f[info.dataset(j)][()]
    return dense[:, s - start, :]


def verify_part(info: PartInfo) -> list[str]:
    """Recompute every block checksum of a part (reads its embeddings); messages for mismatches."""
    out = []
    for j, (lang, start, stop, s) in enumerate(info.blocks):
        try:
            emb = read_block(info, j)
        except Exception as e:  # noqa: BLE001
            out.append(f"{info.path.name}: block {j} ({lang} {start}:{stop}) unreadable ({e})")
            continue
        if block_checksum(s, info.n_tokens[j], emb) != info.sha256[j]:
            out.append(f"{info.path.name}: block {j} ({lang} {start}:{stop}) checksum mismatch")
    return out


# ------------------------------------------------------------------------------ provenance
def provenance_keys(found: Mapping, expected: Mapping) -> list[str]:
    keys = set(PART_KEYS) | {k for k in expected if k not in NOT_PROVENANCE}
    return sorted(keys)


def provenance_diff(found: Mapping, expected: Mapping) -> list[tuple[str, object, object]]:
    """(key, found, expected) for every provenance attribute that differs: the fixed keys
    (PART_KEYS) and every provenance key `expected` has. The model name is not compared
    when the weights' fingerprints agree (a path spelled differently)."""
    out = []
    for k in provenance_keys(found, expected):
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
    if isinstance(v, (np.integer, np.floating, np.bool_)):
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


# ---------------------------------------------------------------------------------- resume
def recover_interrupted_join(out: Path) -> None:
    """A join killed after moving `<out>.parts/` to `<out>.shards/` but before renaming the
    store into place leaves shards and no store: move them back so they count as parts."""
    out = Path(out)
    shards, parts = shards_dir(out), parts_dir(out)
    if out.exists() or not shards.is_dir():
        return
    if not parts.exists():
        os.replace(shards, parts)
    else:
        for p in shards.iterdir():
            if not (parts / p.name).exists():
                os.replace(p, parts / p.name)
        shutil.rmtree(shards, ignore_errors=True)
    log.warning("recovered the parts of an interrupted join from %s", shards)


def finished_units(folder: Path, expected: Mapping[str, Any], out: Path) -> dict[str, PartInfo]:
    """uid -> PartInfo of every finished part in `folder`, read from attributes and small
    datasets only (no embedding is re-read or re-hashed, so a resume stays cheap). Removes
    temporaries and unreadable or truncated parts (logged "redoing a damaged part"); raises
    StoreError naming the differing settings for a part of another run."""
    folder = Path(folder)
    if folder == parts_dir(out):
        recover_interrupted_join(out)
    done: dict[str, PartInfo] = {}
    if not folder.is_dir():
        return done
    for path in sorted(folder.iterdir()):
        if is_tmp(path):
            path.unlink(missing_ok=True)
            continue
        if path.suffix != ".h5":
            continue
        try:
            info = read_part_info(path)
            diffs = provenance_diff(info.attrs, expected)
            if diffs:
                raise StoreError(describe_diff(f"part {path}", diffs, out))
            if info.uid in done:
                raise BadPart(f"{path.name}: unit {info.uid} is already in {done[info.uid].path.name}")
        except BadPart as e:
            log.warning("redoing a damaged part: %s", e)
            path.unlink(missing_ok=True)
            continue
        done[info.uid] = info
    return done
