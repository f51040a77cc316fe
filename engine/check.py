"""Verify a store: structure, provenance, and every row of every language.

`check_store(path)` returns one Defect per defect (an empty list for a sound store): a str
message with a `kind` and the `shard` it concerns, so callers advise without parsing text:
- the format and its version, the datasets and their shapes and dtypes, unique ids;
- provenance attributes present and consistent (`dtype` matches the stored dtype,
  fingerprints look like hashes, `skipped` is JSON);
- mask and token counts agree (a present sentence has tokens, a missing one has none);
- every language has sentences, no NaN or Inf anywhere, every present row is non-zero at
  every hidden state and every missing row is zero;
- content: every block's sha256 (recorded once when the part was written, copied into the
  store) recomputed from what the store reads now, so a flipped value, swapped rows, a
  language overwritten by another or changed token counts are caught;
- provenance: every attribute against the record copied at extraction and, for a store with
  shards, against each shard's own attributes (a changed pooling or model fingerprint);
- with a corpus, the store covers exactly its languages, sentence ids and presence mask,
  and records its fingerprint.
Arrays are streamed in pieces of about 8 MiB, so memory stays bounded.
"""
from __future__ import annotations

import json
import os
import re
from enum import Enum
from pathlib import Path

import h5py
import numpy as np

from babelmap.engine.store import FORMAT, FORMAT_VERSION, PROVENANCE_KEYS, _decode

REQUIRED_ATTRS = ("format", "format_version", *PROVENANCE_KEYS, "babelmap_version", "created")


class DefectKind(str, Enum):
    """What kind of defect: what a caller may act on without reading the message."""
    CONTENT = "content"          # a block's checksum differs from the one recorded at extraction
    SHARD_MISSING = "shard-missing"
    SHARD_DAMAGED = "shard-damaged"
    OTHER = "other"              # structure, provenance, values, against the corpus


class Defect(str):
    """One defect: the message (a str, as printed), its `kind` (DefectKind) and the `shard`
    file it concerns (path relative to the store's folder; "" when none)."""

    kind: DefectKind
    shard: str

    def __new__(cls, message: str, kind: DefectKind = DefectKind.OTHER, shard: str = "") -> "Defect":
        self = super().__new__(cls, message)
        self.kind, self.shard = DefectKind(kind), str(shard or "")
        return self

    def __reduce__(self):
        return (Defect, (str(self), self.kind, self.shard))
HASH = re.compile(r"^[0-9a-f]{16,128}$")
MAX_LISTED = 5


def _few(names: list[str]) -> str:
    s = ", ".join(repr(n) for n in names[:MAX_LISTED])
    return s + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def check_store(path: str | os.PathLike, corpus=None, progress: bool = False) -> list[Defect]:
    """All defects of the store at `path` (see module doc); [] when it is sound. Each is a
    Defect: its message, plus `kind` and `shard` for a caller's advice."""
    return [d if isinstance(d, Defect) else Defect(d) for d in _check_path(Path(path), corpus, progress)]


def _check_path(path: Path, corpus, progress: bool) -> list[str]:
    path = Path(path)
    if not path.exists():
        return [f"{path}: no such file"]
    try:
        f = h5py.File(path, "r", rdcc_nbytes=0)  # one sequential pass: no chunk cache per shard
    except Exception as e:  # noqa: BLE001
        return [f"{path}: not a readable HDF5 file ({e})"]
    if "blocks" in f and "shard" in f["blocks"]:
        from babelmap.engine.errors import StoreError
        from babelmap.engine.store import raise_open_files
        try:
            raise_open_files(len({s for s in _decode(f["blocks/shard"][()]) if s}), path)
        except StoreError as e:
            f.close()
            return [str(e)]
    with f:
        return _check(f, path, corpus, progress)


def _check(f: h5py.File, path: Path, corpus, progress: bool) -> list[str]:
    defects: list[str] = []
    attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    if attrs.get("format") != FORMAT:
        defects.append(f"attribute format is {attrs.get('format')!r}, expected {FORMAT!r}")
    if "format_version" in attrs and attrs.get("format_version") != FORMAT_VERSION:
        defects.append(f"format_version {attrs.get('format_version')!r} is not {FORMAT_VERSION} "
                       "(written by another babelmap version?)")
    for k in REQUIRED_ATTRS:
        if k not in attrs:
            defects.append(f"provenance attribute {k!r} is missing")
    for k in ("model", "model_fingerprint", "pooling", "corpus_name", "corpus_fingerprint"):
        if k in attrs and not str(attrs[k]).strip():
            defects.append(f"provenance attribute {k!r} is empty")
    for k in ("model_fingerprint", "corpus_fingerprint"):
        if k in attrs and str(attrs[k]).strip() and not HASH.match(str(attrs[k])):
            defects.append(f"provenance attribute {k!r} is not a hash: {str(attrs[k])[:40]!r}")
    if "skipped" in attrs:
        try:
            json.loads(attrs["skipped"])
        except (TypeError, ValueError):
            defects.append("attribute 'skipped' is not valid JSON")
    if "max_length" in attrs:
        try:
            if int(attrs["max_length"]) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            defects.append(f"attribute max_length {attrs['max_length']!r} is not a positive integer")

    missing = [n for n in ("languages", "sentence_ids", "mask", "n_tokens", "embeddings") if n not in f]
    if missing:
        return defects + [f"dataset /{n} is missing" for n in missing]
    langs = _decode(f["languages"][()])
    sids = _decode(f["sentence_ids"][()])
    L, S = len(langs), len(sids)
    emb = f["embeddings"]
    if len(set(langs)) != L:
        defects.append("duplicate language ids in /languages")
    if len(set(sids)) != S:
        defects.append("duplicate sentence ids in /sentence_ids")
    shape_ok = True
    if f["mask"].shape != (L, S) or f["mask"].dtype != np.bool_:
        defects.append(f"/mask is {f['mask'].dtype} {f['mask'].shape}, expected bool ({L}, {S})")
        shape_ok = False
    if f["n_tokens"].shape != (L, S) or f["n_tokens"].dtype.kind not in "iu":
        defects.append(f"/n_tokens is {f['n_tokens'].dtype} {f['n_tokens'].shape}, expected int ({L}, {S})")
        shape_ok = False
    if emb.ndim != 4 or emb.shape[0] != L or emb.shape[2] != S or emb.shape[1] < 1:
        defects.append(f"/embeddings has shape {emb.shape}, expected ({L}, K, {S}, H)")
        shape_ok = False
    if emb.dtype not in (np.float16, np.float32):
        defects.append(f"/embeddings dtype {emb.dtype} is neither float16 nor float32")
    if "dtype" in attrs and str(attrs["dtype"]) != str(emb.dtype):
        defects.append(f"attribute dtype {attrs['dtype']!r} disagrees with /embeddings dtype {emb.dtype}")
    if shape_ok and S and emb.chunks is not None and (emb.chunks[0] != 1 or emb.chunks[1] != emb.shape[1]
                                                      or emb.chunks[3] != emb.shape[3]):
        defects.append(f"/embeddings chunks {emb.chunks} are not (1, K, c, H)")
    if not shape_ok:
        return defects

    mask = f["mask"][()]
    ntok = f["n_tokens"][()]
    for i, lang in enumerate(langs):
        if not mask[i].any():
            defects.append(f"language {lang}: no sentence present")
        bad = np.flatnonzero(mask[i] & (ntok[i] <= 0))
        if bad.size:
            defects.append(f"language {lang}: {bad.size} present sentences have n_tokens <= 0 "
                           f"({_few([sids[j] for j in bad])})")
        bad = np.flatnonzero(~mask[i] & (ntok[i] != 0))
        if bad.size:
            defects.append(f"language {lang}: {bad.size} missing sentences have n_tokens != 0 "
                           f"({_few([sids[j] for j in bad])})")

    defects += _provenance(f, attrs, path)
    blocks, shard_defects, records = _blocks(f, path, attrs, L, S)
    defects += shard_defects
    defects += _content(emb, mask, ntok, langs, sids, blocks, records, progress)

    if corpus is not None:
        defects += _against_corpus(corpus, langs, sids, mask, attrs)
    return defects


def _against_corpus(corpus, langs: list[str], sids: list[str], mask: np.ndarray, attrs: dict) -> list[str]:
    out = []
    if list(corpus.languages) != langs:
        gone = sorted(set(corpus.languages) - set(langs))
        extra = sorted(set(langs) - set(corpus.languages))
        out.append(f"languages differ from the corpus: missing {_few(gone)}; not in the corpus {_few(extra)}")
        return out
    if list(corpus.sentence_ids) != sids:
        out.append("sentence ids differ from the corpus")
        return out
    cm = corpus.mask
    for i, lang in enumerate(langs):
        lost = np.flatnonzero(cm[i] & ~mask[i])
        if lost.size:
            out.append(f"language {lang}: {lost.size} sentences with text in the corpus are not in the store "
                       f"({_few([sids[j] for j in lost])})")
        extra = np.flatnonzero(~cm[i] & mask[i])
        if extra.size:
            out.append(f"language {lang}: {extra.size} sentences marked present have no text in the corpus")
    if attrs.get("corpus_fingerprint") != corpus.fingerprint():
        out.append("corpus_fingerprint differs from the corpus's fingerprint (the store is from another "
                   "version of the corpus)")
    return out


# ------------------------------------------------------------------ provenance and content
def _norm(v):
    if isinstance(v, bytes):
        v = v.decode()
    if hasattr(v, "item"):
        v = v.item()
    return "" if v is None else v


def _provenance(f: h5py.File, attrs: dict, path: Path) -> list[str]:
    """Attributes against the provenance record copied at extraction (and its sha256)."""
    import hashlib
    rec_text = attrs.get("provenance")
    if rec_text is None:
        return []
    rec_text = _norm(rec_text)
    out = []
    if "provenance_sha256" in attrs and hashlib.sha256(rec_text.encode()).hexdigest() != _norm(attrs["provenance_sha256"]):
        out.append("the provenance record (attribute 'provenance') was edited after extraction")
    try:
        rec = json.loads(rec_text)
    except ValueError:
        return out + ["attribute 'provenance' is not valid JSON"]
    for k, v in sorted(rec.items()):
        if k not in attrs:
            continue  # reported as a missing attribute above when it is required
        if str(_norm(attrs[k])) != str(_norm(v)):
            out.append(f"attribute {k} is {_short(attrs[k])} but the extraction recorded {_short(v)} "
                       "(changed after extraction)")
    return out


def _short(v) -> str:
    s = str(_norm(v))
    return repr(s if len(s) <= 70 else s[:67] + "...")


def _blocks(f: h5py.File, path: Path, attrs: dict, L: int, S: int):
    """The checksummed blocks [(i, start, stop, sha256 or None, where)] (one per language over
    [0, S) without checksums for an old store), defects of the shards, and per block the
    shard's own record (sentences, n_tokens) when the store has shards."""
    from babelmap.engine.parts import PART_KEYS, BadPart, provenance_diff, read_part_info
    from babelmap.engine.store import provenance_record
    if "blocks" not in f:
        return [(i, 0, S, None, "") for i in range(L)], [], {}
    g = f["blocks"]
    li = g["lang_index"][()].astype(int)
    start = g["start"][()].astype(int)
    stop = g["stop"][()].astype(int)
    sums = _decode(g["sha256"][()])
    shard = _decode(g["shard"][()]) if "shard" in g else [""] * len(li)
    blocks = [(int(li[b]), int(start[b]), int(stop[b]), sums[b], shard[b]) for b in range(len(li))]
    defects: list[str] = []
    records: dict[tuple[int, int, int], tuple] = {}
    own = provenance_record(attrs)
    for name in sorted({s for s in shard if s}):
        p = path.parent / name
        if not p.is_file():
            defects.append(Defect(f"shard {p} is missing (a store is the file and its folder {path.name}.shards/; "
                                  "move or copy them together)", DefectKind.SHARD_MISSING, name))
            continue
        try:
            info = read_part_info(p)
        except BadPart as e:
            defects.append(Defect(f"shard {p} is damaged ({e})", DefectKind.SHARD_DAMAGED, name))
            continue
        try:
            keys = set(json.loads(_norm(info.attrs.get("provenance_keys", "[]")))) | set(PART_KEYS)
        except ValueError:
            keys = set(PART_KEYS)
        for k, there, here in provenance_diff(info.attrs, own):
            if k in keys:
                defects.append(f"attribute {k} is {_short(here)} in the store but {_short(there)} in shard "
                               f"{name} (written at extraction)")
        for j, (lang, a, b, sent) in enumerate(info.blocks):
            records[(info.lang_index[j], a, b)] = (sent, info.n_tokens[j], info.sha256[j], name)
    for i, a, b, sha, name in blocks:
        if name:
            rec = records.get((i, a, b))
            if rec is None:
                if (path.parent / name).is_file():
                    defects.append(f"block {i} [{a}, {b}) is not in shard {name}")
            elif rec[2] != sha:
                defects.append(f"block {i} [{a}, {b}): the index's checksum differs from shard {name}'s")
    return blocks, defects, records


def _content(emb, mask: np.ndarray, ntok: np.ndarray, langs: list[str], sids: list[str], blocks, records,
             progress: bool) -> list[str]:
    """Stream every block once: NaN/Inf, all-zero present rows, non-zero missing rows, and the
    block's sha256 recomputed from what the store reads now."""
    from tqdm.auto import tqdm

    from babelmap.engine.parts import BlockHasher
    L, K, S, H = emb.shape
    itemsize = emb.dtype.itemsize
    piece = max(1, (8 << 20) // max(1, K * H * itemsize))
    nan = [set() for _ in range(L)]
    inf = [set() for _ in range(L)]
    dead: list[dict[int, set]] = [dict() for _ in range(L)]
    ghost = [set() for _ in range(L)]
    covered = np.zeros((L, S), bool)
    out: list[str] = []
    total = sum(max(0, b - a) for _, a, b, _, _ in blocks) * K * H * itemsize
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="check", disable=not progress, leave=False)
    try:
        for i, a, b, sha, name in blocks:
            if not (0 <= i < L and 0 <= a <= b <= S):
                out.append(f"block table row ({i}, {a}, {b}) is outside the store's shape")
                continue
            covered[i, a:b] = True
            pos = a + np.flatnonzero(mask[i, a:b])
            hasher = BlockHasher(pos, ntok[i, pos], K, H, emb.dtype) if sha else None
            for c0 in range(a, b, piece):
                c1 = min(b, c0 + piece)
                e = emb[i, :, c0:c1, :]
                m = mask[i, c0:c1]
                if np.isnan(e).any():
                    nan[i].update((c0 + np.flatnonzero(np.isnan(e).any(axis=(0, 2)))).tolist())
                if np.isinf(e).any():
                    inf[i].update((c0 + np.flatnonzero(np.isinf(e).any(axis=(0, 2)))).tolist())
                zero = ~np.where(np.isfinite(e), e != 0, True).any(axis=2)  # [K, s]
                for r in np.flatnonzero(m & zero.any(axis=0)):
                    dead[i].setdefault(c0 + int(r), set()).update(np.flatnonzero(zero[:, r]).tolist())
                ghost[i].update((c0 + np.flatnonzero(~m & ~zero.all(axis=0))).tolist())
                if hasher is not None:
                    hasher.rows(e[:, np.flatnonzero(m), :])
                bar.update((c1 - c0) * K * H * itemsize)
            if hasher is not None and hasher.hexdigest() != sha:
                out.append(_mismatch(i, a, b, name, langs, sids, mask, ntok, records))
    finally:
        bar.close()
    for i, lang in enumerate(langs):
        if nan[i]:
            out.append(f"language {lang}: NaN in {len(nan[i])} sentences ({_few([sids[j] for j in sorted(nan[i])])})")
        if inf[i]:
            out.append(f"language {lang}: Inf in {len(inf[i])} sentences ({_few([sids[j] for j in sorted(inf[i])])})")
        if dead[i]:
            rows = sorted(dead[i])
            layers = sorted(set().union(*dead[i].values()))
            out.append(f"language {lang}: {len(rows)} present sentences have an all-zero embedding "
                       f"(hidden states {layers[:8]}; {_few([sids[j] for j in rows])})")
        if ghost[i]:
            rows = sorted(ghost[i])
            out.append(f"language {lang}: {len(rows)} missing sentences have non-zero embeddings "
                       f"({_few([sids[j] for j in rows])})")
        lost = np.flatnonzero(mask[i] & ~covered[i])
        if lost.size:
            out.append(f"language {lang}: {lost.size} present sentences are in no block of the store "
                       f"({_few([sids[j] for j in lost])})")
    return out


def _mismatch(i: int, a: int, b: int, name: str, langs, sids, mask, ntok, records) -> Defect:
    """The checksum-mismatch message, saying what changed when the shard's record tells."""
    lang = langs[i]
    where = f"sentences {sids[a]!r}..{sids[b - 1]!r}" + (f" (shard {name})" if name else "")
    what = "embeddings, token counts or the mask"
    rec = records.get((i, a, b))
    if rec is not None:
        sent, nt, _, _ = rec
        pos = a + np.flatnonzero(mask[i, a:b])
        if not np.array_equal(pos, sent):
            what = f"the mask: {np.setxor1d(pos, sent).size} sentences differ from the extraction"
        elif not np.array_equal(ntok[i, pos], nt):
            diff = pos[ntok[i, pos] != nt]
            what = (f"n_tokens: {diff.size} sentences differ from the extraction "
                    f"({_few([sids[j] for j in diff])})")
        else:
            what = "the embeddings"
    return Defect(f"language {lang}: {where}: content differs from the checksum recorded at extraction "
                  f"({what} changed since)", DefectKind.CONTENT, name)
