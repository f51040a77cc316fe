"""Join the part files of a run into one store, verifying everything first.

Every part is checked for provenance (same model, pooling, dtypes, corpus...), checksum,
shape and dtype, and together they must cover every present sentence of every language
exactly once and no missing one. Only then is the store complete; it is written through
`StoreWriter` (temporary name + rename), so a failed join leaves no store behind.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from babelmap.engine.errors import StoreError
from babelmap.engine.parts import (BadPart, Part, describe_diff, is_tmp, provenance_diff, read_arrays,
                                   read_part)
from babelmap.engine.store import StoreWriter

log = logging.getLogger("babelmap")


def list_parts(folder: Path) -> list[Path]:
    """Finished part files (not temporaries), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".h5" and not is_tmp(p))


def _ids(sentence_ids: Sequence[str], idx: np.ndarray, k: int = 5) -> str:
    shown = ", ".join(repr(sentence_ids[int(j)]) for j in idx[:k])
    return shown + (f" and {len(idx) - k} more" if len(idx) > k else "")


def join_parts(folder: Path, out: Path, *, languages: Sequence[str], sentence_ids: Sequence[str],
               mask: np.ndarray, provenance: Mapping, n_layers: int, hidden: int, store_dtype: str,
               attrs: Mapping, progress: bool = False) -> Path:
    """Verify the parts in `folder` and write the store `out` from them."""
    mask = np.asarray(mask, bool)
    L, S = mask.shape
    index = {lang: i for i, lang in enumerate(languages)}
    by_lang: dict[int, list[Part]] = defaultdict(list)
    for path in list_parts(folder):
        try:
            part = read_part(path)
        except BadPart as e:
            raise StoreError(f"part {path} is damaged ({e}); run the same command again to redo it") from None
        diffs = provenance_diff(part.attrs, provenance)
        if diffs:
            raise StoreError(describe_diff(f"part {path}", diffs, out))
        if part.lang not in index:
            raise StoreError(f"part {path} holds language {part.lang!r}, which this corpus does not have; "
                             f"run with --overwrite or choose another --out")
        by_lang[index[part.lang]].append(part)

    store_attrs = {k: v for k, v in attrs.items() if k != "dtype"}
    writer = StoreWriter(out, languages, sentence_ids, n_layers, hidden, store_dtype, store_attrs, mask=mask)
    try:
        from tqdm.auto import tqdm
        for i in tqdm(range(L), desc="join", unit="lang", disable=not progress, leave=False):
            lang = languages[i]
            emb = np.zeros((n_layers, S, hidden), dtype=store_dtype)
            ntok = np.zeros(S, np.int32)
            seen = np.zeros(S, np.int32)
            for part in by_lang.get(i, []):
                try:
                    sent, nt, e = read_arrays(part, n_layers, hidden, store_dtype)
                except BadPart as err:
                    raise StoreError(f"part {part.path} is damaged ({err}); run the same command again "
                                     "to redo it") from None
                if sent.size and (sent.min() < 0 or sent.max() >= S):
                    raise StoreError(f"part {part.path}: sentence positions outside 0..{S - 1}")
                np.add.at(seen, sent, 1)
                emb[:, sent, :] = e
                ntok[sent] = nt
            missing = np.flatnonzero(mask[i] & (seen == 0))
            twice = np.flatnonzero(seen > 1)
            extra = np.flatnonzero(~mask[i] & (seen > 0))
            if missing.size:
                raise StoreError(f"language {lang}: {missing.size} sentences are in no part "
                                 f"({_ids(sentence_ids, missing)}); run the same command again to finish them")
            if twice.size:
                raise StoreError(f"language {lang}: {twice.size} sentences are in more than one part "
                                 f"({_ids(sentence_ids, twice)}); run with --overwrite")
            if extra.size:
                raise StoreError(f"language {lang}: parts hold {extra.size} sentences the corpus lacks "
                                 f"({_ids(sentence_ids, extra)}); run with --overwrite")
            bad = ~np.isfinite(emb).all(axis=(0, 2))
            if bad.any():
                rows = np.flatnonzero(bad)
                raise StoreError(f"language {lang}: NaN or Inf embeddings for {rows.size} sentences "
                                 f"({_ids(sentence_ids, rows)}); a float16 overflow? try --dtype fp32 or bf16")
            if (ntok[mask[i]] <= 0).any():
                raise StoreError(f"language {lang}: a present sentence has no tokens")
            writer.write_language(i, emb, ntok)
    except BaseException:
        writer.abort()
        raise
    return writer.close()
