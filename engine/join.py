"""Join the part files of a run into a store *by reference*: no embedding is read or copied.

Every part's provenance is checked against the run's, and together the parts' blocks must
cover every present sentence of every language exactly once and no missing one (from their
small block tables; the embeddings were hashed once when written). Then the parts folder
becomes `<store>.shards/` and the store is a small HDF5 index whose `/embeddings` is a
virtual dataset with one mapping per block onto the shards (source paths relative to the
store's folder, so the store and its shards folder move together). Readable by plain h5py.

Crash safety: the index is written to a temporary name, the parts folder is renamed to the
shards folder, the index is renamed into place. A kill between the two renames leaves shards
and no store; `engine.parts.recover_interrupted_join` moves them back (the next run does it).
Test hook: `BABELMAP_TEST_KILL_IN_JOIN=1` SIGKILLs the process right between the two renames.
"""
from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from babelmap.engine.diskspace import check_free_space
from babelmap.engine.errors import StoreError
from babelmap.engine.diskwrite import fsync_dir, write_bytes_safely
from babelmap.engine.parts import (BadPart, PartInfo, describe_diff, is_tmp, list_parts, parts_dir,
                                   provenance_diff, read_part_info, recover_interrupted_join, shards_dir,
                                   span_chunk)
from babelmap.engine.store import STR, default_attrs, record_provenance, tmp_path, write_blocks_table

log = logging.getLogger("babelmap")

__all__ = ["join_parts", "list_parts"]


def _ids(sentence_ids: Sequence[str], idx: np.ndarray, k: int = 5) -> str:
    shown = ", ".join(repr(sentence_ids[int(j)]) for j in idx[:k])
    return shown + (f" and {len(idx) - k} more" if len(idx) > k else "")


def _read_parts(folder: Path, provenance: Mapping, out: Path, known: Mapping[str, PartInfo] | None = None
                ) -> list[PartInfo]:
    """Every finished part's record, checked against `provenance`; a part in `known` (file
    name -> PartInfo the caller already read from this folder) is not read again."""
    known = known or {}
    infos = []
    for path in list_parts(folder):
        info = known.get(path.name)
        if info is None or Path(info.path) != path:
            try:
                info = read_part_info(path)
            except BadPart as e:
                raise StoreError(f"part {path} is damaged ({e}); run the same command again to redo it") from None
        diffs = provenance_diff(info.attrs, provenance)
        if diffs:
            raise StoreError(describe_diff(f"part {path}", diffs, out))
        infos.append(info)
    return infos


def _coverage(infos: list[PartInfo], languages: Sequence[str], sentence_ids: Sequence[str], mask: np.ndarray,
              K: int, H: int, dtype: str) -> np.ndarray:
    """Verify the blocks against the run (languages, shapes, coverage of `mask`); the n_tokens grid."""
    L, S = mask.shape
    index = {lang: i for i, lang in enumerate(languages)}
    seen = np.zeros((L, S), np.uint8)
    ntok = np.zeros((L, S), np.int32)
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for info in infos:
        if info.blocks and (info.n_layers, info.hidden, info.dtype) != (K, H, np.dtype(dtype).name):
            raise StoreError(f"part {info.path} holds [{info.n_layers}, n, {info.hidden}] {info.dtype} embeddings; "
                             f"this run stores [{K}, n, {H}] {np.dtype(dtype).name}; run with --overwrite")
        for j, (lang, start, stop, s) in enumerate(info.blocks):
            if lang not in index or info.lang_index[j] != index[lang]:
                raise StoreError(f"part {info.path} holds language {lang!r} (index {info.lang_index[j]}), which "
                                 "this corpus does not have there; run with --overwrite or choose another --out")
            if stop > S:
                raise StoreError(f"part {info.path}: block {lang} [{start}, {stop}) is outside 0..{S}")
            i = index[lang]
            seen[i, s] += 1
            ntok[i, s] = info.n_tokens[j]
            spans.setdefault(i, []).append((start, stop, info.path.name))
    for i, lang in enumerate(languages):
        missing = np.flatnonzero(mask[i] & (seen[i] == 0))
        twice = np.flatnonzero(seen[i] > 1)
        extra = np.flatnonzero(~mask[i] & (seen[i] > 0))
        if missing.size:
            raise StoreError(f"language {lang}: {missing.size} sentences are in no part "
                             f"({_ids(sentence_ids, missing)}); run the same command again to finish them")
        if twice.size:
            raise StoreError(f"language {lang}: {twice.size} sentences are in more than one part "
                             f"({_ids(sentence_ids, twice)}); run with --overwrite")
        if extra.size:
            raise StoreError(f"language {lang}: parts hold {extra.size} sentences the corpus lacks "
                             f"({_ids(sentence_ids, extra)}); run with --overwrite")
        bad = np.flatnonzero(mask[i] & (ntok[i] <= 0))
        if bad.size:
            raise StoreError(f"language {lang}: {bad.size} present sentences have no tokens "
                             f"({_ids(sentence_ids, bad)})")
        sp = sorted(spans.get(i, []))
        for (a0, b0, n0), (a1, b1, n1) in zip(sp, sp[1:]):
            if a1 < b0:
                raise StoreError(f"language {lang}: blocks [{a0}, {b0}) in {n0} and [{a1}, {b1}) in {n1} overlap; "
                                 "run with --overwrite")
    return ntok


def index_image(infos: list[PartInfo], shard_prefix: str, *, languages: Sequence[str], sentence_ids: Sequence[str],
                mask: np.ndarray, ntok: np.ndarray, K: int, H: int, store_dtype: str, attrs: Mapping[str, Any],
                layers: Sequence[int] | None, documents: Sequence[str] | None) -> memoryview:
    """The HDF5 bytes of the store index: ids, mask, n_tokens, the block table and the
    virtual /embeddings over `<shard_prefix>/<part file>`."""
    L, S = mask.shape
    index = {lang: i for i, lang in enumerate(languages)}
    layout = h5py.VirtualLayout(shape=(L, K, S, H), dtype=store_dtype)
    rows: list[tuple[int, int, int, str, str, str]] = []
    for info in infos:
        name = f"{shard_prefix}/{info.path.name}" if shard_prefix else info.path.name
        for j, (lang, start, stop, _) in enumerate(info.blocks):
            if stop <= start:
                continue
            i = index[lang]
            layout[i, :, start:stop, :] = h5py.VirtualSource(name, info.dataset(j), shape=(K, stop - start, H),
                                                             dtype=store_dtype)
            rows.append((i, start, stop, info.sha256[j], name, info.dataset(j)))
    rows.sort()
    bio = io.BytesIO()
    with h5py.File(bio, "w", libver=("v110", "latest")) as f:
        f.create_dataset("languages", data=np.array(list(languages), dtype=object), dtype=STR)
        f.create_dataset("sentence_ids", data=np.array(list(sentence_ids), dtype=object), dtype=STR)
        f.create_dataset("mask", data=np.asarray(mask, bool))
        f.create_dataset("n_tokens", data=ntok)
        if layers is not None:
            f.create_dataset("layers", data=np.asarray(list(layers), np.int64))
        if documents is not None:
            if len(documents) != S:
                raise StoreError(f"documents has {len(documents)} entries for {S} sentences")
            f.create_dataset("documents", data=np.array([str(d) for d in documents], dtype=object), dtype=STR)
        write_blocks_table(f, *zip(*rows)) if rows else write_blocks_table(f, [], [], [], [], [], [])
        f.create_virtual_dataset("embeddings", layout, fillvalue=0)
        for k, v in default_attrs(**{k: v for k, v in attrs.items()}).items():
            f.attrs[k] = "" if v is None else v
        f.attrs["dtype"] = np.dtype(store_dtype).name
        f.attrs["storage"] = "shards"
        f.attrs["shards"] = shard_prefix
        f.attrs["chunk_sentences"] = span_chunk(K, H, np.dtype(store_dtype).itemsize, S)
        record_provenance(f)
    return bio.getbuffer()


def join_parts(folder: Path, out: Path, *, languages: Sequence[str], sentence_ids: Sequence[str],
               mask: np.ndarray, provenance: Mapping, n_layers: int, hidden: int, store_dtype: str,
               attrs: Mapping, layers: Sequence[int] | None = None, documents: Sequence[str] | None = None,
               progress: bool = True, known: Mapping[str, PartInfo] | None = None) -> Path:
    """Verify the parts in `folder` and make `out` a store over them, by reference (see the
    module doc). `n_layers` is the number of hidden states stored (len(layers) when given).
    `known`: part file name -> PartInfo already read from `folder` (a resume's finished
    parts), not read again. The parts move to `<out>.shards/`; a store already at `out` is replaced."""
    folder, out = Path(folder), Path(out)
    if out.is_dir():
        raise StoreError(f"{out} is a folder; --out must name a store file (e.g. {out / 'store.h5'})")
    if folder == parts_dir(out):
        recover_interrupted_join(out)
    mask = np.asarray(mask, bool)
    K = len(layers) if layers is not None else int(n_layers)
    if layers is not None and list(layers) == list(range(int(n_layers))) and K == n_layers:
        layers = None  # all hidden states: no /layers dataset
    for p in folder.iterdir() if folder.is_dir() else []:
        if is_tmp(p):
            p.unlink(missing_ok=True)
    infos = _read_parts(folder, provenance, out, known)
    ntok = _coverage(infos, languages, sentence_ids, mask, K, int(hidden), store_dtype)
    store_attrs = dict(attrs)
    store_attrs.pop("dtype", None)
    if layers is not None:
        store_attrs.setdefault("layers", "[" + ", ".join(str(int(k)) for k in layers) + "]")

    shards = shards_dir(out)
    image = index_image(infos, shards.name, languages=languages, sentence_ids=sentence_ids, mask=mask, ntok=ntok,
                        K=K, H=int(hidden), store_dtype=store_dtype, attrs=store_attrs, layers=layers,
                        documents=documents)
    check_free_space(out.parent, len(image) + (1 << 20), f"the store index {out.name}")
    tmp = tmp_path(out)
    write_bytes_safely(image, tmp, "store index", "The parts are kept; free space and run the same command again")
    try:
        moved = folder.resolve() != shards.resolve()
        if moved:
            if out.exists() or shards.exists():  # replacing a finished store (its own shards go with it)
                out.unlink(missing_ok=True)
                shutil.rmtree(shards, ignore_errors=True)
            os.replace(folder, shards) if folder.exists() else shards.mkdir()
        if os.environ.get("BABELMAP_TEST_KILL_IN_JOIN"):  # test hook: killed between the two renames
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            os.replace(tmp, out)
        except BaseException:
            if moved:
                os.replace(shards, folder)
            raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot put the store {out} in place ({e}); the parts are kept in {folder}, "
                         "run the same command again") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)
    log.info("joined %d parts into %s by reference (%d blocks)", len(infos), out,
             sum(len(i.blocks) for i in infos))
    return out
