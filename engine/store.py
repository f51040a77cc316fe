"""The store: all layers' pooled sentence embeddings of all languages in one HDF5 file.

Layout and attributes are the contract of DESIGN.md ("Store"). Writers always go through a
temporary name and an atomic rename, so a file at the final path is always complete.
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import h5py
import numpy as np

from babelmap.engine.errors import StoreError

FORMAT = "babelmap.store"
FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 20
STR = h5py.string_dtype("utf-8")
PROVENANCE_KEYS = ("model", "model_fingerprint", "pooling", "dtype", "max_length", "prefix",
                   "corpus_name", "corpus_fingerprint")


def babelmap_version() -> str:
    try:
        from importlib.metadata import version
        return version("babelmap")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def sentence_chunk(n_layers: int, hidden: int, itemsize: int, n_sentences: int) -> int:
    """Sentences per chunk so that one (1, K, c, H) chunk is about 1 MiB."""
    c = max(1, CHUNK_BYTES // max(1, n_layers * hidden * itemsize))
    return int(min(c, max(1, n_sentences)))


def default_attrs(**attrs) -> dict:
    """Provenance attributes with the bookkeeping ones filled in (created, version, command)."""
    out = {"format": FORMAT, "format_version": FORMAT_VERSION, "babelmap_version": babelmap_version(),
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(sys.argv)}
    out.update(attrs)
    return out


def tmp_path(path: str | os.PathLike) -> Path:
    """A temporary sibling name unique to this process."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


class StoreWriter:
    """Create a store at `path` through a temporary file; `close()` renames it into place.

    Write each language with `write_language(i, emb[K, S, H], n_tokens[S], mask[S])` or
    sentence blocks with `write_rows(i, start, emb[K, s, H])`.
    """

    def __init__(self, path: str | os.PathLike, languages: Sequence[str], sentence_ids: Sequence[str],
                 n_layers: int, hidden: int, dtype: str = "float16", attrs: Mapping | None = None,
                 mask: np.ndarray | None = None, n_tokens: np.ndarray | None = None):
        self.path = Path(path)
        self.tmp = tmp_path(self.path)
        L, S = len(languages), len(sentence_ids)
        self.f = h5py.File(self.tmp, "w")
        self.f.create_dataset("languages", data=np.array(list(languages), dtype=object), dtype=STR)
        self.f.create_dataset("sentence_ids", data=np.array(list(sentence_ids), dtype=object), dtype=STR)
        self.f.create_dataset("mask", data=np.zeros((L, S), bool) if mask is None else np.asarray(mask, bool))
        self.f.create_dataset("n_tokens", data=np.zeros((L, S), np.int32) if n_tokens is None
                              else np.asarray(n_tokens, np.int32))
        itemsize = np.dtype(dtype).itemsize
        c = sentence_chunk(n_layers, hidden, itemsize, S)
        self.emb = self.f.create_dataset("embeddings", shape=(L, n_layers, S, hidden), dtype=dtype,
                                         chunks=(1, n_layers, c, hidden) if S else None, fillvalue=0)
        for k, v in default_attrs(dtype=dtype, **dict(attrs or {})).items():
            self.f.attrs[k] = v if v is not None else ""

    def write_language(self, i: int, emb: np.ndarray, n_tokens: np.ndarray | None = None,
                       mask: np.ndarray | None = None) -> None:
        self.emb[i] = np.asarray(emb, dtype=self.emb.dtype)
        if n_tokens is not None:
            self.f["n_tokens"][i] = n_tokens
        if mask is not None:
            self.f["mask"][i] = mask

    def write_rows(self, i: int, start: int, emb: np.ndarray) -> None:
        self.emb[i, :, start:start + emb.shape[1]] = np.asarray(emb, dtype=self.emb.dtype)

    def close(self) -> Path:
        self.f.flush()
        self.f.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_store(path: str | os.PathLike, languages: Sequence[str], sentence_ids: Sequence[str],
                embeddings: np.ndarray, mask: np.ndarray | None = None, n_tokens: np.ndarray | None = None,
                dtype: str = "float16", attrs: Mapping | None = None) -> Path:
    """Write a whole store from in-memory arrays (embeddings [L, K, S, H]); rows of missing
    sentences are zeroed. For tests, synthetic benchmarks and small jobs."""
    embeddings = np.asarray(embeddings)
    L, K, S, H = embeddings.shape
    mask = np.ones((L, S), bool) if mask is None else np.asarray(mask, bool)
    if n_tokens is None:
        n_tokens = mask.astype(np.int32)
    with StoreWriter(path, languages, sentence_ids, K, H, dtype, attrs, mask, n_tokens) as w:
        for i in range(L):
            w.write_language(i, np.where(mask[i][None, :, None], embeddings[i], 0))
    return Path(path)


class Store:
    """A read-only view of a store; arrays are read lazily from disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"no store at {self.path}")
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"{self.path} is not a readable HDF5 file ({e}); "
                             "re-run the extraction to rebuild it") from e
        if self.f.attrs.get("format") != FORMAT:
            raise StoreError(f"{self.path} is not a babelmap store (format attribute "
                             f"{self.f.attrs.get('format')!r})")
        self.languages: list[str] = [s.decode() if isinstance(s, bytes) else s for s in self.f["languages"][()]]
        self.sentence_ids: list[str] = [s.decode() if isinstance(s, bytes) else s
                                        for s in self.f["sentence_ids"][()]]
        self._index = {l: i for i, l in enumerate(self.languages)}
        self._emb = self.f["embeddings"]

    # -- metadata ------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.f.attrs.items()}

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(L, K, S, H)."""
        return tuple(self._emb.shape)  # type: ignore[return-value]

    @property
    def layers(self) -> list[int]:
        return list(range(self._emb.shape[1]))

    @property
    def hidden_size(self) -> int:
        return int(self._emb.shape[3])

    @property
    def dtype(self) -> np.dtype:
        return self._emb.dtype

    @property
    def chunk_sentences(self) -> int:
        return int(self._emb.chunks[2]) if self._emb.chunks else len(self.sentence_ids)

    @property
    def mask(self) -> np.ndarray:
        return self.f["mask"][()]

    @property
    def n_tokens(self) -> np.ndarray:
        return self.f["n_tokens"][()]

    def index(self, lang: str) -> int:
        try:
            return self._index[lang]
        except KeyError:
            from babelmap.engine.languages import suggest
            raise StoreError(f"language {lang!r} is not in store {self.path} "
                             f"(close: {', '.join(suggest(lang, self.languages)) or 'none'})") from None

    # -- arrays --------------------------------------------------------------------------
    def embeddings(self, lang: str, layer: int) -> np.ndarray:
        """[S, H] pooled embeddings of one language at one hidden state (0 = embedding output)."""
        return self._emb[self.index(lang), layer]

    def block(self, sentences: slice | None = None, layers: Sequence[int] | None = None,
              languages: Sequence[str] | None = None) -> np.ndarray:
        """[L', K', s, H] for a sentence slice, all (or some) layers and languages."""
        sl = sentences if sentences is not None else slice(None)
        rows = [self.index(l) for l in languages] if languages is not None else None
        if rows is None:
            data = self._emb[:, :, sl, :]
        else:
            data = np.stack([self._emb[i, :, sl, :] for i in rows])
        if layers is not None:
            data = data[:, list(layers)]
        return data

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        L, K, S, H = self.shape
        return (f"<babelmap Store {self.path.name}: {L} languages x {K} hidden states x {S} sentences "
                f"x {H} dims, {self.dtype}, model={self.attrs.get('model')!r}>")


def open_store(path: str | os.PathLike) -> Store:
    """Open a store for reading (see `Store`)."""
    return Store(path)
