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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.analysis.correlation import pearson_last_axis, rank_last_axis
from babelmap.analysis.plots import _plt, draw_by_layer, save_figure
from babelmap.kernels.cka import CKAResult
from babelmap.kernels.matrix import LanguageMatrix

def read_transfer(path: str | os.PathLike, source: str, languages: Sequence[str], *,
                  columns: tuple[str, str, str] | None = None) -> tuple[dict[str, float], list[str]]:
    """Transfer scores from `source` to every target, keyed by the result's ids.

    Read with the one transfer-table reader (`analysis.transfer.read_transfer_table`: CSV or
    TSV, columns `source,target,score` or xpos' `lang_train,lang_pred,score`, or `columns=`),
    codes matched to `languages` by `engine.languages.match_ids`. Rows whose source is
    `source` are kept. Returns ({target id: score}, target codes not among `languages`)."""
    from babelmap.analysis.transfer import read_transfer_table
    from babelmap.engine.languages import match_ids
    table = read_transfer_table(path, *(columns or (None, None, "score")))
    lookup, _ = match_ids(table.ids, list(languages) + ([] if source in languages else [source]))
    src_codes = [c for c in table.sources if c == source or lookup.get(c) == source]
    if not src_codes:
        codes = table.sources
        raise BabelmapError(f"{path}: no rows with source {source!r} (sources in the file: "
                            f"{', '.join(codes[:20])}{' ...' if len(codes) > 20 else ''})")
    out: dict[str, float] = {}
    unmatched: set[str] = set()
    for code in src_codes:
        for t in table.targets:
            v = table.score(code, t)
            if not np.isfinite(v):
                continue
            tgt = lookup.get(t)
            if tgt is None or tgt not in languages:
                unmatched.add(t)
            else:
                out[tgt] = v
    return out, sorted(unmatched)


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


def head_accuracy(store, weight: np.ndarray, bias: np.ndarray, labels: Mapping[str, int], *,
                  layer: int | None = None, languages: Sequence[str] | None = None
                  ) -> tuple[dict[str, float], dict[str, int]]:
    """Per language, the accuracy of a linear classifier head (logits = E weight^T + bias,
    weight [C, H], bias [C]) on a store's pooled embeddings E at hidden state `layer` (default
    the last stored), over the sentences with a label (`labels`: sentence id -> class index)
    that the language has. A fine-tuned model's own head applied to its store gives its
    zero-shot accuracy in every language without running the model again.
    Returns ({language: accuracy}, {language: sentences scored})."""
    from babelmap.engine.store import Store, open_store
    st = store if isinstance(store, Store) else open_store(store)
    try:
        W, b = np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64)
        if W.ndim != 2 or b.shape != (W.shape[0],) or W.shape[1] != st.hidden_size:
            raise BabelmapError(f"head weight {list(W.shape)} / bias {list(b.shape)} do not fit store "
                                f"{st.path} (hidden size {st.hidden_size})")
        k = st.layers.index(st.layers[-1] if layer is None else int(layer))
        cols = [j for j, s in enumerate(st.sentence_ids) if s in labels]
        if not cols:
            raise BabelmapError(f"none of the labelled sentences is in store {st.path}")
        y = np.array([labels[st.sentence_ids[j]] for j in cols])
        mask = st.mask
        acc: dict[str, float] = {}
        count: dict[str, int] = {}
        for lang in (languages if languages is not None else st.languages):
            i = st.index(lang)
            E = np.asarray(st.embeddings(lang, k), dtype=np.float64)[cols]
            ok = mask[i, cols].astype(bool)
            count[lang] = int(ok.sum())
            if count[lang]:
                pred = np.argmax(E[ok] @ W.T + b, axis=1)
                acc[lang] = float(np.mean(pred == y[ok]))
        return acc, count
    finally:
        if st is not store:
            st.close()


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


def _targets(result: CKAResult, source: str, include_source: bool, *values: Mapping[str, float]):
    """The result's languages that have a finite value in every mapping (the source left out
    unless asked): (ids, their columns in the result, one float64 array per mapping)."""
    langs = [l for l in result.languages if (include_source or l != source)
             and all(l in m and np.isfinite(m[l]) for m in values)]
    return (langs, [result.languages.index(l) for l in langs],
            [np.array([m[l] for l in langs], dtype=np.float64) for m in values])


def correlate_change(result: CKAResult, values: Mapping[str, float], *, source: str, name: str = "measure",
                     change: str = "cka_linear", bootstrap: int = 1000, level: float = 0.95, seed: int = 0,
                     include_source: bool = False, min_languages: int = 3) -> ChangeCorrelation:
    """Per layer, Pearson and Spearman between `1 - result.<change>` and `values` (target id ->
    number) over the languages that have both (finite), with p-values and a percentile
    bootstrap interval over languages (`bootstrap` resamples, same resamples for every layer)."""
    from scipy.stats import pearsonr, spearmanr

    ch = result.change(change)  # [K, L]
    K = len(result.layers)
    langs, cols, (v,) = _targets(result, source, include_source, values)
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
            pb = pearson_last_axis(xb, yb)
            sb = pearson_last_axis(rank_last_axis(xb), rank_last_axis(yb))
            arrs["pearson_low"][k], arrs["pearson_high"][k] = np.nanquantile(pb, [a, 1 - a])
            arrs["spearman_low"][k], arrs["spearman_high"][k] = np.nanquantile(sb, [a, 1 - a])
    return ChangeCorrelation(name, source, change, list(result.layers), langs, n=n, bootstrap=bootstrap,
                             level=level, **arrs)


@dataclass
class PartialCorrelation:
    """Per layer, the Spearman correlation of the change with `name` when `control` is held
    fixed (partial rank correlation), p-value (t with n - 3 df) and bootstrap interval."""

    name: str
    control: str
    change: str
    layers: list[int]
    rho: np.ndarray
    p: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def _partial_from_r(rxy, rxz, ryz):
    return (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))


def partial_spearman(x, y, z) -> float:
    """Spearman correlation of x and y with z partialled out: the Pearson correlation of the
    residuals of rank(x) and rank(y) after a least-squares fit on rank(z) and a constant."""
    from scipy.stats import rankdata
    rx, ry, rz = (rankdata(np.asarray(a, dtype=np.float64)) for a in (x, y, z))
    Z = np.column_stack([np.ones_like(rz), rz])
    ex = rx - Z @ np.linalg.lstsq(Z, rx, rcond=None)[0]
    ey = ry - Z @ np.linalg.lstsq(Z, ry, rcond=None)[0]
    return float(ex @ ey / np.sqrt((ex @ ex) * (ey @ ey)))


def partial_correlate_change(result: CKAResult, values: Mapping[str, float], control: Mapping[str, float], *,
                             source: str, name: str = "measure", control_name: str = "control",
                             change: str = "cka_linear", bootstrap: int = 1000, level: float = 0.95,
                             seed: int = 0) -> PartialCorrelation:
    """Per layer, partial Spearman of the change (1 - `change`) with `values` given `control`
    over the languages that have all three (the source left out): does the change follow a
    measure beyond what a third one (e.g. the base model's own distance to the source)
    explains? Percentile bootstrap over languages, the same resamples as `correlate_change`."""
    from scipy.stats import t as student_t
    ch = result.change(change)
    langs, cols, (v, z) = _targets(result, source, False, values, control)
    K = len(result.layers)
    out = {k: np.full(K, np.nan) for k in ("rho", "p", "low", "high")}
    n = np.zeros(K, dtype=np.int64)
    a = (1 - level) / 2
    for k in range(K):
        c = ch[k, cols]
        ok = np.isfinite(c)
        n[k] = int(ok.sum())
        if n[k] < 5 or np.ptp(c[ok]) == 0:
            continue
        x, y, w = c[ok], v[ok], z[ok]
        r = partial_spearman(x, y, w)
        out["rho"][k] = r
        df = n[k] - 3
        out["p"][k] = 2 * student_t.sf(abs(r) * np.sqrt(df / max(1e-300, 1 - r * r)), df)
        if bootstrap:
            idx = np.random.default_rng([seed, k]).integers(0, len(x), size=(bootstrap, len(x)))
            rx, ry, rz = (rank_last_axis(q[idx]) for q in (x, y, w))
            with np.errstate(all="ignore"):
                pb = _partial_from_r(pearson_last_axis(rx, ry), pearson_last_axis(rx, rz), pearson_last_axis(ry, rz))
            out["low"][k], out["high"][k] = np.nanquantile(pb, [a, 1 - a])
    return PartialCorrelation(name, control_name, change, list(result.layers), n=n, **out)


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
    return save_figure(fig, path, dpi=120)


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
            draw_by_layer(ax, c.layers, r, color=colors(j % 10),
                          label=f"{name} (n={int(np.max(c.n)) if len(c.n) else 0})",
                          low=getattr(c, f"{method}_low"), high=getattr(c, f"{method}_high"),
                          significant=np.isfinite(p) & (p < 0.05))
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
    return save_figure(fig, path, dpi=120)


def plot_change_scatter(result: CKAResult, layer: int, panels: Mapping[str, Mapping[str, float]],
                        path: str | os.PathLike, *, change: str = "cka_linear", source: str | None = None,
                        label: int = 4, title: str | None = None) -> list[Path]:
    """At one layer, one panel per variable (e.g. a distance from the source, a transfer
    loss): every language's change (1 - `change`) against that variable, the Spearman rho and
    n in the panel title, the `label` most changed languages named; the source left out."""
    from scipy.stats import spearmanr
    plt = _plt()
    ch = result.change(change)[result.layers.index(int(layer))]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, (name, values) in zip(axes[0], panels.items()):
        langs = [l for i, l in enumerate(result.languages) if l != source and l in values
                 and np.isfinite(values[l]) and np.isfinite(ch[i])]
        x = np.array([values[l] for l in langs])
        y = np.array([ch[result.languages.index(l)] for l in langs])
        ax.scatter(x, y, s=9, alpha=0.6, color="tab:blue", lw=0)
        if len(langs) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            rho, p = spearmanr(x, y)
            ax.set_title(f"{name}\nSpearman {rho:+.2f} (p={p:.2g}, n={len(langs)})", fontsize=8)
        order = np.argsort(y)
        for i in sorted(set(order[:label // 2]) | set(order[max(0, len(order) - (label - label // 2)):])) if label else []:
            ax.annotate(langs[i], (x[i], y[i]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(name, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"change = 1 - {change.replace('cka_', 'CKA ')} (layer {layer})")
    fig.suptitle(title or f"Change at layer {layer} per language", y=1.02)
    return save_figure(fig, path, dpi=120)


# --------------------------------------------------------------------------------------------
# the whole study, as `babelmap compare --source ...` runs it
# --------------------------------------------------------------------------------------------
@dataclass
class ChangeStudy:
    """What `study_change` found: correlations per measure (and `transfer`), the transfer
    scores used, the transfer table's codes not in the result, and the figures written."""

    source: str
    correlations: dict[str, ChangeCorrelation]
    transfer: dict[str, float] | None = None
    unmatched: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The terminal summary: Spearman by layer per measure, and where |rho| peaks."""
        out = []
        if self.transfer is not None:
            out.append(f"transfer scores from {self.source}: {len(self.transfer)} languages "
                       f"({len(self.unmatched)} codes in the table are not in the result)")
        if self.correlations:
            change = next(iter(self.correlations.values())).change
            out.append(f"\ncorrelation of change (1 - {change}) with distance from / transfer from {self.source}:")
            for name, c in self.correlations.items():
                best = int(np.nanargmax(np.abs(np.nan_to_num(c.spearman, nan=0.0))))
                out.append(f"  {name:<14} n={int(c.n.max()):>4}  Spearman by layer: "
                           + " ".join("   nan" if not np.isfinite(v) else f"{v:+.2f}" for v in c.spearman)
                           + f"  (max |rho| at layer {c.layers[best]}, p={c.spearman_p[best]:.2g})")
        if self.figures:
            out.append("figures: " + ", ".join(str(f) for f in self.figures))
        return out


def study_change(result: CKAResult, source: str | None, *, measures: Sequence[str] = (), glottolog=None,
                 transfer: str | os.PathLike | None = None, change: str = "cka_linear", bootstrap: int = 1000,
                 figures: str | os.PathLike | None = None, correlations: str | os.PathLike | None = None
                 ) -> ChangeStudy:
    """Correlate the change of a `CKAResult` with each measure (names from the one measure
    registry, or matrix files: name = file stem) as distance from `source`, and with the
    transfer scores from `source`; write the correlation table and figures when asked."""
    from babelmap.analysis.linguistic import compute_measure
    if source is None:
        if measures or transfer:
            raise BabelmapError("--measure/--transfer need --source (the fine-tuning language)")
        files = plot_change_by_layer(result, Path(figures) / "change_by_layer", change=change) if figures else []
        return ChangeStudy("", {}, figures=files)
    if source not in result.languages:
        from babelmap.engine.languages import suggest
        raise BabelmapError(f"source {source!r} is not in the result (close: "
                            f"{', '.join(suggest(source, result.languages)) or 'none'})")
    mats = {(Path(m).stem if Path(m).is_file() else m):
            compute_measure(m, result.languages, glottolog=glottolog) for m in measures}
    scores, unmatched = read_transfer(transfer, source, result.languages) if transfer else (None, [])
    corrs = correlate_all(result, source, measures=mats, transfer=scores, change=change, bootstrap=bootstrap)
    if corrs and correlations:
        table(corrs).to_csv(correlations, sep="\t", index=False)
    files: list[Path] = []
    if figures:
        color, label = (scores, "transfer score") if scores else (None, "")
        if color is None and mats:
            name, m = next(iter(mats.items()))
            color, label = distance_row(m, source, result.languages), f"{name} distance"
        files = plot_change_by_layer(result, Path(figures) / "change_by_layer", change=change, color_by=color,
                                     color_label=label, source=source)
        if corrs:
            files += plot_correlation_by_layer(corrs, Path(figures) / "correlation_by_layer")
    return ChangeStudy(source, corrs, scores, unmatched, files)


def change_summary_lines(result: CKAResult) -> list[str]:
    """Per layer, the mean change over languages (linear, debiased, RBF CKA) and mean cosine."""
    import warnings
    rbf = result.cka_rbf is not None
    out = ["layer  change(linear)  change(debiased)" + ("  change(rbf)" if rbf else "")
           + "  cosine   (means over languages)"]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for r, k in enumerate(result.layers):
            line = (f"{k:>5}  {np.nanmean(1 - result.cka_linear[r]):>14.4f}  "
                    f"{np.nanmean(1 - result.cka_debiased[r]):>16.4f}")
            if rbf:
                line += f"  {np.nanmean(1 - result.cka_rbf[r]):>11.4f}"
            out.append(line + f"  {np.nanmean(result.cosine[r]):>7.4f}")
    return out
