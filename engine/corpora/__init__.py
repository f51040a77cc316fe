"""Corpus readers, one module per format; each returns a `ParallelCorpus`.

`read_corpus(path, format, skip_bad=False, **opts)` dispatches to the reader of a format
(`FORMATS`); reader options pass through (e.g. `split="devtest"` for flores,
`drop_merged=True` for ebible/pbc, `stages=` for udhr, `locales=`/`items=` for cldr).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from babelmap.engine.corpora.aligncheck import Suspect, find_shifts  # noqa: F401
from babelmap.engine.corpora.base import ParallelCorpus  # noqa: F401
from babelmap.engine.errors import CorpusError

# format -> (module, reader function)
FORMATS: dict[str, tuple[str, str]] = {
    "flores": ("babelmap.engine.corpora.flores", "read_flores"),
    "ebible": ("babelmap.engine.corpora.ebible", "read_ebible"),
    "udhr": ("babelmap.engine.corpora.udhr", "read_udhr"),
    "pbc": ("babelmap.engine.corpora.pbc", "read_pbc"),
    "plain": ("babelmap.engine.corpora.plain", "read_plain"),
    "cldr": ("babelmap.engine.corpora.cldr", "read_cldr"),
    "fleurs": ("babelmap.engine.corpora.fleurs", "read_fleurs"),
}


# formats whose sentences are aligned by line or verse position: checked for same-count shifts
LINE_ALIGNED = ("flores", "ebible", "pbc", "plain")


def read_corpus(path: str | Path | None, format: str, *, skip_bad: bool = False, check_alignment: bool = True,
                **opts: Any) -> ParallelCorpus:
    """Read a corpus of the given format. `path` may be None only for `cldr` (data from babel).

    Bad input raises CorpusError naming file, line and language; with `skip_bad=True` the bad
    file or language is left out, logged, and listed in the corpus's `skipped`. Line-aligned
    formats are checked for same-count shifts (`aligncheck`, sentence lengths): each suspect span
    is logged as a warning (`babelmap check --corpus` lists them all).
    """
    fmt = format.lower()
    if fmt not in FORMATS:
        raise CorpusError(f"unknown corpus format {format!r}", hint=f"use one of: {', '.join(FORMATS)}")
    if path is None and fmt != "cldr":
        raise CorpusError(f"format {fmt} needs a path", hint="give --corpus PATH")
    if path is not None and fmt != "cldr" and not Path(path).exists():
        raise CorpusError("no such file or folder", file=str(path))
    mod_name, fn_name = FORMATS[fmt]
    reader = getattr(importlib.import_module(mod_name), fn_name)
    corpus = reader(path, skip_bad=skip_bad, **opts)
    if check_alignment and fmt in LINE_ALIGNED:
        from babelmap.engine.corpora.aligncheck import warn_shifts
        warn_shifts(corpus)
    return corpus
