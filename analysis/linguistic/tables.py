"""User similarity matrices from files: square TSVs in the mPLM-Sim release format (header and
first column = language ids, tab separated, empty cell = NaN) or our HDF5 LanguageMatrix.

The reference release names six FLORES-200 languages differently; `REFERENCE_RENAMES` maps
them to our ids (applied with `rename=True`). Its URIEL tables encode a missing language as 0
to every other language, so such rows are constant: `read_matrix` notices and reports them in
`notes` (and can turn them into missing values with `constant_as_missing=True`), because a
constant row has no correlation and must not be averaged in silently.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.kernels.matrix import LanguageMatrix


def candidate_codes(lang_id: str) -> list[str]:
    """ISO 639-3 codes to look a language up under, in order: its own code, then (for a
    macrolanguage) its main individual language, then (for an individual language) its
    macrolanguage from the ISO 639-3 tables (`iso639-lang`). Databases file some languages
    only under one of the two (URIEL has `lav` but no data for FLORES's `lvs`)."""
    from babelmap.engine.languages import STANDARD_MEMBER, iso639_3
    code = iso639_3(lang_id)
    out = [code]
    if code in STANDARD_MEMBER:
        out.append(STANDARD_MEMBER[code])
    try:
        from iso639 import Lang
        macro = Lang(code).macro()
        if macro is not None and macro.pt3 and macro.pt3 not in out:
            out.append(macro.pt3)
    except Exception:  # noqa: BLE001 - unknown or retired code: no macrolanguage
        pass
    return out


# mPLM-Sim code -> ours (data README, flores200/ quirks)
REFERENCE_RENAMES = {"cmn_Hani": "zho_Hans", "ekk_Latn": "est_Latn", "gug_Latn": "grn_Latn",
                     "kng_Latn": "kon_Latn", "sro_Latn": "srd_Latn", "yue_Hani": "yue_Hant"}


def constant_rows(m: LanguageMatrix) -> dict[str, float]:
    """id -> value for the rows of `m` whose off-diagonal non-NaN values (at least two) are all
    equal. Check again after restricting a matrix to a subset of languages: the release's
    jpn_Jpan genetic row is 0 to every FLORES language but not to all 560."""
    out: dict[str, float] = {}
    off = ~np.eye(len(m), dtype=bool)
    for i, lang in enumerate(m.languages):
        row = m.values[i, off[i]]
        vals = row[~np.isnan(row)]
        if vals.size > 1 and np.all(vals == vals[0]):
            out[lang] = float(vals[0])
    return out


def read_matrix(path: str | Path, *, rename: bool | dict[str, str] = False, name: str | None = None,
                constant_as_missing: bool = False) -> LanguageMatrix:
    """Read a user matrix (.tsv in the reference format, or .h5 written by LanguageMatrix).

    `rename=True` applies `REFERENCE_RENAMES` (or pass your own mapping). Rows with no value are
    listed in `missing`; rows whose off-diagonal values are all equal (e.g. the release's 0 for
    missing URIEL data) are flagged in `notes[id]` and `notes["constant_rows"]`, and with
    `constant_as_missing=True` set to NaN and listed in `missing`.
    """
    path = Path(path)
    if not path.exists():
        raise BabelmapError(f"matrix file {path} does not exist")
    try:
        if path.suffix.lower() in (".h5", ".hdf5"):
            m = LanguageMatrix.from_hdf5(path)
            if name:
                m.name = name
        else:
            m = LanguageMatrix.from_tsv(path, name=name)
    except (ValueError, KeyError, OSError) as e:
        raise BabelmapError(f"cannot read the matrix {path}: {e}") from e
    if rename:
        mapping = REFERENCE_RENAMES if rename is True else dict(rename)
        try:
            m = m.rename(mapping)
        except ValueError as e:
            raise BabelmapError(f"{path}: renaming gives duplicate ids ({e})") from e
    v = m.values
    L = len(m)
    off = ~np.eye(L, dtype=bool)
    notes = dict(m.notes)
    missing = list(m.missing)
    for i, lang in enumerate(m.languages):
        if np.all(np.isnan(v[i, off[i]])):
            if lang not in missing:
                missing.append(lang)
            notes[lang] = f"no value in {path.name}"
    const = constant_rows(m)
    constant = list(const)
    for lang, val in const.items():
        notes[lang] = (f"constant row in {path.name}: {val!r} to all others "
                       "(the reference release encodes missing values as 0)")
    if constant:
        notes["constant_rows"] = ",".join(constant)
        if constant_as_missing:
            idx = [m.index(l) for l in constant]
            v = v.copy()
            v[idx, :] = np.nan
            v[:, idx] = np.nan
            missing += [l for l in constant if l not in missing]
    asym = np.nanmax(np.abs(v - v.T)) if L and not np.all(np.isnan(v)) else 0.0
    if asym > 1e-9:
        notes["asymmetric"] = f"max |M - M^T| = {asym:.3g}"
    notes["source"] = str(path)
    return LanguageMatrix(m.languages, v, m.name, missing, notes)
