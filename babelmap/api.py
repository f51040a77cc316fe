"""The library API: `babelmap.load(...)` opens a similarity result for users.

    import babelmap
    r = babelmap.load("results/default")          # a results folder, an .h5 file, or a name
    r.get("English", "German")                    # names or ids; layer defaults to r.default_layer
    r.nearest("German", 5)
    r.correlate("genetic").summary()

`Result` wraps a `babelmap.kernels.result.SimilarityResult`. Without `layer`, methods use
`default_layer`: the best layer recorded in the result's attributes by `babelmap run`
(`best_layer`, with `best_layer_measure` saying against which measure), else the last layer;
the layer used is logged, and `get(..., with_layer=True)` returns it too.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from babelmap.engine.errors import BabelmapError, LanguageError

log = logging.getLogger("babelmap")

URIEL_KINDS = ("genetic", "geographic", "syntactic", "inventory", "phonological", "featural")
DATA_DIR = Path(__file__).resolve().parent / "data"


def shipped(name: str) -> Path:
    """Path of a result shipped in the package: `default/flores200` -> data/default_flores200.h5."""
    return DATA_DIR / (name.strip("/").replace("/", "_") + ".h5")


def load(path_or_name: str | os.PathLike) -> "Result":
    """Open a result: an HDF5 file written by SimilarityResult.save, a results folder of
    `babelmap run` (its `similarity.h5`), a folder of `sents_layer<N>.tsv` files (the reference
    release), or a shipped name such as `default/flores200`."""
    from babelmap.kernels.result import SimilarityResult
    p = Path(path_or_name)
    if p.is_dir():
        if (p / "similarity.h5").exists():
            return Result(SimilarityResult.load(p / "similarity.h5"), p / "similarity.h5")
        if list(p.glob("sents_layer*.tsv")):
            from babelmap.analysis.correlation import result_from_tsvs
            return Result(result_from_tsvs(p), p)
        raise BabelmapError(f"{p} is a folder without similarity.h5 or sents_layer*.tsv files")
    if p.exists():
        return Result(SimilarityResult.load(p), p)
    name = str(path_or_name)
    if "/" in name and not name.endswith((".h5", ".hdf5")) and not Path(name).parent.exists():
        f = shipped(name)
        if f.exists():
            return Result(SimilarityResult.load(f), f)
        have = sorted(x.stem.replace("_", "/", 1) for x in DATA_DIR.glob("*.h5")) if DATA_DIR.exists() else []
        raise BabelmapError(f"no shipped result named {name!r} (expected {f}); "
                            f"shipped: {', '.join(have) or 'none in this installation'}. "
                            "Run `babelmap run` to compute one, then `babelmap.load('results/default')`")
    raise BabelmapError(f"no similarity result at {p}")


class Result:
    """A user-facing view of a SimilarityResult: names or ids, a default layer, nearest
    languages, correlation with linguistic measures, tables."""

    def __init__(self, result: Any, path: str | os.PathLike | None = None):
        self.raw = result
        self.path = Path(path) if path is not None else None

    # -- axes ----------------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        return list(self.raw.languages)

    @property
    def layers(self) -> list[int]:
        return list(self.raw.layers)

    @property
    def attrs(self) -> dict:
        return dict(getattr(self.raw, "attrs", {}) or {})

    @property
    def default_layer(self) -> int:
        """The recorded best layer (attrs `best_layer`), else the last layer."""
        v = self.attrs.get("best_layer")
        try:
            if v is not None and v != "" and int(v) in self.layers:
                return int(v)
        except (TypeError, ValueError):
            pass
        return self.layers[-1]

    @property
    def default_layer_reason(self) -> str:
        a = self.attrs
        if "best_layer" in a and self.default_layer == _int_or_none(a.get("best_layer")):
            m = str(a.get("best_layer_measure", "against a linguistic measure"))
            return f"best layer: {m} (recorded by the run)"
        return "last layer (no best layer recorded)"

    def _layer(self, layer: int | None) -> int:
        if layer is None:
            layer = self.default_layer
            log.info("using layer %d: %s", layer, self.default_layer_reason)
        if int(layer) not in self.layers:
            raise BabelmapError(f"layer {layer} is not in this result (layers {self.layers})")
        return int(layer)

    def id(self, name_or_id: str) -> str:
        """The result's id for a language name or code (`English`, `en`, `eng_Latn`);
        LanguageError with suggestions when unknown or ambiguous."""
        if name_or_id in self.raw:
            return name_or_id
        try:
            from babelmap.engine.languages import resolve
        except ImportError:  # pragma: no cover
            resolve = None
        if resolve is not None:
            return resolve(name_or_id, self.languages)
        from babelmap.engine.languages import suggest
        raise LanguageError(f"unknown language {name_or_id!r}", suggestions=suggest(name_or_id, self.languages))

    # -- access --------------------------------------------------------------------------
    def get(self, a: str, b: str, layer: int | None = None, with_layer: bool = False):
        """Similarity of two languages (names or ids) at `layer` (None = default_layer).
        Returns a float, or (float, layer) with `with_layer=True`."""
        k = self._layer(layer)
        v = self.raw.get(self.id(a), self.id(b), k)
        return (v, k) if with_layer else v

    def nearest(self, lang: str, k: int = 10, layer: int | None = None) -> list[tuple[str, float]]:
        """The k most similar languages to `lang` at `layer` (itself excluded)."""
        return self.raw.nearest(self.id(lang), k, self._layer(layer))

    def matrix(self, layer: int | None = None):
        """The LanguageMatrix of one layer."""
        return self.raw.matrix(self._layer(layer))

    def correlate(self, measure: Any, **kwargs):
        """Correlation protocol against a measure: a LanguageMatrix, a URIEL kind
        (`genetic`, `geographic`, `syntactic`, `inventory`, `phonological`, `featural`) or a
        path to a square TSV. Returns a `babelmap.analysis.correlation.Correlation`."""
        from babelmap.analysis.correlation import correlate
        return correlate(self.raw, self.measure(measure), **kwargs)

    def measure(self, measure: Any):
        """Turn a measure argument into a LanguageMatrix over (a superset of) our languages."""
        from babelmap.kernels.matrix import LanguageMatrix
        if isinstance(measure, LanguageMatrix):
            return measure
        if isinstance(measure, (str, os.PathLike)) and Path(measure).exists():
            try:
                from babelmap.analysis.linguistic import read_matrix
                return read_matrix(measure)
            except ImportError:
                return LanguageMatrix.from_tsv(measure)
        if isinstance(measure, str) and measure in URIEL_KINDS:
            from babelmap.analysis.linguistic import uriel_matrix
            return uriel_matrix(measure, self.languages)
        raise BabelmapError(f"unknown measure {measure!r}: give a LanguageMatrix, a TSV path or one of "
                            f"{', '.join(URIEL_KINDS)}")

    def to_pandas(self, full: bool = False):
        """Long table: layer, a, b, sim, count (and bootstrap columns when present)."""
        return self.raw.to_pandas(full=full)

    def __len__(self) -> int:
        return len(self.languages)

    def __repr__(self) -> str:
        src = f" from {self.path}" if self.path else ""
        return (f"<babelmap Result{src}: {len(self.languages)} languages, layers {self.layers[0]}.."
                f"{self.layers[-1]}, default layer {self.default_layer} ({self.default_layer_reason})>")


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None
