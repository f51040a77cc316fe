"""Verify a store: structure, provenance, and every row of every language.

`check_store(path)` returns one message per defect (an empty list for a sound store):
- the format and its version, the datasets and their shapes and dtypes, unique ids;
- provenance attributes present and consistent (`dtype` matches the stored dtype,
  fingerprints look like hashes, `skipped` is JSON);
- mask and token counts agree (a present sentence has tokens, a missing one has none);
- every language has sentences, no NaN or Inf anywhere, every present row is non-zero at
  every hidden state and every missing row is zero;
- with a corpus, the store covers exactly its languages, sentence ids and presence mask,
  and records its fingerprint.
Arrays are read one language at a time, so memory stays bounded.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from babelmap.engine.store import FORMAT, FORMAT_VERSION, PROVENANCE_KEYS

REQUIRED_ATTRS = ("format", "format_version", *PROVENANCE_KEYS, "babelmap_version", "created")
HASH = re.compile(r"^[0-9a-f]{16,128}$")
MAX_LISTED = 5


def _decode(a: Iterable) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a]


def _few(names: list[str]) -> str:
    s = ", ".join(repr(n) for n in names[:MAX_LISTED])
    return s + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def check_store(path: str | os.PathLike, corpus=None, progress: bool = False) -> list[str]:
    """All defects of the store at `path` (see module doc); [] when it is sound."""
    path = Path(path)
    if not path.exists():
        return [f"{path}: no such file"]
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        return [f"{path}: not a readable HDF5 file ({e})"]
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

    from tqdm.auto import tqdm
    for i in tqdm(range(L), desc="check", unit="lang", disable=not progress, leave=False):
        lang = langs[i]
        e = emb[i]  # [K, S, H]
        finite = np.isfinite(e)
        nan = np.flatnonzero(np.isnan(e).any(axis=(0, 2)))
        inf = np.flatnonzero(np.isinf(e).any(axis=(0, 2)))
        if nan.size:
            defects.append(f"language {lang}: NaN in {nan.size} sentences ({_few([sids[j] for j in nan])})")
        if inf.size:
            defects.append(f"language {lang}: Inf in {inf.size} sentences ({_few([sids[j] for j in inf])})")
        zero = ~np.where(finite, e != 0, True).any(axis=2)  # [K, S]: row entirely zero
        dead = np.flatnonzero(mask[i] & zero.any(axis=0))
        if dead.size:
            layers = sorted({int(k) for k in np.flatnonzero(zero[:, dead].any(axis=1))})
            defects.append(f"language {lang}: {dead.size} present sentences have an all-zero embedding "
                           f"(hidden states {layers[:8]}; {_few([sids[j] for j in dead])})")
        ghost = np.flatnonzero(~mask[i] & ~zero.all(axis=0))
        if ghost.size:
            defects.append(f"language {lang}: {ghost.size} missing sentences have non-zero embeddings "
                           f"({_few([sids[j] for j in ghost])})")

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
