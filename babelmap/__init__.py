"""babelmap: language similarity inside multilingual language models, at every layer.

    import babelmap
    store = babelmap.open_store("store.h5")
    result = babelmap.load("default/flores200")
    result.get("English", "German")
"""
from __future__ import annotations

from babelmap.engine.cache import cache_dir  # noqa: F401
from babelmap.engine.store import Store, open_store  # noqa: F401
from babelmap.errors import BabelmapError, CorpusError, LanguageError, ModelError, StoreError  # noqa: F401

__version__ = "0.1.0"


def load(path_or_name):
    """Open a similarity result: a path to a result HDF5, or a shipped name like
    `default/flores200`."""
    from babelmap.api import load as _load
    return _load(path_or_name)
