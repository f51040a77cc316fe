"""The mPLM-Sim correlation protocol: how well a model's language similarities agree with a
linguistic measure, per layer and per language.

For each layer k, measure m and language l: Pearson and Spearman correlation between l's model
similarities to every other language and l's measure similarities to them (only partners for
which both values are present, never l itself); then the unweighted mean over languages. As in
the reference code (cisnlp/mPLM-Sim `executor.py`), a language whose correlation is undefined
is left out of the mean. Unlike the reference, every language left out is recorded with its
reason (`not covered by the measure`, `no measure value (NaN row)`, `no model similarity`,
`constant measure vector`, `constant model vector`, `too few partners`) so nothing is silently averaged away.

Uncertainty (optional, `bootstrap=B`):
- `uncertainty="languages"`: resample the languages that entered the mean (with replacement),
  B times: a percentile interval for the mean over languages (the protocol's sampling error).
- `uncertainty="pairs"`: when the result carries a per-pair bootstrap standard error
  (`SimilarityResult.stderr`, from the kernels' block bootstrap over sentences), draw B
  replicate similarity matrices `sim + stderr * z` (z symmetric standard normal, a normal
  approximation of the sentence bootstrap) and recompute every correlation: intervals that
  reflect the corpus's sampling error.
- `uncertainty="both"`: both at once (perturb the pairs and resample the languages).
Intervals are percentile intervals at `level` (default 0.95) for the per-layer means.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from babelmap.kernels.matrix import LanguageMatrix

log = logging.getLogger(__name__)

REASON_NOT_COVERED = "not covered by the measure"
REASON_CONSTANT_MEASURE = "constant measure vector"
REASON_CONSTANT_MODEL = "constant model vector"
REASON_FEW = "too few partners"
REASON_NAN_MEASURE = "no measure value (NaN row)"
REASON_NAN_MODEL = "no model similarity (NaN row: no shared sentences)"


# -- inputs ------------------------------------------------------------------------------------
@dataclass
class _Layered:
    """The float64 arrays the protocol works on, taken from a SimilarityResult, a
    LanguageMatrix or a list of them (internal: results are passed as SimilarityResult)."""

    languages: list[str]
    layers: list[int]
    sim: np.ndarray
    stderr: np.ndarray | None = None
    name: str = "model"


def as_layered(result: Any) -> _Layered:
    """Accept a SimilarityResult (`.languages`, `.layers`, `.sim`, optional `.stderr`), a
    single LanguageMatrix (one 'layer' numbered 0) or a list of LanguageMatrix (layers 0..K-1)."""
    if isinstance(result, LanguageMatrix):
        return _Layered(list(result.languages), [0], result.values[None].astype(np.float64),
                        name=result.name or "model")
    if isinstance(result, (list, tuple)) and result and isinstance(result[0], LanguageMatrix):
        langs = list(result[0].languages)
        mats = [m.subset(langs).values for m in result]
        return _Layered(langs, list(range(len(result))), np.stack(mats).astype(np.float64),
                        name=result[0].name or "model")
    if hasattr(result, "sim") and hasattr(result, "languages"):
        sim = np.asarray(result.sim, dtype=np.float64)
        layers = [int(x) for x in getattr(result, "layers", range(sim.shape[0]))]
        stderr = getattr(result, "stderr", None)
        attrs = getattr(result, "attrs", {}) or {}
        return _Layered(list(result.languages), layers, sim,
                        None if stderr is None else np.asarray(stderr, dtype=np.float64),
                        name=str(attrs.get("model", "model")))
    raise TypeError(f"cannot correlate a {type(result).__name__}: expected a SimilarityResult, "
                    "a LanguageMatrix or a list of LanguageMatrix")


def _measure_index(languages: Sequence[str], measure: LanguageMatrix) -> np.ndarray:
    """Row of each language in the measure: its own id, else its base id (variant stripped);
    -1 where the measure does not have it."""
    from babelmap.engine.languages import base_language
    idx = np.full(len(languages), -1, dtype=np.int64)
    for i, lang in enumerate(languages):
        if lang in measure:
            idx[i] = measure.index(lang)
        elif base_language(lang) in measure:
            idx[i] = measure.index(base_language(lang))
    return idx


# -- result ------------------------------------------------------------------------------------
@dataclass
class Dropped:
    """One language left out of the mean at one layer (layer None = at every layer)."""

    language: str
    reason: str
    layer: int | None = None
    partners: int = 0


@dataclass
class Correlation:
    """Per-layer, per-language correlations of a model with one measure.

    `pearson`, `spearman`: [K, L] (NaN where the language was dropped at that layer);
    `partners`: [L] partners per language; `mean_*`: [K] unweighted means over kept languages;
    `n_used`: [K]; `*_low/_high`: [K] bootstrap interval of the mean (when asked)."""

    measure: str
    model: str
    layers: list[int]
    languages: list[str]
    pearson: np.ndarray
    spearman: np.ndarray
    partners: np.ndarray
    dropped: list[Dropped]
    min_partners: int
    ci: dict[str, np.ndarray] = field(default_factory=dict)
    uncertainty: str | None = None

    # summaries ---------------------------------------------------------------------------
    @property
    def n_used(self) -> np.ndarray:
        return np.isfinite(self.pearson).sum(axis=1)

    @property
    def mean_pearson(self) -> np.ndarray:
        return _nanmean_rows(self.pearson)

    @property
    def mean_spearman(self) -> np.ndarray:
        return _nanmean_rows(self.spearman)

    def best_layer(self, method: str = "pearson") -> int:
        """The layer with the highest mean correlation."""
        means = self.mean_pearson if method == "pearson" else self.mean_spearman
        if not np.isfinite(means).any():
            raise ValueError(f"no layer has a defined mean {method} correlation with {self.measure!r}")
        return int(self.layers[int(np.nanargmax(means))])

    def language_max(self, method: str = "pearson") -> np.ndarray:
        """[L]: each language's maximum over layers (NaN if dropped at every layer)."""
        arr = self.pearson if method == "pearson" else self.spearman
        out = np.full(arr.shape[1], np.nan)
        ok = np.isfinite(arr).any(axis=0)
        out[ok] = np.nanmax(arr[:, ok], axis=0)
        return out

    def language_best_layer(self, method: str = "pearson") -> list[int | None]:
        arr = self.pearson if method == "pearson" else self.spearman
        out: list[int | None] = []
        for j in range(arr.shape[1]):
            col = arr[:, j]
            out.append(int(self.layers[int(np.nanargmax(col))]) if np.isfinite(col).any() else None)
        return out

    def mean_of_max(self, method: str = "pearson") -> float:
        """Mean over languages of each language's maximum over layers."""
        mx = self.language_max(method)
        return float(np.nanmean(mx)) if np.isfinite(mx).any() else float("nan")

    def dropped_counts(self) -> dict[str, int]:
        """Distinct languages dropped per reason (a language counts once per reason)."""
        seen: dict[str, set] = {}
        for d in self.dropped:
            seen.setdefault(d.reason, set()).add(d.language)
        return {k: len(v) for k, v in sorted(seen.items())}

    def dropped_languages(self) -> list[str]:
        """Languages dropped at every layer."""
        return [l for j, l in enumerate(self.languages) if not np.isfinite(self.pearson[:, j]).any()]

    def summary(self) -> dict:
        """A small dict for reports and logs."""
        return {"measure": self.measure, "best_layer_pearson": self.best_layer("pearson"),
                "best_pearson": float(np.nanmax(self.mean_pearson)),
                "best_layer_spearman": self.best_layer("spearman"),
                "best_spearman": float(np.nanmax(self.mean_spearman)),
                "mean_of_max_pearson": self.mean_of_max("pearson"),
                "mean_of_max_spearman": self.mean_of_max("spearman"),
                "languages": len(self.languages), "used": int(self.n_used.max()),
                "dropped": self.dropped_counts()}

    def to_pandas(self) -> dict:
        """Tables: `by_layer` (layer, mean pearson/spearman, n, intervals), `by_language`
        (long: layer, language, pearson, spearman), `language_max` (per language max over
        layers and its layer), `dropped` (language, layer, reason, partners)."""
        import pandas as pd
        by_layer = pd.DataFrame({"measure": self.measure, "layer": self.layers,
                                 "pearson": self.mean_pearson, "spearman": self.mean_spearman,
                                 "n_languages": self.n_used})
        for k, v in self.ci.items():
            by_layer[k] = v
        K, L = self.pearson.shape
        by_language = pd.DataFrame({
            "measure": self.measure,
            "layer": np.repeat(np.asarray(self.layers), L),
            "language": np.tile(np.asarray(self.languages, dtype=object), K),
            "pearson": self.pearson.ravel(), "spearman": self.spearman.ravel(),
            "partners": np.tile(self.partners, K)})
        language_max = pd.DataFrame({
            "measure": self.measure, "language": self.languages,
            "max_pearson": self.language_max("pearson"),
            "best_layer_pearson": self.language_best_layer("pearson"),
            "max_spearman": self.language_max("spearman"),
            "best_layer_spearman": self.language_best_layer("spearman"),
            "partners": self.partners})
        dropped = pd.DataFrame([{"measure": self.measure, "language": d.language, "layer": d.layer,
                                 "reason": d.reason, "partners": d.partners} for d in self.dropped],
                               columns=["measure", "language", "layer", "reason", "partners"])
        return {"by_layer": by_layer, "by_language": by_language, "language_max": language_max,
                "dropped": dropped}

    # files ---------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write this correlation as an HDF5 file (crash- and disk-full-safe), so a later stage
        or a user's script reads back exactly this object with `Correlation.load`."""
        from babelmap.engine.diskwrite import write_hdf5_safely
        return write_hdf5_safely(path, self.write_to, "correlation")

    def write_to(self, g) -> None:
        """Write into an open HDF5 file or group `g` (what `save` and `save_correlations` use)."""
        import h5py
        text = h5py.string_dtype("utf-8")
        g.create_dataset("languages", data=np.array(self.languages, dtype=object), dtype=text)
        g.create_dataset("layers", data=np.asarray(self.layers, dtype=np.int64))
        g.create_dataset("pearson", data=self.pearson)
        g.create_dataset("spearman", data=self.spearman)
        g.create_dataset("partners", data=np.asarray(self.partners, dtype=np.int64))
        for k, v in self.ci.items():
            g.create_dataset(f"ci/{k}", data=np.asarray(v))
        d = g.create_group("dropped")
        d.create_dataset("language", data=np.array([x.language for x in self.dropped], dtype=object), dtype=text)
        d.create_dataset("reason", data=np.array([x.reason for x in self.dropped], dtype=object), dtype=text)
        d.create_dataset("layer", data=np.array([-1 if x.layer is None else x.layer for x in self.dropped],
                                                dtype=np.int64))
        d.create_dataset("partners", data=np.array([x.partners for x in self.dropped], dtype=np.int64))
        g.attrs.update({"format": "babelmap.correlation", "measure": self.measure, "model": self.model,
                        "min_partners": int(self.min_partners), "uncertainty": self.uncertainty or "",
                        "ci_order": json.dumps(list(self.ci))})

    @classmethod
    def load(cls, path: str | os.PathLike, group: str = "/") -> "Correlation":
        """Read a correlation written by `save`."""
        import h5py
        dec = lambda a: [x.decode() if isinstance(x, bytes) else str(x) for x in a]  # noqa: E731
        with h5py.File(path, "r") as f:
            g = f[group]
            d = g["dropped"]
            dropped = [Dropped(lang, reason, None if layer < 0 else int(layer), int(n)) for lang, reason, layer, n
                       in zip(dec(d["language"][()]), dec(d["reason"][()]), d["layer"][()], d["partners"][()])]
            a = g.attrs
            ci = {k: g["ci"][k][()] for k in json.loads(a.get("ci_order", "[]"))}
            return cls(str(a["measure"]), str(a["model"]), [int(x) for x in g["layers"][()]],
                       dec(g["languages"][()]), g["pearson"][()], g["spearman"][()], g["partners"][()],
                       dropped, int(a["min_partners"]), ci, str(a["uncertainty"]) or None)

    def __repr__(self) -> str:
        try:
            b = self.best_layer()
            best = f"best layer {b} (pearson {np.nanmax(self.mean_pearson):.3f})"
        except ValueError:
            best = "no defined correlation"
        return (f"<Correlation {self.model} vs {self.measure}: {len(self.layers)} layers, "
                f"{len(self.languages)} languages, {best}, dropped {self.dropped_counts()}>")


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    out = np.full(a.shape[0], np.nan)
    ok = np.isfinite(a).any(axis=1)
    out[ok] = np.nanmean(a[ok], axis=1)
    return out


# -- core ----------------------------------------------------------------------------------------
def rank_last_axis(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties get their mean rank, as scipy.stats.rankdata)."""
    from scipy.stats import rankdata
    return rankdata(a, axis=-1)


def pearson_last_axis(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis, broadcasting (float64); NaN where a side is constant,
    clipped to [-1, 1]. The one Pearson routine of the package (Spearman = this on ranks)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(-1) / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    return np.clip(r, -1.0, 1.0)


_rank = rank_last_axis


def _pearson_rows(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of every row of X [K, n] with y [n] (float64)."""
    return pearson_last_axis(X, y[None, :])


def _is_constant(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """True where a vector has no spread (relative to its scale) along `axis`."""
    spread = np.ptp(v, axis=axis)
    scale = np.maximum(np.abs(v).max(axis=axis), 1e-300)
    return spread <= 1e-12 * scale


def _correlate_arrays(sim: np.ndarray, mvals: np.ndarray, midx: np.ndarray, min_partners: int,
                      record: list | None, languages: Sequence[str], layers: Sequence[int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pearson, spearman [K, L] and partners [L]; appends Dropped entries to `record`."""
    K, L, _ = sim.shape
    P = np.full((K, L), np.nan)
    S = np.full((K, L), np.nan)
    partners = np.zeros(L, dtype=np.int64)
    for i in range(L):
        if midx[i] < 0:
            if record is not None:
                record.append(Dropped(languages[i], REASON_NOT_COVERED, None, 0))
            continue
        others = np.arange(L) != i
        cover = midx >= 0
        cand = np.flatnonzero(others & cover)
        y = mvals[midx[i], midx[cand]]
        X = sim[:, i, cand]
        fin_y = np.isfinite(y)
        fin_x = np.isfinite(X).all(axis=0)
        ok_pair = fin_y & fin_x
        cand, y, X = cand[ok_pair], y[ok_pair], X[:, ok_pair]
        n = len(cand)
        partners[i] = n
        if n == 0 and len(fin_y) and not fin_y.any():
            if record is not None:
                record.append(Dropped(languages[i], REASON_NAN_MEASURE, None, 0))
            continue
        if n == 0 and len(fin_x) and not fin_x.any():
            if record is not None:
                record.append(Dropped(languages[i], REASON_NAN_MODEL, None, 0))
            continue
        if n < min_partners:
            if record is not None:
                record.append(Dropped(languages[i], REASON_FEW, None, n))
            continue
        if _is_constant(y):
            if record is not None:
                record.append(Dropped(languages[i], REASON_CONSTANT_MEASURE, None, n))
            continue
        const_model = _is_constant(X, axis=1)
        good = ~const_model
        if record is not None:
            for k in np.flatnonzero(const_model):
                record.append(Dropped(languages[i], REASON_CONSTANT_MODEL, int(layers[k]), n))
        if not good.any():
            continue
        P[good, i] = _pearson_rows(X[good], y)
        S[good, i] = _pearson_rows(_rank(X[good]), _rank(y))
    return P, S, partners


def correlate(result: Any, measure: LanguageMatrix, *, layers: Sequence[int] | None = None,
              min_partners: int = 5, bootstrap: int = 0, uncertainty: str = "languages",
              level: float = 0.95, seed: int = 0, name: str | None = None) -> Correlation:
    """Correlate a model's similarities (SimilarityResult, LanguageMatrix or list of them) with
    a measure (a LanguageMatrix) following the mPLM-Sim protocol (module docstring).

    `layers`: restrict to these layer numbers; `min_partners`: a language needs at least this
    many partners with both values (else dropped, with the reason); `bootstrap`: replicates for
    the interval of the per-layer means (`uncertainty` = languages | pairs | both)."""
    data = as_layered(result)
    if not isinstance(measure, LanguageMatrix):
        raise TypeError(f"measure must be a LanguageMatrix, got {type(measure).__name__}")
    kidx = list(range(len(data.layers)))
    if layers is not None:
        wanted = [int(x) for x in layers]
        missing = [x for x in wanted if x not in data.layers]
        if missing:
            raise ValueError(f"layers {missing} are not in the result (it has {data.layers})")
        kidx = [data.layers.index(x) for x in wanted]
    sim = data.sim[kidx]
    lay = [data.layers[k] for k in kidx]
    midx = _measure_index(data.languages, measure)
    mvals = np.asarray(measure.values, dtype=np.float64)
    dropped: list[Dropped] = []
    P, S, partners = _correlate_arrays(sim, mvals, midx, min_partners, dropped, data.languages, lay)
    out = Correlation(measure=name or measure.name or "measure", model=data.name, layers=lay,
                      languages=list(data.languages), pearson=P, spearman=S, partners=partners,
                      dropped=dropped, min_partners=min_partners)
    n_cov = int((midx >= 0).sum())
    if n_cov < len(data.languages):
        log.info("measure %s covers %d of %d languages", out.measure, n_cov, len(data.languages))
    if bootstrap:
        out.ci = _bootstrap(data, kidx, mvals, midx, P, S, min_partners, bootstrap, uncertainty,
                            level, seed)
        out.uncertainty = uncertainty
    return out


def _bootstrap(data: _Layered, kidx: list[int], mvals, midx, P, S, min_partners: int, B: int,
               uncertainty: str, level: float, seed: int) -> dict[str, np.ndarray]:
    """Percentile intervals of the per-layer mean correlations (see module docstring)."""
    if uncertainty not in ("languages", "pairs", "both"):
        raise ValueError(f"uncertainty must be languages, pairs or both, not {uncertainty!r}")
    rng = np.random.default_rng(seed)
    K, L = P.shape
    use_pairs = uncertainty in ("pairs", "both")
    if use_pairs and data.stderr is None:
        raise ValueError("uncertainty='pairs' needs a result with a bootstrap stderr "
                         "(compute the similarity with bootstrap > 0)")
    reps_p = np.full((B, K), np.nan)
    reps_s = np.full((B, K), np.nan)
    sim0 = data.sim[kidx]
    se = None if data.stderr is None else np.nan_to_num(data.stderr[kidx])
    for b in range(B):
        if use_pairs:
            z = rng.standard_normal((K, L, L))
            z = (z + z.transpose(0, 2, 1)) / np.sqrt(2.0)
            simb = sim0 + se * z
            Pb, Sb, _ = _correlate_arrays(simb, mvals, midx, min_partners, None, data.languages,
                                          [data.layers[k] for k in kidx])
        else:
            Pb, Sb = P, S
        if uncertainty in ("languages", "both"):
            pick = rng.integers(0, L, size=L)
            Pb, Sb = Pb[:, pick], Sb[:, pick]
        reps_p[b] = _nanmean_rows(Pb)
        reps_s[b] = _nanmean_rows(Sb)
    a = (1.0 - level) / 2.0
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {"pearson_low": np.nanquantile(reps_p, a, axis=0),
                    "pearson_high": np.nanquantile(reps_p, 1 - a, axis=0),
                    "spearman_low": np.nanquantile(reps_s, a, axis=0),
                    "spearman_high": np.nanquantile(reps_s, 1 - a, axis=0)}


def correlate_all(result: Any, measures: dict[str, LanguageMatrix] | Sequence[LanguageMatrix],
                  **kwargs) -> dict[str, Correlation]:
    """`correlate` against several measures; returns {measure name: Correlation}."""
    items = measures.items() if isinstance(measures, dict) else [(m.name, m) for m in measures]
    return {name: correlate(result, m, name=name, **kwargs) for name, m in items}


def save_correlations(corrs: dict[str, Correlation], path: str | os.PathLike) -> Path:
    """Write several correlations into one HDF5 file (one group per measure, in order) through
    a temporary name, so a reader never sees half a file."""
    from babelmap.engine.diskwrite import write_hdf5_safely

    def build(f) -> None:
        f.attrs["format"] = "babelmap.correlations"
        f.attrs["order"] = json.dumps(list(corrs))
        for i, c in enumerate(corrs.values()):
            c.write_to(f.create_group(f"m{i}"))
    return write_hdf5_safely(path, build, "correlations")


def load_correlations(path: str | os.PathLike) -> dict[str, Correlation]:
    """{measure name: Correlation} from a file written by `save_correlations`."""
    import h5py
    with h5py.File(path, "r") as f:
        order = json.loads(f.attrs["order"])
    return {name: Correlation.load(path, group=f"m{i}") for i, name in enumerate(order)}


def summary_table(corrs: dict[str, Correlation] | Sequence[Correlation]):
    """One row per measure: best layer and mean correlation (Pearson, Spearman), mean of
    per-language maxima, languages used and dropped (per reason)."""
    import pandas as pd
    items = corrs.values() if isinstance(corrs, dict) else corrs
    rows = []
    for c in items:
        row = {"measure": c.measure, "languages": len(c.languages)}
        if np.isfinite(c.mean_pearson).any():
            s = c.summary()
            row.update({k: v for k, v in s.items() if k not in ("measure", "languages", "dropped")})
        row["dropped"] = "; ".join(f"{k}: {v}" for k, v in c.dropped_counts().items()) or "none"
        rows.append(row)
    return pd.DataFrame(rows)


def by_layer_table(corrs: dict[str, Correlation] | Sequence[Correlation], method: str = "pearson"):
    """Wide table: rows = measures, columns = layers, values = mean correlation."""
    import pandas as pd
    items = corrs.values() if isinstance(corrs, dict) else corrs
    data = {c.measure: pd.Series(c.mean_pearson if method == "pearson" else c.mean_spearman,
                                 index=c.layers) for c in items}
    return pd.DataFrame(data).T
