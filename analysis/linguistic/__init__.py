"""Linguistic similarity measures, each a `LanguageMatrix` over `<iso639-3>_<Script>` ids.

Script variants of one language share its values; NaN where a measure has no value; `missing`
lists uncovered ids with the reason in `notes[id]`. `MEASURES` names every measure and what it
needs; `compute_measure(name, languages, ...)` computes one by name:

    from babelmap.analysis.linguistic import MEASURES, compute_measure
    m = compute_measure("genetic", ["eng_Latn", "deu_Latn"])
    g = compute_measure("glottolog", ids, glottolog="path/to/glottolog")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from babelmap.analysis.linguistic.asjp import asjp_matrix
from babelmap.analysis.linguistic.glottolog import families, glottolog_matrix
from babelmap.analysis.linguistic.tables import REFERENCE_RENAMES, constant_rows, read_matrix
from babelmap.analysis.linguistic.uriel import KINDS as URIEL_KINDS
from babelmap.analysis.linguistic.uriel import uriel_matrix
from babelmap.engine.errors import BabelmapError
from babelmap.kernels.matrix import LanguageMatrix

__all__ = ["uriel_matrix", "glottolog_matrix", "asjp_matrix", "read_matrix", "families", "constant_rows",
           "REFERENCE_RENAMES", "MEASURES", "Measure", "compute_measure"]


@dataclass(frozen=True)
class Measure:
    """A named measure: `needs` is what it reads besides the language ids
    (None: nothing, it ships with a package; "glottolog"/"asjp": a folder; "corpus": a
    ParallelCorpus; "path": a matrix file)."""

    name: str
    description: str
    needs: str | None
    compute: Callable[..., LanguageMatrix]


def _uriel(kind: str) -> Measure:
    return Measure(kind, f"URIEL {kind} similarity, 1 - urielplus angular distance", None,
                   lambda languages, **_: uriel_matrix(kind, languages))


MEASURES: dict[str, Measure] = {k: _uriel(k) for k in URIEL_KINDS}
MEASURES["glottolog"] = Measure("glottolog", "Glottolog shared path from the root / max path length",
                                "glottolog", lambda languages, glottolog, **_: glottolog_matrix(glottolog, languages))
MEASURES["asjp"] = Measure("asjp", "ASJP 1 - LDND over the 40-item word lists", "asjp",
                           lambda languages, asjp, **_: asjp_matrix(asjp, languages))


def _lex(languages, corpus, **kw):
    from babelmap.kernels.lex import lex_matrix
    sub = corpus.select(languages=[l for l in languages if l in set(corpus.languages)])
    m = lex_matrix(sub, romanize=kw.get("romanize", False), progress=kw.get("progress", True))
    absent = [l for l in languages if l not in set(sub.languages)]
    if absent:                                       # report languages the corpus lacks
        import numpy as np
        full = np.full((len(languages), len(languages)), np.nan)
        idx = [languages.index(l) for l in m.languages]
        full[np.ix_(idx, idx)] = m.values
        notes = dict(m.notes, **{l: "not in the corpus" for l in absent})
        m = LanguageMatrix(list(languages), full, m.name, m.missing + absent, notes)
    return m


MEASURES["lex"] = Measure("lex", "LEX: minus the mean character Levenshtein distance over shared sentences",
                          "corpus", _lex)
MEASURES["file"] = Measure("file", "a user matrix (reference TSV or HDF5), restricted to the languages",
                           "path", lambda languages, path, **_: _from_file(path, languages))


def _from_file(path, languages):
    import numpy as np
    m = read_matrix(path, rename=True)
    L = len(languages)
    full = np.full((L, L), np.nan)
    have = [i for i, l in enumerate(languages) if l in m]
    idx = [m.index(languages[i]) for i in have]
    full[np.ix_(have, have)] = m.values[np.ix_(idx, idx)]
    absent = [l for l in languages if l not in m]
    notes = dict(m.notes, **{l: f"not in {path}" for l in absent})
    return LanguageMatrix(list(languages), full, m.name, [l for l in m.missing if l in set(languages)] + absent, notes)


def compute_measure(name: str, languages: Sequence[str], **inputs) -> LanguageMatrix:
    """Compute measure `name` over `languages`; `inputs` gives what it needs
    (glottolog=folder, asjp=folder, corpus=ParallelCorpus, path=file). A `name` that is not a
    measure but an existing file is read as a matrix (the `file` measure)."""
    if name not in MEASURES and Path(name).is_file():
        name, inputs = "file", dict(inputs, path=name)
    if name not in MEASURES:
        from babelmap.engine.languages import suggest
        raise BabelmapError(f"unknown measure {name!r}; known: {', '.join(MEASURES)}, or a path to a square TSV"
                            + (f" (did you mean {', '.join(suggest(name, MEASURES))}?)" if suggest(name, MEASURES) else ""))
    meas = MEASURES[name]
    if meas.needs and inputs.get(meas.needs) is None:
        raise BabelmapError(f"measure {name} needs {meas.needs}=... (a {meas.needs} "
                            f"{'folder' if meas.needs in ('glottolog', 'asjp') else 'input'})")
    return meas.compute(list(languages), **inputs)
