"""SimilarityResult: one language-by-language measure for all layers and all pairs, plus support.

The one similarity-result type: `babelmap.similarity` computes it, `babelmap.load` opens it,
the pipeline and the analysis read it. One HDF5 file (DESIGN.md, "SimilarityResult"):

| path | shape, dtype | meaning |
|---|---|---|
| `/languages` | [L] utf-8 str | language ids |
| `/layers` | [K'] int64 | which hidden states (0 = embedding output) |
| `/sim` | [K', L, L] float32 | mean cosine over shared sentences; diagonal 1; NaN where count is 0 |
| `/count` | [L, L] int32 | shared sentences per pair |
| `/stderr`, `/ci_low`, `/ci_high` | [K', L, L] float32 | bootstrap, when asked |

File attributes: the store's provenance, its own `format = "babelmap.similarity"` and
`format_version`, `measure` (default `cosine-mean`), bootstrap settings, and `best_layer` /
`best_layer_measure` when a run chose a default layer. Languages are asked for by id or by
name (`"German"`, `"de"`, `"deu_Latn"`); `layer=None` means the recorded default layer
(`best_layer`), else the last layer, and `repr` says which and why.
Files are written through a temporary name and renamed, so a file at the final path is complete.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError, LanguageError, StoreError
from babelmap.kernels.matrix import LanguageMatrix

log = logging.getLogger("babelmap")

FORMAT = "babelmap.similarity"
FORMAT_VERSION = 1
DEFAULT_MEASURE = "cosine-mean"
_OPTIONAL = ("stderr", "ci_low", "ci_high")
_FORMAT_KEYS = ("format", "format_version", "result_format", "result_format_version")


class LayerError(BabelmapError, KeyError):
    """A layer that is not in the result (a KeyError too, for code that catches lookups)."""

    def __str__(self) -> str:            # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _decode(a) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a]


def _attr_value(v: Any) -> Any:
    """A value HDF5 can hold as an attribute (None -> "", dict/list -> JSON)."""
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    return v


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None or v == "" else int(v)
    except (TypeError, ValueError):
        return None


class SimilarityResult:
    """Per-layer language-by-language similarity (`sim[K', L, L]`) with pair support (`count[L, L]`).

    `layers` are hidden-state indices as in the store (0 = embedding output), so `layer=12` means
    hidden state 12, not position 12 in `layers`; negative values count from the end of `layers`.
    `layer=None` means `default_layer`: the recorded `best_layer`, else the last layer.
    Optional bootstrap arrays `stderr`, `ci_low`, `ci_high` have the shape of `sim`. `attrs`
    carries provenance and the computation's settings; `path` is the file it was read from.
    """

    format = FORMAT

    def __init__(self, languages: Sequence[str], layers: Sequence[int], sim: np.ndarray, count: np.ndarray,
                 stderr: np.ndarray | None = None, ci_low: np.ndarray | None = None,
                 ci_high: np.ndarray | None = None, attrs: Mapping | None = None,
                 path: str | os.PathLike | None = None):
        self._languages = [str(x) for x in languages]
        self._layers = [int(k) for k in layers]
        L, K = len(self._languages), len(self._layers)
        if len(set(self._languages)) != L:
            raise ValueError("duplicate language ids in SimilarityResult")
        if len(set(self._layers)) != K:
            raise ValueError("duplicate layers in SimilarityResult")
        if K == 0:
            raise ValueError("a SimilarityResult needs at least one layer")
        self.sim = np.asarray(sim, dtype=np.float32)
        self.count = np.asarray(count, dtype=np.int32)
        if self.sim.shape != (K, L, L):
            raise ValueError(f"sim must be [{K}, {L}, {L}] (layers, languages, languages), got {self.sim.shape}")
        if self.count.shape != (L, L):
            raise ValueError(f"count must be [{L}, {L}], got {self.count.shape}")
        self.stderr = None if stderr is None else np.asarray(stderr, dtype=np.float32)
        self.ci_low = None if ci_low is None else np.asarray(ci_low, dtype=np.float32)
        self.ci_high = None if ci_high is None else np.asarray(ci_high, dtype=np.float32)
        for name in _OPTIONAL:
            a = getattr(self, name)
            if a is not None and a.shape != self.sim.shape:
                raise ValueError(f"{name} must have the shape of sim {self.sim.shape}, got {a.shape}")
        # the store's own `format` (babelmap.store) is provenance of the input, not of this file
        self.attrs: dict = {k: v for k, v in dict(attrs or {}).items() if k not in _FORMAT_KEYS}
        self.attrs.setdefault("measure", DEFAULT_MEASURE)
        self.path = Path(path) if path is not None else None
        self._index = {l: i for i, l in enumerate(self._languages)}
        self._layer_pos = {k: i for i, k in enumerate(self._layers)}

    # -- axes ----------------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return list(self._languages)

    @property
    def layers(self) -> list[int]:
        return list(self._layers)

    @property
    def measure(self) -> str:
        """What `sim` holds: `cosine-mean` (mPLM-Sim), `mexa`, `retrieval@k`, ..."""
        return str(self.attrs.get("measure") or DEFAULT_MEASURE)

    @property
    def raw(self) -> "SimilarityResult":
        """Itself (kept for code written against the former `babelmap.api.Result` wrapper)."""
        return self

    def __len__(self) -> int:
        return len(self._languages)

    def __contains__(self, lang: str) -> bool:
        return lang in self._index

    def id(self, name_or_id: str) -> str:
        """This result's id for a language id, code or name (`deu_Latn`, `de`, `German`);
        LanguageError with suggestions when unknown, ambiguous or not in the result."""
        if name_or_id in self._index:
            return name_or_id
        from babelmap.engine.languages import resolve, suggest
        try:
            return resolve(str(name_or_id), self._languages)
        except LanguageError as e:
            close = e.suggestions or suggest(str(name_or_id), self._languages)
            raise LanguageError(f"language {name_or_id!r} is not in this similarity result "
                                f"({len(self._languages)} languages)", suggestions=close) from None

    def index(self, lang: str) -> int:
        """Position of a language (id or name; see `id`)."""
        return self._index[self.id(lang)]

    @property
    def default_layer(self) -> int:
        """The layer `layer=None` means: the recorded `best_layer` when it is one of `layers`,
        else the last layer."""
        best = _int_or_none(self.attrs.get("best_layer"))
        return best if best in self._layer_pos else self._layers[-1]

    @property
    def default_layer_reason(self) -> str:
        """Why `default_layer` is the default, in words."""
        if _int_or_none(self.attrs.get("best_layer")) in self._layer_pos:
            m = str(self.attrs.get("best_layer_measure") or "against a linguistic measure")
            return f"recorded best layer: {m}"
        return "the last layer; no best layer recorded"

    def layer_index(self, layer: int | None = None) -> int:
        """Position in `layers` of hidden state `layer`; None = `default_layer` (logged),
        negative values count from the end of `layers` (-1 = last)."""
        if layer is None:
            layer = self.default_layer
            log.info("using layer %d: %s", layer, self.default_layer_reason)
        layer = int(layer)
        if layer in self._layer_pos:
            return self._layer_pos[layer]
        if layer < 0 and -layer <= len(self._layers):
            return len(self._layers) + layer
        raise LayerError(f"layer {layer} is not in this similarity result (layers: {self._layers})")

    # -- access --------------------------------------------------------------------------
    def get(self, a: str, b: str, layer: int | None = None, with_layer: bool = False):
        """sim(a, b) at hidden state `layer` (None = `default_layer`), languages by id or name;
        NaN when they share no sentence. `with_layer=True` returns (value, layer used)."""
        k = self.layer_index(layer)
        v = float(self.sim[k, self.index(a), self.index(b)])
        return (v, self._layers[k]) if with_layer else v

    def get_count(self, a: str, b: str) -> int:
        """Number of sentences a and b share."""
        return int(self.count[self.index(a), self.index(b)])

    def matrix(self, layer: int | None = None) -> LanguageMatrix:
        """The square matrix of one layer (None = `default_layer`) as a LanguageMatrix named
        `mplm-sim@<layer>` (`<measure>@<layer>` for other measures); languages with no sentence
        at all are listed in `missing`."""
        k = self.layer_index(layer)
        missing = [l for i, l in enumerate(self._languages) if self.count[i, i] == 0]
        notes = {l: "no sentence in the store" for l in missing}
        stem = "mplm-sim" if self.measure == DEFAULT_MEASURE else self.measure
        return LanguageMatrix(self._languages, self.sim[k].astype(np.float64), f"{stem}@{self._layers[k]}",
                              missing, notes)

    def nearest(self, lang: str, k: int = 10, layer: int | None = None, device: str = "cpu"
                ) -> list[tuple[str, float]]:
        """The k languages most similar to `lang` at `layer` (None = `default_layer`; itself and
        NaN pairs excluded), most similar first, as (language id, similarity)."""
        from babelmap.kernels.nearest import top_k
        i = self.index(lang)
        kpos = self.layer_index(layer)
        idx, val = top_k(self.sim[kpos], k, rows=[i], device=device)
        return [(self._languages[j], float(v)) for j, v in zip(idx[0], val[0]) if j >= 0]

    def subset(self, languages: Sequence[str]) -> "SimilarityResult":
        """Restrict (and reorder) to the given languages (ids or names), which must all be present."""
        ids = [self.id(l) for l in languages]
        idx = np.array([self._index[l] for l in ids], dtype=np.int64)
        ix = np.ix_(np.arange(len(self._layers)), idx, idx)
        opt = {n: (None if getattr(self, n) is None else getattr(self, n)[ix]) for n in _OPTIONAL}
        return SimilarityResult(ids, self._layers, self.sim[ix], self.count[np.ix_(idx, idx)],
                                attrs=dict(self.attrs), **opt)

    def select_layers(self, layers: Sequence[int]) -> "SimilarityResult":
        """Keep only the given hidden states (in the given order)."""
        pos = [self.layer_index(k) for k in layers]
        opt = {n: (None if getattr(self, n) is None else getattr(self, n)[pos]) for n in _OPTIONAL}
        return SimilarityResult(self._languages, [self._layers[p] for p in pos], self.sim[pos], self.count,
                                attrs=dict(self.attrs), **opt)

    def to_pandas(self, full: bool = False):
        """Long table with columns layer, a, b, sim, count (and stderr, ci_low, ci_high when
        present). By default one row per unordered pair (a before b in `languages`, no diagonal);
        `full=True` gives every ordered pair including the diagonal."""
        import pandas as pd
        L, K = len(self._languages), len(self._layers)
        if full:
            ia, ib = np.divmod(np.arange(L * L), L)
        else:
            ia, ib = np.triu_indices(L, k=1)
        n = len(ia)
        langs = np.array(self._languages, dtype=object)
        cols: dict = {
            "layer": np.repeat(np.array(self._layers, dtype=np.int64), n),
            "a": np.tile(langs[ia], K),
            "b": np.tile(langs[ib], K),
            "sim": self.sim[:, ia, ib].reshape(-1),
            "count": np.tile(self.count[ia, ib], K),
        }
        for name in _OPTIONAL:
            a = getattr(self, name)
            if a is not None:
                cols[name] = a[:, ia, ib].reshape(-1)
        return pd.DataFrame(cols)

    # -- files ---------------------------------------------------------------------------
    def export_tsv(self, folder: str | os.PathLike, diagonal_empty: bool = True) -> list[Path]:
        """One square TSV per layer, `<folder>/sents_layer<N>.tsv`, in the reference release format
        (ids as row and column labels, tab separated, empty diagonal as released; NaN cells empty).
        Atomic: written into a temporary sibling folder, then renamed into place (an existing folder
        is moved aside first and removed after), so `folder` is never half written. `from_tsv`
        reads them back."""
        import shutil
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            for k in self._layers:
                self.matrix(k).to_tsv(tmp / f"sents_layer{k}.tsv", diagonal_empty=diagonal_empty)
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old.exists() and not folder.exists():
                os.replace(old, folder)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return [folder / f"sents_layer{k}.tsv" for k in self._layers]

    def summary_lines(self, layer: int | None = None, top: int = 5) -> list[str]:
        """A few lines a person reads after a run: the support (shared sentences per pair), the
        off-diagonal range and mean at `layer` (None: the last) and the `top` most similar pairs
        (only the pivot's pairs when a pivot was used)."""
        k = self._layers[-1] if layer is None else layer
        sim = self.sim[self.layer_index(k)]
        L = len(self._languages)
        off = ~np.eye(L, dtype=bool)
        pivot = self.attrs.get("pivot") or None
        if pivot:
            p = self._languages.index(pivot)
            off &= (np.arange(L)[:, None] == p) | (np.arange(L)[None, :] == p)
        vals = sim[off]
        lines = []
        if L > 1:
            no_pair = int(((self.count == 0) & off).sum() // 2)
            lines.append(f"shared sentences per {'pair with the pivot' if pivot else 'pair'}: min "
                         f"{int(self.count[off].min())}, median {int(np.median(self.count[off]))}; "
                         f"pairs without a shared sentence: {no_pair}")
        if L < 2 or not np.isfinite(vals).any():
            return lines
        rows, cols = np.triu_indices(L, 1)
        keep = off[rows, cols]
        rows, cols = rows[keep], cols[keep]
        s = sim[rows, cols]
        order = np.argsort(-np.where(np.isnan(s), -np.inf, s))[:top]
        pairs = ", ".join(f"{self._languages[rows[o]]}-{self._languages[cols[o]]} {s[o]:.4f}" for o in order
                          if np.isfinite(s[o]))
        return lines + [f"layer {k}: off-diagonal {self.measure} {np.nanmin(vals):.4f} .. {np.nanmax(vals):.4f} "
                        f"(mean {np.nanmean(vals):.4f})", f"highest at layer {k}: {pairs}"]

    @classmethod
    def from_tsv(cls, folder: str | os.PathLike, pattern: str = "sents_layer*.tsv") -> "SimilarityResult":
        """Read one square TSV per layer (`export_tsv`'s files, or the reference release layout
        `sents_layer<N>.tsv`); layer numbers come from the file names, the diagonal is set to 1,
        and count is 1 for every pair (TSVs carry no support)."""
        folder = Path(folder)

        def layer_of(p: Path) -> int:
            nums = re.findall(r"(\d+)", p.stem)
            if not nums:
                raise StoreError(f"{p}: no layer number in the file name (expected sents_layer<N>.tsv)")
            return int(nums[-1])

        files = sorted(folder.glob(pattern), key=layer_of)
        if not files:
            raise StoreError(f"no files matching {pattern} in {folder}")
        mats = []
        for p in files:
            try:
                mats.append(LanguageMatrix.from_tsv(p))
            except ValueError as e:
                raise StoreError(str(e)) from None
        langs = mats[0].languages
        for p, m in zip(files, mats):
            if sorted(m.languages) != sorted(langs):
                raise StoreError(f"{p}: languages differ from {files[0].name}")
        sim = np.stack([m.subset(langs).values for m in mats])
        for k in range(sim.shape[0]):
            np.fill_diagonal(sim[k], 1.0)
        count = np.ones((len(langs), len(langs)), dtype=np.int32)
        return cls(langs, [layer_of(p) for p in files], sim.astype(np.float32), count,
                   attrs={"model": folder.name, "source": str(folder), "measure": DEFAULT_MEASURE},
                   path=folder)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the HDF5 file (DESIGN.md layout), built in memory and written through a temporary
        name, then renamed: a full disk is one StoreError and leaves nothing half-written."""
        import h5py
        from babelmap.engine.diskwrite import write_hdf5_safely
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def build(f: "h5py.File") -> None:
            f.create_dataset("languages", data=np.array(self._languages, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("layers", data=np.array(self._layers, dtype=np.int64))
            f.create_dataset("sim", data=self.sim, dtype=np.float32)
            f.create_dataset("count", data=self.count, dtype=np.int32)
            for name in _OPTIONAL:
                a = getattr(self, name)
                if a is not None:
                    f.create_dataset(name, data=a, dtype=np.float32)
            attrs = {**self.attrs, "measure": self.measure, "format": FORMAT, "format_version": FORMAT_VERSION}
            for k, v in attrs.items():
                f.attrs[k] = _attr_value(v)

        return write_hdf5_safely(path, build, "similarity result")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SimilarityResult":
        """Read a file written by `save` (also files of earlier versions, which lack `format`)."""
        import h5py
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no similarity result at {path}")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise StoreError(f"{path} is not a readable HDF5 file ({e})") from e
        with f:
            for need in ("languages", "layers", "sim", "count"):
                if need not in f:
                    raise StoreError(f"{path} is not a similarity result: dataset /{need} is missing")
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
            opt = {n: (f[n][()] if n in f else None) for n in _OPTIONAL}
            return cls(_decode(f["languages"][()]), [int(x) for x in f["layers"][()]], f["sim"][()],
                       f["count"][()], attrs=attrs, path=path, **opt)

    def __repr__(self) -> str:
        boot = f", bootstrap B={self.attrs.get('bootstrap')}" if self.stderr is not None else ""
        src = f" from {self.path}" if self.path is not None else ""
        lay = self._layers
        shown = f"{lay[0]}..{lay[-1]}" if lay == list(range(lay[0], lay[-1] + 1)) and len(lay) > 2 else str(lay)
        return (f"<SimilarityResult{src}: {len(self._languages)} languages x {len(lay)} layers ({shown}), "
                f"measure {self.measure}, default layer {self.default_layer} ({self.default_layer_reason})"
                f"{boot}, model={self.attrs.get('model', '')!r}>")
