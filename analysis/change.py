"""Does the representation change of fine-tuning track language distance and transfer? (issue 11)

Given a `CKAResult` (babelmap compare: change = 1 - CKA per layer and language) for a model
fine-tuned on one *source* language, correlate, per layer and over the target languages,

(a) the change with each linguistic distance between the source and every target: the
    source's row of a `LanguageMatrix` (URIEL, Glottolog, LEX, ...). LanguageMatrix values are
    similarities; the distance used here is their negation, which for measures defined as
    1 - x differs from the distance by a constant only (correlations are unchanged);
(b) the change with zero-shot transfer scores from the source (`source, target, score` CSV,
    e.g. the xpos grid with `lang_train, lang_pred, score`).

Pearson and Spearman with two-sided p-values (SciPy) and percentile bootstrap intervals over
languages (the targets are resampled with replacement, all layers at once). The source itself
is left out by default (its change is the training signal, its distance 0). Figures: change by
layer per language, and correlation by layer per measure.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.engine.languages import iso639_3
from babelmap.kernels.cka import CKAResult
from babelmap.engine.languages import STANDARD_MEMBER
from babelmap.kernels.matrix import LanguageMatrix

# ISO 639-3 macrolanguage codes (what normalize_code gives for UD's two-letter codes) -> the
# individual language FLORES-200 uses. Extend or override with `aliases=`.
MACRO_ALIASES = {**{k: v for k, v in STANDARD_MEMBER.items() if k != "zho"}, "cmn": "zho"}


# --------------------------------------------------------------------------------------------
# matching codes to the result's language ids
# --------------------------------------------------------------------------------------------
def match_language(code: str, languages: Sequence[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The id in `languages` that a code (UD `en`, ISO `eng`, or an id `eng_Latn`) denotes:
    exact id, else normalize_code(code), else the one id with the same ISO 639-3 code (after
    macrolanguage aliases). None if there is no match or several."""
    langs = list(languages)
    if code in langs:
        return code
    al = dict(MACRO_ALIASES)
    al.update(aliases or {})
    if code in al and al[code] in langs:
        return al[code]
    cand = code
    try:
        from babelmap.engine.languages import normalize_code
        cand = normalize_code(code)
    except Exception:  # noqa: BLE001 - unknown code: try it as an ISO 639-3 code below
        pass
    if cand in langs:
        return cand
    iso = iso639_3(cand)
    iso = al.get(iso, iso)
    hits = [l for l in langs if iso639_3(l) == iso]
    return hits[0] if len(hits) == 1 else None


def read_transfer(path: str | os.PathLike, source: str, languages: Sequence[str], *,
                  columns: tuple[str, str, str] | None = None, aliases: Mapping[str, str] | None = None
                  ) -> tuple[dict[str, float], list[str]]:
    """Transfer scores from `source` to every target, keyed by the result's ids.

    The file is CSV or TSV with a header; columns `source,target,score` or the xpos names
    `lang_train,lang_pred,score` (or pass `columns=(src, tgt, score)`). Rows whose source is
    `source` (matched like the targets) are kept. Returns ({target id: score}, unmatched codes)."""
    path = Path(path)
    if not path.exists():
        raise BabelmapError(f"transfer table {path} not found")
    with open(path, encoding="utf-8", newline="") as fh:
        head = fh.readline()
        fh.seek(0)
        delim = "\t" if head.count("\t") > head.count(",") else ","
        reader = csv.DictReader(fh, delimiter=delim)
        fields = reader.fieldnames or []
        if columns is None:
            for cols in (("source", "target", "score"), ("lang_train", "lang_pred", "score")):
                if all(c in fields for c in cols):
                    columns = cols
                    break
        if columns is None or not all(c in fields for c in columns):
            raise BabelmapError(f"{path}: need columns source,target,score (or lang_train,lang_pred,score); "
                                f"found {fields}")
        s_col, t_col, v_col = columns
        rows = list(reader)
    codes = sorted({r[s_col] for r in rows})
    src_codes = [c for c in codes if c == source or match_language(c, [source], aliases) == source]
    if not src_codes:
        raise BabelmapError(f"{path}: no rows with source {source!r} (sources in the file: "
                            f"{', '.join(codes[:20])}{' ...' if len(codes) > 20 else ''})")
    out: dict[str, float] = {}
    unmatched: list[str] = []
    for n, r in enumerate(rows, start=2):
        if r[s_col] not in src_codes:
            continue
        tgt = match_language(r[t_col], languages, aliases)
        if tgt is None:
            unmatched.append(r[t_col])
            continue
        try:
            out[tgt] = float(r[v_col])
        except ValueError:
            raise BabelmapError(f"{path}:{n}: score {r[v_col]!r} is not a number") from None
    return out, sorted(set(unmatched))


def distance_row(matrix: LanguageMatrix, source: str, languages: Sequence[str]) -> dict[str, float]:
    """Distance (= minus the similarity) from `source` to each of `languages` present in the
    matrix (NaN values are left out)."""
    if source not in matrix:
        raise BabelmapError(f"source {source!r} is not in measure {matrix.name!r}")
    row = matrix.row(source)
    out = {}
    for l in languages:
        if l in matrix:
            v = row[matrix.index(l)]
            if np.isfinite(v):
                out[l] = -float(v)
    return out


# --------------------------------------------------------------------------------------------
# correlation per layer with bootstrap
# --------------------------------------------------------------------------------------------
@dataclass
class ChangeCorrelation:
    """Correlation per layer between the change of the target languages and one measure.

    Arrays are [K]: `pearson`, `pearson_p`, `spearman`, `spearman_p`, `n` (languages used),
    `*_low`/`*_high` (bootstrap percentile interval, NaN without bootstrap)."""

    name: str
    source: str
    change: str
    layers: list[int]
    languages: list[str]
    pearson: np.ndarray
    pearson_p: np.ndarray
    spearman: np.ndarray
    spearman_p: np.ndarray
    n: np.ndarray
    pearson_low: np.ndarray
    pearson_high: np.ndarray
    spearman_low: np.ndarray
    spearman_high: np.ndarray
    bootstrap: int = 0
    level: float = 0.95
    notes: dict = field(default_factory=dict)

    def to_pandas(self):
        """One row per layer."""
        import pandas as pd
        return pd.DataFrame({"measure": self.name, "source": self.source, "change": self.change,
                             "layer": self.layers, "n": self.n,
                             "pearson": self.pearson, "pearson_p": self.pearson_p,
                             "pearson_low": self.pearson_low, "pearson_high": self.pearson_high,
                             "spearman": self.spearman, "spearman_p": self.spearman_p,
                             "spearman_low": self.spearman_low, "spearman_high": self.spearman_high})


def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata
    return rankdata(a, axis=-1)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson along the last axis (broadcasting), NaN where a side is constant."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(-1) / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))


def correlate_change(result: CKAResult, values: Mapping[str, float], *, source: str, name: str = "measure",
                     change: str = "cka_linear", bootstrap: int = 1000, level: float = 0.95, seed: int = 0,
                     include_source: bool = False, min_languages: int = 3) -> ChangeCorrelation:
    """Per layer, Pearson and Spearman between `1 - result.<change>` and `values` (target id ->
    number) over the languages that have both (finite), with p-values and a percentile
    bootstrap interval over languages (`bootstrap` resamples, same resamples for every layer)."""
    from scipy.stats import pearsonr, spearmanr

    ch = result.change(change)  # [K, L]
    K = len(result.layers)
    langs = [l for l in result.languages if l in values and np.isfinite(values[l])
             and (include_source or l != source)]
    cols = [result.languages.index(l) for l in langs]
    v = np.array([values[l] for l in langs], dtype=np.float64)
    arrs = {k: np.full(K, np.nan) for k in ("pearson", "pearson_p", "spearman", "spearman_p", "pearson_low",
                                          "pearson_high", "spearman_low", "spearman_high")}
    n = np.zeros(K, dtype=np.int64)
    a = (1 - level) / 2
    for k in range(K):
        c = ch[k, cols]
        ok = np.isfinite(c)
        n[k] = int(ok.sum())
        if n[k] < min_languages or np.ptp(c[ok]) == 0 or np.ptp(v[ok]) == 0:
            continue
        x, y = c[ok], v[ok]
        arrs["pearson"][k], arrs["pearson_p"][k] = pearsonr(x, y)
        arrs["spearman"][k], arrs["spearman_p"][k] = spearmanr(x, y)
        if bootstrap:
            idx = np.random.default_rng([seed, k]).integers(0, len(x), size=(bootstrap, len(x)))
            xb, yb = x[idx], y[idx]
            pb = _pearson(xb, yb)
            sb = _pearson(_rank(xb), _rank(yb))
            arrs["pearson_low"][k], arrs["pearson_high"][k] = np.nanquantile(pb, [a, 1 - a])
            arrs["spearman_low"][k], arrs["spearman_high"][k] = np.nanquantile(sb, [a, 1 - a])
    return ChangeCorrelation(name, source, change, list(result.layers), langs, n=n, bootstrap=bootstrap,
                             level=level, **arrs)


def correlate_all(result: CKAResult, source: str, *, measures: Mapping[str, LanguageMatrix] | None = None,
                  transfer: Mapping[str, float] | None = None, change: str = "cka_linear",
                  bootstrap: int = 1000, seed: int = 0) -> dict[str, ChangeCorrelation]:
    """`correlate_change` for every linguistic measure (as distance from `source`) and, when
    given, the transfer scores (as `transfer`)."""
    out: dict[str, ChangeCorrelation] = {}
    for name, m in (measures or {}).items():
        out[name] = correlate_change(result, distance_row(m, source, result.languages), source=source,
                                     name=name, change=change, bootstrap=bootstrap, seed=seed)
    if transfer is not None:
        out["transfer"] = correlate_change(result, transfer, source=source, name="transfer", change=change,
                                           bootstrap=bootstrap, seed=seed)
    return out


def table(corrs: Mapping[str, ChangeCorrelation]):
    """All correlations as one long DataFrame (measure x layer)."""
    import pandas as pd
    return pd.concat([c.to_pandas() for c in corrs.values()], ignore_index=True)


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | os.PathLike) -> list[Path]:
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".png", ".pdf") else p
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in ("png", "pdf"):
        f = stem.with_name(stem.name + "." + fmt)
        fig.savefig(f, dpi=120, bbox_inches="tight")
        out.append(f)
    _plt().close(fig)
    return out


def plot_change_by_layer(result: CKAResult, path: str | os.PathLike, *, change: str = "cka_linear",
                         color_by: Mapping[str, float] | None = None, color_label: str = "",
                         source: str | None = None, label: int = 6, title: str | None = None) -> list[Path]:
    """One line per language: change (1 - CKA) by layer. Lines are coloured by `color_by`
    (e.g. distance to the source or transfer score) when given; the source is drawn black;
    the `label` most and least changed languages at the last layer are named."""
    plt = _plt()
    ch = result.change(change)
    K, L = ch.shape
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    cmap = plt.get_cmap("viridis")
    vals = None
    if color_by:
        vals = np.array([color_by.get(l, np.nan) for l in result.languages], dtype=float)
        finite = vals[np.isfinite(vals)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        norm = plt.Normalize(lo, hi if hi > lo else lo + 1)
    alpha = 0.9 if L <= 30 else max(0.15, 30 / L)
    lw = 1.4 if L <= 30 else 0.7
    for i, lang in enumerate(result.languages):
        if lang == source:
            continue
        col = "0.55" if vals is None or not np.isfinite(vals[i]) else cmap(norm(vals[i]))
        ax.plot(result.layers, ch[:, i], color=col, alpha=alpha, lw=lw)
    if source in result.languages:
        ax.plot(result.layers, ch[:, result.languages.index(source)], color="black", lw=2.4,
                label=f"source {source}")
        ax.legend(loc="best", frameon=False)
    last = ch[-1]
    order = [i for i in np.argsort(last) if np.isfinite(last[i]) and result.languages[i] != source]
    picks = order[:label // 2] + order[-(label - label // 2):] if label and len(order) > label else order
    picks = sorted(picks, key=lambda i: last[i])
    ymin, ymax = np.nanmin(ch), np.nanmax(ch)
    gap = 0.035 * (ymax - ymin if ymax > ymin else 1.0)
    placed: list[float] = []
    for i in picks:  # labels at the right end, pushed apart so they do not overlap ...
        placed.append(last[i] if not placed else max(last[i], placed[-1] + gap))
    top = ymax + 0.02 * (ymax - ymin if ymax > ymin else 1.0)
    if placed and placed[-1] > top:  # ... and back down inside the axes
        shift = placed[-1] - top
        placed = [y - shift for y in placed]
    for i, y in zip(picks, placed):
        ax.annotate(result.languages[i], (result.layers[-1], last[i]), xytext=(result.layers[-1] + 0.25, y),
                    textcoords="data", fontsize=7, va="center",
                    arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5))
    if vals is not None:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax, label=color_label, pad=0.02)
    ax.set_xlabel("layer (hidden state; 0 = embeddings)")
    ax.set_ylabel(f"change = 1 - {change.replace('cka_', 'CKA ')}")
    ax.set_xticks(result.layers)
    ax.set_xlim(result.layers[0] - 0.2, result.layers[-1] + 0.6 + 0.08 * len(result.layers))
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Representation change by layer ({L} languages)")
    return _save(fig, path)


def plot_correlation_by_layer(corrs: Mapping[str, ChangeCorrelation], path: str | os.PathLike,
                              title: str | None = None) -> list[Path]:
    """Pearson and Spearman (two panels) by layer, one line per measure, bootstrap band;
    filled markers where p < 0.05."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = plt.get_cmap("tab10")
    for ax, method in zip(axes, ("pearson", "spearman")):
        for j, (name, c) in enumerate(corrs.items()):
            r = getattr(c, method)
            p = getattr(c, f"{method}_p")
            col = colors(j % 10)
            ax.plot(c.layers, r, color=col, lw=1.8, label=f"{name} (n={int(np.max(c.n)) if len(c.n) else 0})")
            lo, hi = getattr(c, f"{method}_low"), getattr(c, f"{method}_high")
            if np.isfinite(lo).any():
                ax.fill_between(c.layers, lo, hi, color=col, alpha=0.15, lw=0)
            sig = np.isfinite(p) & (p < 0.05)
            ax.scatter(np.array(c.layers)[sig], r[sig], color=col, s=22, zorder=3)
            ax.scatter(np.array(c.layers)[~sig], r[~sig], facecolors="white", edgecolors=col, s=22, zorder=3)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_title(method.capitalize())
        ax.set_xlabel("layer")
        ax.set_xticks(next(iter(corrs.values())).layers if corrs else [])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("correlation with change (1 - CKA)")
    axes[0].set_ylim(-1.05, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(5, max(1, len(labels))), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    src = next(iter(corrs.values())).source if corrs else ""
    fig.suptitle(title or f"Change vs distance / transfer from {src}: filled = p < 0.05, band = bootstrap CI",
                 y=1.02)
    return _save(fig, path)
