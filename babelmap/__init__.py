"""babelmap: language similarity inside multilingual language models, at every layer.

    import babelmap
    E = babelmap.encode(["Hello.", "Bonjour."])                  # float32 [N, layers + 1, hidden]
    corpus = babelmap.ParallelCorpus.from_dict({"eng_Latn": [...], "fra_Latn": [...]})
    store = babelmap.extract(corpus, "store.h5")                  # model=None: the embedded default
    r = babelmap.similarity(store)                                # a SimilarityResult
    r.get("English", "French")                                    # names or ids
    r = babelmap.load("default/flores200")                        # the result shipped with the package

Everything is imported on first use, so `import babelmap` stays fast.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that owns it
_LAZY: dict[str, str] = {
    "encode": "babelmap.encoding",
    "clear_model_cache": "babelmap.encoding",
    "read_corpus": "babelmap.api",
    "extract": "babelmap.api",
    "similarity": "babelmap.api",
    "measure": "babelmap.api",
    "correlate": "babelmap.api",
    "run": "babelmap.api",
    "RunResult": "babelmap.pipeline",
    "load": "babelmap.api",
    "open_store": "babelmap.api",
    "ParallelCorpus": "babelmap.engine.corpora.base",
    "Store": "babelmap.engine.store",
    "SimilarityResult": "babelmap.kernels.result",
    "LanguageMatrix": "babelmap.kernels.matrix",
    "cache_dir": "babelmap.engine.cache",
    "BabelmapError": "babelmap.engine.errors",
    "CorpusError": "babelmap.engine.errors",
    "LanguageError": "babelmap.engine.errors",
    "ModelError": "babelmap.engine.errors",
    "StoreError": "babelmap.engine.errors",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from babelmap.api import correlate, extract, load, measure, open_store, read_corpus, run, similarity
    from babelmap.encoding import clear_model_cache, encode
    from babelmap.engine.cache import cache_dir
    from babelmap.engine.corpora.base import ParallelCorpus
    from babelmap.engine.errors import BabelmapError, CorpusError, LanguageError, ModelError, StoreError
    from babelmap.engine.store import Store
    from babelmap.kernels.matrix import LanguageMatrix
    from babelmap.kernels.result import SimilarityResult
    from babelmap.pipeline import RunResult


def __getattr__(name: str) -> Any:
    """Import a public name from its owning module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'babelmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
