"""The store: all layers' pooled sentence embeddings of all languages, read through one HDF5 file.

Layout and attributes are the contract of DESIGN.md ("Store"). Two storages, one reader:
- a single file (`StoreWriter`, `write_store`: tests, small jobs, old stores);
- an index plus shards (written by engine.join): `<store>` is a small HDF5 file whose
  `/embeddings` is a virtual dataset over the part files in `<store>.shards/` (source paths
  relative to the index's folder, so the two move together). Plain h5py reads both.
Both record a sha256 per block (`/blocks/*`) that `babelmap check` verifies. Writers always go
through a temporary name and an atomic rename, so a file at the final path is always complete.
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
OTHER_FORMATS = {"babelmap.similarity": "a similarity result (open it with babelmap.load or `babelmap info`)",
                 "babelmap.words": "a word store (open it with babelmap.engine.words.open_words)",
                 "babelmap.part": "a part of an unfinished extraction (run the extraction again to finish it)"}
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
        # refuse early: HDF5 meeting a full disk mid-write can crash the process later
        from babelmap.engine.diskspace import check_free_space, estimate_store_bytes
        check_free_space(self.path.parent, estimate_store_bytes(L * S, n_layers, hidden, dtype, L, S),
                         f"the store {self.path.name}")
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

    def close(self, checksums: bool = True) -> Path:
        """Record one checksum per language (each language is one block, [0, S)), then flush,
        fsync and rename into place. A failed write removes the temporary (StoreError)."""
        try:
            if checksums:
                record_language_blocks(self.f)
            record_provenance(self.f)
            self.f.flush()
            self.f.close()
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except (OSError, RuntimeError) as e:
            self.abort()
            from babelmap.engine.diskspace import write_failure
            raise write_failure(e, self.path, 0, "store", "Nothing was written; free space and run again") from None
        return self.path

    def abort(self) -> None:
        try:
            self.f.close()
        except Exception:  # noqa: BLE001 - a file that failed to write may fail to close too
            pass
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


def _decode(a) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a]


def provenance_record(attrs: Mapping) -> dict:
    """The provenance attributes of `attrs` (not bookkeeping like `created`), normalised."""
    skip = {"format", "format_version", "babelmap_version", "created", "command", "skipped", "skip_bad",
            "storage", "shards", "provenance", "provenance_sha256", "chunk_sentences", "provenance_keys",
            "part_version", "uid"}
    out = {}
    for k, v in attrs.items():
        if k in skip:
            continue
        if isinstance(v, bytes):
            v = v.decode()
        if hasattr(v, "item"):
            v = v.item()
        out[k] = v if isinstance(v, (str, int, float, bool)) else str(v)
    return out


def record_provenance(f: h5py.File) -> None:
    """Copy the provenance attributes into one JSON attribute `provenance` (and its sha256),
    so `babelmap check` can tell an attribute changed after extraction."""
    import hashlib
    import json
    rec = json.dumps(provenance_record(dict(f.attrs)), sort_keys=True, ensure_ascii=False)
    f.attrs["provenance"] = rec
    f.attrs["provenance_sha256"] = hashlib.sha256(rec.encode()).hexdigest()


def write_blocks_table(f: h5py.File, lang_index, start, stop, sha256, shard, dataset) -> None:
    """`/blocks/*`: one row per block (language, [start, stop), sha256, shard file, dataset)."""
    g = f.require_group("blocks")
    g.create_dataset("lang_index", data=np.asarray(lang_index, np.int64))
    g.create_dataset("start", data=np.asarray(start, np.int64))
    g.create_dataset("stop", data=np.asarray(stop, np.int64))
    g.create_dataset("sha256", data=np.array(list(sha256), dtype=object), dtype=STR)
    g.create_dataset("shard", data=np.array(list(shard), dtype=object), dtype=STR)
    g.create_dataset("dataset", data=np.array(list(dataset), dtype=object), dtype=STR)


def record_language_blocks(f: h5py.File) -> None:
    """Checksum each language of a single-file store as one block [0, S) (reads it back)."""
    from babelmap.engine.parts import BlockHasher
    mask, ntok, emb = f["mask"][()], f["n_tokens"][()], f["embeddings"]
    L, K, S, H = emb.shape
    piece = max(1, sentence_chunk(K, H, emb.dtype.itemsize, S) * 8)
    sums = []
    for i in range(L):
        pos = np.flatnonzero(mask[i])
        h = BlockHasher(pos, ntok[i, pos], K, H, emb.dtype)
        for a in range(0, S, piece):
            local = np.flatnonzero(mask[i, a:a + piece])
            if local.size:
                h.rows(emb[i, :, a:a + piece, :][:, local, :])
        sums.append(h.hexdigest())
    if "blocks" in f:
        del f["blocks"]
    write_blocks_table(f, range(L), [0] * L, [S] * L, sums, [""] * L, [""] * L)


def raise_open_files(n: int, path: str | os.PathLike = "") -> None:
    """Let this process open `n` more files: HDF5 keeps every shard of a virtual dataset open,
    and a shard it cannot open reads as zeros, silently. StoreError when the hard limit is
    too low for that."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    new = want if hard == resource.RLIM_INFINITY else min(hard, want)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError):  # pragma: no cover
        new = soft
    if new < want:
        raise StoreError(f"store {path} has {n} shard files, but this process may open only {new} files "
                         f"(ulimit -n); raise the limit to at least {want} (or pack the store into one file "
                         "with babelmap check --pack)")


class Store:
    """A read-only view of a store (single file, or index + shards); arrays are read lazily."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a store (an HDF5 file written by babelmap extract)")
        if not self.path.exists():
            raise StoreError(f"no store at {self.path}")
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"{self.path} is not a readable HDF5 file ({e}); "
                             "re-run the extraction to rebuild it") from None
        try:
            self._open()
        except BaseException:
            self.f.close()
            raise

    def _open(self) -> None:
        fmt = self.f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != FORMAT:
            what = OTHER_FORMATS.get(str(fmt))
            raise StoreError(f"{self.path} is {what}, not an embedding store" if what else
                             f"{self.path} is not a babelmap store (format attribute {fmt!r})")
        for name in ("languages", "sentence_ids", "mask", "embeddings"):
            if name not in self.f:
                raise StoreError(f"store {self.path} has no /{name} dataset (damaged, or not written by "
                                 "babelmap extract); re-run the extraction with --overwrite")
        self.languages: list[str] = _decode(self.f["languages"][()])
        self.sentence_ids: list[str] = _decode(self.f["sentence_ids"][()])
        self._index = {l: i for i, l in enumerate(self.languages)}
        self._emb = self.f["embeddings"]
        if self._emb.is_virtual:
            # no chunk cache: HDF5 gives every shard dataset its own 1 MiB cache, so a read across
            # all languages kept ~1 MiB per block resident (136 MiB for 100 blocks of 1 MiB chunks,
            # 30 MiB without, and 2.5x faster); the data is uncompressed, so nothing is lost
            self.f.close()
            self.f = h5py.File(self.path, "r", rdcc_nbytes=0)
            self._emb = self.f["embeddings"]
            missing = [p for p in self.shard_paths if not p.is_file()]
            if missing:
                raise StoreError(f"store {self.path}: {len(missing)} shard file(s) are missing, e.g. {missing[0]} "
                                 f"(a store is the file and its folder {self.path.name}.shards/: move or copy "
                                 "them together)")
            raise_open_files(len(self.shard_paths), self.path)

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
        """The hidden-state ids stored along the layer axis (0 = embedding output); a subset
        when the extraction kept only some (`--layers`). `block(layers=...)` and
        `embeddings(lang, layer)` index positions along this axis."""
        if "layers" in self.f:
            return [int(k) for k in self.f["layers"][()]]
        return list(range(self._emb.shape[1]))

    @property
    def documents(self) -> list[str] | None:
        """Per-sentence document ids (book, article...), or None when the corpus had none."""
        return _decode(self.f["documents"][()]) if "documents" in self.f else None

    @property
    def is_sharded(self) -> bool:
        """True when /embeddings is a virtual dataset over shard files."""
        return bool(self._emb.is_virtual)

    @property
    def shard_paths(self) -> list[Path]:
        """The shard files the store reads (absolute; empty for a single-file store); read from
        the block table once per open store (a store file is never changed in place)."""
        cached = self.__dict__.get("_shard_paths")
        if cached is None:
            names = (sorted({s for s in _decode(self.f["blocks/shard"][()]) if s})
                     if "blocks" in self.f and "shard" in self.f["blocks"] else [])
            cached = self.__dict__["_shard_paths"] = [self.path.parent / n for n in names]
        return list(cached)

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk: the file plus its shards."""
        return os.path.getsize(self.path) + sum(p.stat().st_size for p in self.shard_paths if p.exists())

    @property
    def hidden_size(self) -> int:
        return int(self._emb.shape[3])

    @property
    def dtype(self) -> np.dtype:
        return self._emb.dtype

    @property
    def chunk_sentences(self) -> int:
        if self._emb.chunks:
            return int(self._emb.chunks[2])
        c = self.f.attrs.get("chunk_sentences")
        return int(c) if c else len(self.sentence_ids)

    @property
    def mask(self) -> np.ndarray:
        return self.f["mask"][()]

    @property
    def n_tokens(self) -> np.ndarray:
        if "n_tokens" not in self.f:
            return self.mask.astype(np.int32)
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
        # read only the asked hidden states from disk (h5py wants them increasing, no repeats)
        ks = slice(None) if layers is None else sorted({int(k) for k in layers})
        if rows is None:
            data = self._emb[:, ks, sl, :]
        else:
            data = np.stack([self._emb[i, ks, sl, :] for i in rows])
        if layers is not None and list(layers) != ks:
            data = data[:, [ks.index(int(k)) for k in layers]]
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


def remove_store(out: str | os.PathLike) -> None:
    """Delete a store completely: the file, its shards, parts and temporaries (--overwrite)."""
    import shutil
    out = Path(out)
    if out.is_file() or out.is_symlink():
        out.unlink()
    for suffix in (".shards", ".parts"):
        shutil.rmtree(out.with_name(out.name + suffix), ignore_errors=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        stale.unlink(missing_ok=True)


def describe_store(path: str | os.PathLike, seconds: float | None = None) -> str:
    """A few lines describing a store: shape, dtype, size on disk, model, corpus, coverage."""
    path = Path(path)
    with open_store(path) as st:
        L, K, S, H = st.shape
        mask = st.mask
        ntok = st.n_tokens
        a = st.attrs
        layers = st.layers
        shards = st.shard_paths
        size = st.disk_bytes / 2**20
        docs = st.documents
    where = (f"{size:.1f} MiB: index {os.path.getsize(path) / 2**20:.1f} MiB + {len(shards)} shard{'s' if len(shards) != 1 else ''} in "
             f"{path.name}.shards/" if shards else f"{size:.1f} MiB")
    row = K * H * np.dtype(str(a.get("dtype") or "float16")).itemsize
    lines = [f"store {path}: {L} languages x {S} sentences x {K} hidden states x {H} dims, "
             f"{a.get('dtype')}, {where}",
             f"  model {a.get('model')} (pooling {a.get('pooling')}, {a.get('compute_dtype', '?')}), "
             f"corpus {a.get('corpus_name')}" + (f", {len(set(docs))} documents" if docs else ""),
             f"  {int(mask.sum())} sentences present ({100 * mask.mean():.1f}% of the grid), "
             f"{int(ntok.sum())} tokens, {row} bytes per sentence"]
    if layers != list(range(K)):
        lines.insert(1, f"  hidden states kept: {layers}")
    if seconds is not None:
        lines[-1] += f", {seconds:.1f} s"
    return "\n".join(lines)


def pack_store(src: str | os.PathLike, dest: str | os.PathLike, progress: bool = False) -> Path:
    """Copy a store (index + shards) into one self-contained file `dest`, e.g. to move or
    share a single file. The block checksums are carried over unchanged, so `babelmap check
    dest` proves the copy faithful. Written through a temporary name; refused early when
    the disk lacks the space."""
    from tqdm.auto import tqdm

    from babelmap.engine.diskspace import check_free_space, write_failure
    src, dest = Path(src), Path(dest)
    if dest.resolve() == src.resolve():
        raise StoreError(f"--pack needs another file name than the store itself ({src})")
    with open_store(src) as st:
        L, K, S, H = st.shape
        check_free_space(dest.parent, int(st.disk_bytes * 1.05) + (4 << 20), f"the packed copy {dest.name}")
        tmp = tmp_path(dest)
        f = None
        try:
            f = h5py.File(tmp, "w")
            for name in ("languages", "sentence_ids", "mask", "n_tokens", "layers", "documents"):
                if name in st.f:
                    st.f.copy(st.f[name], f, name)
            c = sentence_chunk(K, H, st.dtype.itemsize, S)
            emb = f.create_dataset("embeddings", shape=(L, K, S, H), dtype=st.dtype,
                                   chunks=(1, K, c, H) if S else None, fillvalue=0)
            step = c * 16
            for i in tqdm(range(L), desc="pack", unit="lang", disable=not progress, leave=False):
                for a in range(0, S, step):
                    emb[i, :, a:a + step, :] = st._emb[i, :, a:a + step, :]
            if "blocks" in st.f:
                g = st.f["blocks"]
                n = len(g["lang_index"])
                write_blocks_table(f, g["lang_index"][()], g["start"][()], g["stop"][()],
                                   _decode(g["sha256"][()]), [""] * n, [""] * n)
            else:
                record_language_blocks(f)
            for k, v in st.f.attrs.items():
                if k not in ("storage", "shards", "chunk_sentences"):
                    f.attrs[k] = v
            f.attrs["storage"] = "single"
            f.close()
            f = None
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except (OSError, RuntimeError) as e:
            raise write_failure(e, dest, int(st.disk_bytes), "the packed copy", "Nothing was written; "
                                "free space and run again") from None
        finally:
            if f is not None:
                try:
                    f.close()
                except Exception:  # noqa: BLE001 - closing a file that failed to write may fail too
                    pass
            if tmp.exists():
                tmp.unlink()
    return dest
