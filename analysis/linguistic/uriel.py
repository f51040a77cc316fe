"""URIEL / URIEL+ similarities (genetic, geographic, syntactic, inventory, phonological,
featural, script), offline from the PyPI package `urielplus` (its data ships in the wheel).

similarity = 1 - distance, where distance is exactly what `URIELPlus().new_distance(kind, a, b)`
returns for every pair, but computed for all pairs at once with matrix products:

* a language's vector for a kind is its row of the kind's features (genetic: family membership;
  geographic: proximity to 299 anchor points; syntactic `S_*`, phonological `P_*`, inventory
  `INV_*`, featural: all typological features; script: `SC_*`), one value per feature, where a
  feature with several sources is aggregated over its known sources (not -1, finite) as
  urielplus does (max for union aggregation `U`, its default; mean for `A` and for geography);
* urielplus's missing value is -1: a pair is compared only on the features *both* languages
  have (not -1 in every source); no shared feature -> no distance (NaN here; urielplus raises);
* distance = angular distance 2*arccos(cos)/pi (urielplus's default; `metric="cosine"` gives
  1 - cos), a zero vector replaced by a constant 1e-10 vector, rounded to 4 decimals, as urielplus.

Our ids are looked up by ISO 639-3 code, falling back to the macrolanguage (lvs -> lav) or its
main individual language (zho -> cmn) when URIEL has no data of the kind under the code itself
(`tables.candidate_codes`; the code used is noted in `notes[id]`).

The released mPLM-Sim tables (lang2vec era; they encode missing as 0) against ours over their
560 languages, own codes only, pairs where both have a value (tests/test_uriel.py):
inventory 93% of 39,621 pairs equal to 4 decimals (Spearman 0.905); genetic Pearson 0.973
(theirs looks tree-based: Spearman 0.982 with our Glottolog measure); geographic Spearman
0.966 (theirs a great-circle distance); phonological does not agree (r = 0.006: theirs
probably from lang2vec's imputed vectors).

urielplus copies its data files into its own package folder on first use. Here it works from a
folder in the user cache instead (the package's files linked there), so a read-only
site-packages is fine. Matrices are cached in `cache_dir("uriel")`.
"""
from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.cache import cache_dir
from babelmap.engine.errors import BabelmapError
from babelmap.engine.languages import iso639_3
from babelmap.kernels.matrix import LanguageMatrix
from babelmap.analysis.linguistic.tables import candidate_codes

log = logging.getLogger(__name__)

KINDS = ("genetic", "geographic", "syntactic", "inventory", "phonological", "featural", "script")
_PREFIX = {"syntactic": "S_", "phonological": "P_", "inventory": "INV_"}
CACHE_VERSION = "uriel-v2"


def _import_urielplus():
    """Import urielplus without letting its `logging.basicConfig(level=INFO)` reconfigure the
    root logger of the user's program."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from urielplus import urielplus as mod
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BabelmapError("URIEL measures need the package `urielplus` (pip install urielplus)") from e
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    return mod


def _urielplus_version() -> str:
    try:
        from importlib.metadata import version
        return version("urielplus")
    except Exception:  # noqa: BLE001 - not installed as a distribution (e.g. a source copy)
        return "unknown"


def data_dir() -> Path:
    """A writable stand-in for urielplus's package folder: `<cache>/urielplus/` holding
    `database/` with the package's read-only sub-folders linked (or copied) into it."""
    mod = _import_urielplus()
    pkg = Path(mod.__file__).resolve().parent
    ver = _urielplus_version()
    # keyed by package path and version: an upgraded urielplus gets fresh copies of its data
    root = cache_dir("urielplus", hashlib.sha1(f"{pkg}\x1f{ver}".encode()).hexdigest()[:12])
    db = root / "database"
    db.mkdir(exist_ok=True)
    for sub in ("original_uriel", "urielplus_csvs"):
        target = db / sub
        if not target.exists():
            try:
                os.symlink(pkg / "database" / sub, target, target_is_directory=True)
            except OSError:  # no symlinks (e.g. some Windows setups): copy instead
                import shutil
                shutil.copytree(pkg / "database" / sub, target)
    return root


@lru_cache(maxsize=1)
def load_urielplus():
    """A `URIELPlus` instance whose data folder is `data_dir()` (never the package folder)."""
    mod = _import_urielplus()
    root = str(data_dir())

    class _CachedURIELPlus(mod.URIELPlus):
        # urielplus assigns `self.cur_dir = <package folder>` in __init__; this property keeps
        # every read and write in the cache folder instead.
        cur_dir = property(lambda self: root, lambda self, value: None)

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(max(quiet, logging.WARNING))
    try:
        return _CachedURIELPlus()
    finally:
        logging.getLogger().setLevel(quiet)


def _kind_arrays(u, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(language codes [N], raw data [N, F, sources]) of one kind's features, after
    urielplus's own eWAVE restriction."""
    if kind not in KINDS:
        raise BabelmapError(f"unknown URIEL measure {kind!r}; choose one of {', '.join(KINDS)}")
    idx = u.map_new_distance_to_loaded_features(kind)   # also applies urielplus's eWAVE masking
    feats = np.asarray(u.feats[idx]).astype(str)
    data = np.asarray(u.data[idx])
    if kind in _PREFIX:
        keep = np.char.startswith(feats, _PREFIX[kind])
        data = data[:, keep, :]
    langs = np.asarray(u.langs[idx]).astype(str)
    return langs, data


def _aggregate(data: np.ndarray, kind: str, aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per language and feature: the value urielplus puts in the vector, and whether the
    feature counts as present (not -1 in every source)."""
    data = np.asarray(data, dtype=np.float64)
    has = ~np.all(data == -1.0, axis=2)
    if data.shape[2] == 1:
        return data[:, :, 0], has
    known = (data != -1.0) & np.isfinite(data)
    n = known.sum(axis=2)
    if kind == "geographic" or aggregation == "A":
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.where(known, data, 0.0).sum(axis=2) / n
    else:
        val = np.where(known, data, -np.inf).max(axis=2)
    val = np.where(n > 0, val, -1.0)
    return val, has


def distances(values: np.ndarray, has: np.ndarray, metric: str = "angular",
              decimals: int | None = 4) -> np.ndarray:
    """All-pairs urielplus distance from per-language vectors `values` [L, F] with presence
    `has` [L, F]: each pair compared on the features both have; NaN where none is shared."""
    H = has.astype(np.float64)
    X = np.where(has, values, 0.0)
    X2 = X * X
    dot = X @ X.T
    nu2 = X2 @ H.T                     # |u|^2 over the pair's shared features, u = row language
    nv2 = H @ X2.T                     # |v|^2, v = column language
    m = H @ H.T                        # number of shared features
    su = X @ H.T                       # sum of u over shared features
    sv = H @ X.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / np.sqrt(nu2 * nv2)
        # urielplus replaces a zero vector by 1e-10 * ones before normalising
        uz, vz = nu2 == 0, nv2 == 0
        cos = np.where(uz & ~vz, sv / np.sqrt(m * nv2), cos)
        cos = np.where(vz & ~uz, su / np.sqrt(m * nu2), cos)
        cos = np.where(uz & vz, 1.0, cos)
    cos = np.clip(cos, -1.0, 1.0)
    if metric == "angular":
        d = 2.0 * np.arccos(cos) / np.pi
    elif metric == "cosine":
        d = 1.0 - cos
    else:
        raise BabelmapError(f"unknown URIEL metric {metric!r}: use angular or cosine")
    if decimals is not None:
        d = np.round(d, decimals)
    d[m == 0] = np.nan
    return d


def uriel_matrix(kind: str, languages: Sequence[str], *, metric: str = "angular",
                 aggregation: str = "U", decimals: int | None = 4, fallback: bool = True,
                 cache: bool = True) -> LanguageMatrix:
    """URIEL similarity (1 - urielplus distance) of `kind` over our language ids.

    Script variants of one language share its values (similarity 1 with each other when the
    language has data). Languages URIEL lacks, or with no feature of this kind, are NaN and
    listed in `missing` with the reason in `notes[id]`; pairs with no shared feature are NaN.
    `fallback=False` looks languages up under their own ISO code only (as urielplus and the
    released tables do).
    """
    languages = list(languages)
    if len(set(languages)) != len(languages):
        raise BabelmapError("duplicate language ids given to uriel_matrix")
    key = hashlib.sha256("\x1f".join([CACHE_VERSION, _urielplus_version(), kind, metric, aggregation, str(decimals),
                                     str(fallback), *languages])
                         .encode()).hexdigest()[:32]
    path = cache_dir("uriel") / f"{kind}-{key}.h5"
    if cache and path.exists():
        m = LanguageMatrix.from_hdf5(path)
        import h5py
        with h5py.File(path, "r") as f:
            m.notes = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["notes"].attrs.items()}
        return m

    u = load_urielplus()
    if aggregation != u.aggregation:
        u.set_aggregation(aggregation)
    langs, data = _kind_arrays(u, kind)
    pos = {c: i for i, c in enumerate(langs)}
    cands = {l: [c for c in (candidate_codes(l) if fallback else [iso639_3(l)]) if c in pos]
             for l in languages}
    uniq = sorted({c for cs in cands.values() for c in cs})
    rows = np.array([pos[c] for c in uniq], dtype=int)
    vals, has = _aggregate(data[rows], kind, aggregation)
    at = {c: i for i, c in enumerate(uniq)}
    notes: dict = {}
    missing: list[str] = []
    codes: list[str | None] = []
    for l in languages:
        code = iso639_3(l)
        usable = [c for c in cands[l] if has[at[c]].any()]     # in URIEL *with* data of this kind
        codes.append(usable[0] if usable else None)
        if not cands[l]:
            missing.append(l)
            notes[l] = f"{code} is not in URIEL"
        elif not usable:
            missing.append(l)
            notes[l] = f"no {kind} features in URIEL for {'/'.join(cands[l])}"
        elif usable[0] != code:
            notes[l] = f"URIEL code {usable[0]} used for {code}"
    d = distances(vals, has, metric=metric, decimals=decimals)
    idx = np.array([at[c] if c is not None else -1 for c in codes])
    L = len(languages)
    values = np.full((L, L), np.nan)
    ok = idx >= 0
    sim = 1.0 - d if decimals is None else np.round(1.0 - d, decimals)
    values[np.ix_(ok, ok)] = sim[np.ix_(idx[ok], idx[ok])]
    zero = [l for l, c, k in zip(languages, codes, ok) if k and not np.any(np.where(has[at[c]], vals[at[c]], 0))]
    if zero:
        notes["zero_vector"] = ",".join(zero)   # urielplus compares these via a 1e-10 placeholder
    notes.update(measure=f"URIEL {kind}: 1 - urielplus {metric} distance", metric=metric,
                 aggregation=aggregation, pairs_without_shared_feature=int(
                     (np.isnan(values[np.ix_(ok, ok)])).sum() // 2))
    m = LanguageMatrix(languages, values, kind, missing, notes)
    if cache:
        tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.h5")
        m.to_hdf5(tmp)
        import h5py
        with h5py.File(tmp, "a") as f:
            g = f.require_group("notes")
            for k, v in notes.items():
                g.attrs[k] = v
        os.replace(tmp, path)
    return m
