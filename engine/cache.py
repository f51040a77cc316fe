"""Where babelmap keeps converted models, unpacked corpora and cached measures.

`$BABELMAP_CACHE` if set, else `${XDG_CACHE_HOME:-~/.cache}/babelmap`.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str, create: bool = True) -> Path:
    """The user cache folder (or a sub-folder of it), created on demand."""
    root = os.environ.get("BABELMAP_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "babelmap"
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
