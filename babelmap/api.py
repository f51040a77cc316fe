"""The library face: thin calls over the layers, for notebooks and scripts.

    import babelmap
    corpus = babelmap.read_corpus("flores200/dev", format="flores")
    store = babelmap.extract(corpus, "store.h5")                 # model=None: the embedded default
    r = babelmap.similarity(store)                                # a SimilarityResult
    r.get("English", "German")                                    # names or ids; layer=None: r.default_layer
    babelmap.correlate(r, "genetic").summary()
    r = babelmap.load("default/flores200")                        # a saved result, a results folder, a name

Each function only converts arguments and calls the one owner of its concept: engine.corpora,
engine.extract, kernels.similarity, the measure registry in analysis.linguistic,
analysis.correlation, the pipeline. `babelmap.encode` lives in babelmap/encoding.py.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from babelmap.engine.errors import BabelmapError

if TYPE_CHECKING:  # pragma: no cover
    from babelmap.analysis.correlation import Correlation
    from babelmap.engine.corpora.base import ParallelCorpus
    from babelmap.engine.store import Store
    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult
    from babelmap.pipeline import RunResult

log = logging.getLogger("babelmap")

DATA_DIR = Path(__file__).resolve().parent / "data"


# -- results ---------------------------------------------------------------------------------
def shipped(name: str) -> Path:
    """Path of a result shipped in the package: `default/flores200` -> data/default_flores200.h5."""
    return DATA_DIR / (name.strip("/").replace("/", "_") + ".h5")


def load(path_or_name: str | os.PathLike) -> "SimilarityResult":
    """Open a similarity result: an HDF5 file written by `SimilarityResult.save`, a results folder
    of `babelmap run` (its `similarity.h5`), a folder of `sents_layer<N>.tsv` files (the
    reference release), or a shipped name such as `default/flores200`."""
    from babelmap.kernels.result import SimilarityResult
    p = Path(path_or_name)
    if p.is_dir():
        if (p / "similarity.h5").exists():          # a run's folder: with the run's default layer
            from babelmap.pipeline import open_similarity
            return open_similarity(p)
        if list(p.glob("sents_layer*.tsv")):
            return SimilarityResult.from_tsv(p)
        raise BabelmapError(f"{p} is a folder without similarity.h5 or sents_layer*.tsv files")
    if p.exists():
        if p.name == "similarity.h5" and (p.parent / "run-state.json").exists():   # a run's file: its default layer
            from babelmap.pipeline import open_similarity
            return open_similarity(p.parent)
        return SimilarityResult.load(p)
    name = str(path_or_name)
    if "/" in name and not name.endswith((".h5", ".hdf5")) and not Path(name).parent.exists():
        f = shipped(name)
        if f.exists():
            return SimilarityResult.load(f)
        have = sorted(x.stem.replace("_", "/", 1) for x in DATA_DIR.glob("*.h5")) if DATA_DIR.exists() else []
        raise BabelmapError(f"no shipped result named {name!r} (expected {f}); "
                            f"shipped: {', '.join(have) or 'none in this installation'}. "
                            "Run `babelmap run` to compute one, then `babelmap.load('results/default')`")
    raise BabelmapError(f"no similarity result at {p}")


# -- corpora and stores ----------------------------------------------------------------------
def read_corpus(path: str | os.PathLike | None, format: str, *, skip_bad: bool = False,
                **options: Any) -> "ParallelCorpus":
    """Read a corpus file or folder of a given format (`flores`, `ebible`, `udhr`, `pbc`,
    `plain`, `cldr`) into a ParallelCorpus; reader options pass through (`split="devtest"`)."""
    from babelmap.engine.corpora import read_corpus as _read
    return _read(path, format, skip_bad=skip_bad, **options)


def _as_corpus(corpus: Any) -> "ParallelCorpus":
    """A ParallelCorpus, or a {language: [sentences]} mapping turned into one."""
    from babelmap.engine.corpora.base import ParallelCorpus
    if isinstance(corpus, ParallelCorpus):
        return corpus
    if isinstance(corpus, Mapping):
        return ParallelCorpus.from_dict(corpus)
    raise BabelmapError(f"expected a ParallelCorpus or a {{language: [sentences]}} dict, "
                        f"got {type(corpus).__name__}")


def open_store(path: str | os.PathLike) -> "Store":
    """Open a store for reading: `.languages`, `.sentence_ids`, `.layers`, `.mask`, `.attrs`,
    lazy `embeddings(lang, layer)` -> [S, H] and `block(...)` -> [L, K', s, H]."""
    from babelmap.engine.store import open_store as _open
    return _open(path)


def extract(corpus: "ParallelCorpus | Mapping[str, Sequence[str | None]]", out: str | os.PathLike,
            model: Any = None, **options: Any) -> "Store":
    """Embed every sentence of every language at every hidden state into the store `out` and
    open it. `model`: a checkpoint folder, None for the embedded default, or a loaded model;
    options pass to `engine.extract.extract` (pooling, dtype, store_dtype, device, max_length,
    prefix, progress, overwrite, ...). Resumes an interrupted run of the same call."""
    from babelmap.engine.extract import extract as _extract
    path = _extract(_as_corpus(corpus), out, model, **options)
    return open_store(path)


# -- similarity and measures -----------------------------------------------------------------
def similarity(store: "Store | str | os.PathLike", layers: Sequence[int] | None = None,
               measure: str = "cosine-mean", bootstrap: int = 0, out: str | os.PathLike | None = None,
               **options: Any) -> "SimilarityResult":
    """All-pair, all-layer language similarity of a store (an open Store or a path) as a
    SimilarityResult; `measure`: `cosine-mean` (mPLM-Sim), `mexa` or `retrieval@K`; `out`
    also saves it there. Options pass to `kernels.similarity.compute_similarity` (languages,
    sentences, device, precision, center, pivot, bootstrap_unit, progress, seed, ...)."""
    from babelmap.kernels.similarity import compute_similarity
    result = compute_similarity(store, layers=layers, measure=measure, bootstrap=bootstrap, **options)
    if out is not None:
        result.path = result.save(out)
    return result


def measure(name: str, languages: Any, **inputs: Any) -> "LanguageMatrix":
    """A linguistic measure by name (`genetic`, `geographic`, ..., `glottolog`, `asjp`, `lex`,
    `file`) over `languages` (ids, names or codes, or anything with `.languages`: a result, a
    store, a corpus), from the one measure registry; `inputs` gives what it needs
    (glottolog=folder, asjp=folder, corpus=ParallelCorpus, path=file)."""
    return _measure_by_name(name, languages, **inputs)


def _measure_by_name(name: str, languages: Any, **inputs: Any) -> "LanguageMatrix":
    from babelmap.analysis.linguistic import compute_measure
    if hasattr(languages, "languages"):
        langs = list(languages.languages)
    else:
        from babelmap.engine.languages import resolve
        langs = [resolve(str(l)) for l in languages]          # names and codes -> ids
    return compute_measure(name, langs, **inputs)


def as_matrix(measure: Any, languages: Any, **inputs: Any) -> "LanguageMatrix":
    """A measure argument as a LanguageMatrix: a LanguageMatrix as is; else a measure name or a
    matrix file, computed over `languages` by the measure registry."""
    from babelmap.kernels.matrix import LanguageMatrix
    if isinstance(measure, LanguageMatrix):
        return measure
    if isinstance(measure, (str, os.PathLike)):
        return _measure_by_name(str(measure), languages, **inputs)
    raise BabelmapError(f"unknown measure {measure!r}: give a LanguageMatrix, a matrix file or a measure name")


def correlate(result: "SimilarityResult", measure: Any, *, inputs: Mapping[str, Any] | None = None,
              **options: Any) -> "Correlation":
    """The mPLM-Sim correlation protocol between a result's layers and a measure (a
    LanguageMatrix, a matrix file, or a measure name with its `inputs`); options pass to
    `analysis.correlation.correlate` (min_partners, layers, bootstrap, ...)."""
    from babelmap.analysis.correlation import correlate as _correlate
    return _correlate(result, as_matrix(measure, result, **dict(inputs or {})), **options)


# -- the whole pipeline ----------------------------------------------------------------------
def run(out: str | os.PathLike = "results/default", **config: Any) -> "RunResult":
    """Run (or resume) the whole job of `babelmap run`: corpus -> store -> similarity ->
    measures -> correlation -> clusters -> figures -> report in the folder `out`. `config`
    takes the options of the command (corpus, format, model, langs, max_sentences, measures,
    device, bootstrap, ...); with none, the embedded default run. Returns the pipeline's
    RunResult (`.summary`, `.similarity()`, `.correlations()`, `.report`, ...)."""
    from dataclasses import fields

    from babelmap.pipeline import RunConfig
    from babelmap.pipeline import run as run_pipeline
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise BabelmapError(f"unknown run option(s) {', '.join(unknown)}; known: {', '.join(sorted(known - {'out'}))}")
    return run_pipeline(RunConfig(out=str(out), **config))
