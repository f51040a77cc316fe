"""Figures (matplotlib, Agg): dendrogram, heatmap in dendrogram order, correlation by layer,
per-language best layers. Readable from 30 to 1000+ languages: canvases grow with the
number of languages up to a cap, labels are thinned to what fits (every n-th label, the rest
left out and said so in the title), and leaves/rows are coloured by language family (the
largest families get their own colour, the rest grey, with a legend).

Every function returns the Figure and, with `path` (a stem or a file name), writes PNG and
PDF beside each other (`save_figure`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

MAX_LABELS = 300          # labels drawn on a language axis at most
ROW_INCH = 0.13           # height per labelled leaf
OTHER = "other / unknown"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | os.PathLike, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 110) -> list[Path]:
    """Write `fig` as <stem>.png and <stem>.pdf (stem = path without suffix); close it."""
    plt = _plt()
    p = Path(path)
    stem = p.with_suffix("") if p.suffix.lower() in (".png", ".pdf", ".svg") else p
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        f = stem.with_name(stem.name + "." + fmt)
        fig.savefig(f, dpi=dpi, bbox_inches="tight")
        out.append(f)
    plt.close(fig)
    return out


def _palette() -> list:
    """18 distinguishable colours, dark enough for text: tab10 then Dark2."""
    import matplotlib
    return [matplotlib.colormaps["tab10"](i) for i in range(10)] + \
           [matplotlib.colormaps["Dark2"](i) for i in range(8)]


def family_colors(languages: Sequence[str], families: Mapping[str, str | None] | None,
                  max_colors: int = 18) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(language -> RGBA, legend family -> RGBA): the `max_colors` largest families (with at
    least 2 languages) get distinct colours, all others (and unknown) grey."""
    grey = (0.6, 0.6, 0.6, 1.0)
    if not families:
        return {l: (0.1, 0.1, 0.1, 1.0) for l in languages}, {}
    counts: dict[str, int] = {}
    for l in languages:
        f = families.get(l)
        if f:
            counts[f] = counts.get(f, 0) + 1
    pal_list = _palette()
    top = [f for f, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if n >= 2][:max_colors]
    pal = {f: pal_list[i % len(pal_list)] for i, f in enumerate(top)}
    colors = {l: pal.get(families.get(l) or "", grey) for l in languages}
    legend = {f"{f} ({counts[f]})": c for f, c in pal.items()}
    if len(top) < len(counts) or any(not families.get(l) for l in languages):
        legend[OTHER] = grey
    return colors, legend


def _thin(n: int, max_labels: int = MAX_LABELS) -> int:
    """Show every `step`-th label so that at most max_labels are drawn."""
    return max(1, int(np.ceil(n / max_labels)))


def _legend(ax, legend: Mapping[str, tuple], loc="upper left", **kw):
    if not legend:
        return
    from matplotlib.patches import Patch
    handles = [Patch(color=c, label=f) for f, c in legend.items()]
    ax.legend(handles=handles, loc=loc, fontsize=8, title="family", title_fontsize=8, frameon=True, **kw)


def plot_dendrogram(clustering, families: Mapping[str, str | None] | None = None,
                    path: str | os.PathLike | None = None, title: str | None = None,
                    label_names: Mapping[str, str] | None = None):
    """Dendrogram of a `babelmap.analysis.cluster.Clustering`: root on the left, leaves on the
    right next to a family colour strip (every leaf) and their labels (coloured by family,
    thinned above MAX_LABELS leaves)."""
    plt = _plt()
    from scipy.cluster.hierarchy import dendrogram
    langs = clustering.languages
    L = len(langs)
    step = _thin(L)
    shown = len(range(0, L, step))
    height = float(np.clip(shown * ROW_INCH + 1.5, 4.0, 42.0))
    width = 9.0 if L <= 300 else 12.0
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0.0, 0.0, 0.86, 1.0])
    sax = fig.add_axes([0.865, 0.0, 0.02, 1.0], sharey=ax)
    colors, legend = family_colors(langs, families)
    font = float(np.clip(height * 72 / max(shown, 1) * 0.72, 4.0, 10.0))
    d = dendrogram(clustering.Z, orientation="left", no_labels=True, ax=ax,
                   color_threshold=0, above_threshold_color="#333333")
    leaves = d["leaves"]
    lw = 1.2 if L <= 100 else (0.7 if L <= 400 else 0.45)
    for coll in ax.collections:
        coll.set_linewidth(lw)
    ax.set_ylim(0, 10 * L)
    ax.set_yticks([])
    for s_ in ("top", "right", "left"):
        ax.spines[s_].set_visible(False)
    ax.set_xlabel("distance (1 - similarity)")
    # scipy places leaf i at y = 5 + 10 * i (bottom to top)
    strip = np.array([colors[langs[i]] for i in leaves])[:, None, :]
    sax.imshow(strip, aspect="auto", interpolation="nearest", origin="lower", extent=(0, 1, 0, 10 * L))
    sax.set_xticks([])
    for s_ in ("top", "right", "left", "bottom"):
        sax.spines[s_].set_visible(False)
    idx = list(range(0, L, step))
    sax.yaxis.tick_right()
    sax.set_yticks([5 + 10 * i for i in idx])
    sax.set_yticklabels([_label(langs[leaves[i]], label_names) for i in idx], fontsize=font)
    sax.tick_params(axis="y", length=2, pad=2)
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    for t, i in zip(sax.get_yticklabels(), idx):
        t.set_color(colors[langs[leaves[i]]])
    t = title or f"{clustering.name or 'similarity'}: {clustering.method} linkage, {L} languages"
    if step > 1:
        t += f"\n(every {step}th label shown; the colour strip shows every language)"
    ax.set_title(t, fontsize=11)
    if legend:
        from matplotlib.patches import Patch
        ax.legend(handles=[Patch(color=c, label=f) for f, c in legend.items()], loc="upper right",
                  bbox_to_anchor=(-0.02, 1.0), fontsize=8, title="family (languages)", title_fontsize=8)
    if path:
        save_figure(fig, path)
    return fig


def _label(lang: str, names: Mapping[str, str] | None) -> str:
    if names and names.get(lang):
        return f"{names[lang]} ({lang})"
    return lang


def plot_heatmap(matrix, order: Sequence[int] | None = None,
                 families: Mapping[str, str | None] | None = None,
                 path: str | os.PathLike | None = None, title: str | None = None,
                 cmap: str = "viridis", max_labels: int = 150):
    """Similarity heatmap of a LanguageMatrix, rows/columns in `order` (e.g. the dendrogram's
    leaf order), with family colour strips on the left and top (every language); labels
    thinned above `max_labels`. The colour scale spans the 2nd-98th percentile of
    off-diagonal values (the diagonal is not drawn), so a few extreme pairs do not flatten it."""
    plt = _plt()
    langs = list(matrix.languages)
    L = len(langs)
    order = list(range(L)) if order is None else list(order)
    v = np.array(matrix.values, dtype=np.float64)[np.ix_(order, order)]
    np.fill_diagonal(v, np.nan)
    ol = [langs[i] for i in order]
    off = v[np.isfinite(v)]
    vmin, vmax = (np.percentile(off, 2), np.percentile(off, 98)) if off.size else (0, 1)
    step = _thin(L, max_labels)
    idx = list(range(0, L, step))
    side = float(np.clip(len(idx) * 0.13 + 2.5, 6.0, 22.0))
    font = float(np.clip(side * 72 * 0.8 / max(len(idx), 1) * 0.72, 4.0, 10.0))
    fig = plt.figure(figsize=(side + 3.2, side + 0.6))
    W, H = side + 3.2, side + 0.6
    x0, y0, w, h = 1.3 / W, 1.3 / H, (side - 1.4) / W, (side - 1.4) / H
    ax = fig.add_axes([x0, y0, w, h])
    im = ax.imshow(v, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    colors, legend = family_colors(ol, families)
    sw = 0.18 / W
    sh = 0.18 / H
    lax = fig.add_axes([x0 - sw - 0.002, y0, sw, h], sharey=ax)
    tax = fig.add_axes([x0, y0 + h + 0.002, w, sh], sharex=ax)
    rgb = np.array([colors[l] for l in ol])
    lax.imshow(rgb[:, None, :], aspect="auto", interpolation="nearest")
    tax.imshow(rgb[None, :, :], aspect="auto", interpolation="nearest")
    for a in (lax, tax):
        for s_ in a.spines.values():
            s_.set_visible(False)
    tax.tick_params(axis="both", which="both", length=0, labelbottom=False, labelleft=False)
    lax.set_xticks([])
    lax.set_yticks(idx)
    lax.set_yticklabels([ol[i] for i in idx], fontsize=font)
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    ax.set_xticks(idx)
    ax.set_xticklabels([ol[i] for i in idx], rotation=90, fontsize=font)
    if families:
        for lab, i in zip(lax.get_yticklabels(), idx):
            lab.set_color(colors[ol[i]])
        for lab, i in zip(ax.get_xticklabels(), idx):
            lab.set_color(colors[ol[i]])
    cax = fig.add_axes([x0 + w + 0.15 / W, y0, 0.2 / W, h * 0.45])
    fig.colorbar(im, cax=cax, label=f"similarity ({matrix.name})" if matrix.name else "similarity")
    t = title or f"{matrix.name or 'similarity'}: {L} languages"
    if step > 1:
        t += f" (every {step}th label shown; colour strips show every language)"
    tax.set_title(t, fontsize=11)
    if legend:
        from matplotlib.patches import Patch
        fig.legend(handles=[Patch(color=c, label=f) for f, c in legend.items()], loc="upper left",
                   bbox_to_anchor=(x0 + w + 0.1 / W, y0 + h), fontsize=8, title="family (languages)",
                   title_fontsize=8)
    if path:
        save_figure(fig, path)
    return fig


def draw_by_layer(ax, layers: Sequence[int], values, *, color, label: str, low=None, high=None,
                  significant=None, star_best: bool = False) -> None:
    """One series of a value per layer on `ax`: the line, a band [low, high] where given, and
    either filled (significant) / hollow markers or plain ones, the best layer starred when
    asked. The one drawing routine of every 'by layer' figure (agreement with measures here,
    representation change in `analysis.change`)."""
    x, y = np.asarray(layers), np.asarray(values, dtype=float)
    if significant is None:
        ax.plot(x, y, "-o", color=color, ms=4, lw=1.8, label=label)
    else:
        sig = np.asarray(significant, dtype=bool)
        ax.plot(x, y, color=color, lw=1.8, label=label)
        ax.scatter(x[sig], y[sig], color=color, s=22, zorder=3)
        ax.scatter(x[~sig], y[~sig], facecolors="white", edgecolors=color, s=22, zorder=3)
    if low is not None and high is not None and np.isfinite(low).any():
        ax.fill_between(x, low, high, color=color, alpha=0.18, lw=0)
    if star_best and np.isfinite(y).any():
        b = int(np.nanargmax(y))
        ax.plot([x[b]], [y[b]], marker="*", ms=14, color=color, mec="black", mew=0.6)


def plot_correlation_by_layer(corrs, method: str = "pearson", path: str | os.PathLike | None = None,
                              title: str | None = None, max_overlay: int = 4):
    """Mean correlation per layer for each measure, with the bootstrap interval as a band where
    computed and the best layer starred. Up to `max_overlay` measures share one panel; more
    get one small panel each (shared y axis), so bands never pile up."""
    plt = _plt()
    import matplotlib
    items = [c for c in (list(corrs.values()) if isinstance(corrs, dict) else list(corrs))]
    drawable = [c for c in items if np.isfinite(c.mean_pearson if method == "pearson" else c.mean_spearman).any()]
    cmap = matplotlib.colormaps["tab10"]
    n = len(drawable)
    if n <= max_overlay:
        fig, ax = plt.subplots(figsize=(8.5, 5.0))
        axes = [ax] * max(n, 1)
    else:
        ncols = 4
        nrows = int(np.ceil(n / ncols))
        fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), sharey=True, squeeze=False)
        axes = list(grid.ravel())
        for a in axes[n:]:
            a.set_visible(False)
    for i, c in enumerate(drawable):
        ax = axes[i]
        y = c.mean_pearson if method == "pearson" else c.mean_spearman
        col = cmap(i % 10)
        x = np.asarray(c.layers)
        used = int(np.nanmax(c.n_used)) if len(c.n_used) else 0
        draw_by_layer(ax, x, y, color=col, label=f"{c.measure} (n={used})", low=c.ci.get(f"{method}_low"),
                      high=c.ci.get(f"{method}_high"), star_best=True)
        b = int(np.nanargmax(y))
        if n > max_overlay:
            ax.set_title(f"{c.measure} (n={used}): best layer {x[b]}, r={y[b]:.3f}", fontsize=9)
    model = items[0].model if items else ""
    ylabel = f"mean {method.capitalize()} r over languages"
    for ax in (set(axes[:n]) if n else {axes[0]}):
        ax.axhline(0, color="#999999", lw=0.8)
        ax.grid(alpha=0.3)
        if drawable:
            ax.set_xticks(drawable[0].layers if len(drawable[0].layers) <= 16
                          else drawable[0].layers[::int(np.ceil(len(drawable[0].layers) / 16))])
        ax.set_xlabel("layer (0 = embeddings)")
    band = " (band: bootstrap interval)" if any(c.ci for c in drawable) else ""
    head = title or f"{model}: agreement with linguistic measures by layer (* = best){band}"
    if n <= max_overlay:
        axes[0].set_ylabel(ylabel)
        if n:
            axes[0].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           title="measure (languages used)", title_fontsize=8)
        axes[0].set_title(head, fontsize=11)
    else:
        for r in range(0, len(axes), 4):
            axes[r].set_ylabel(ylabel, fontsize=9)
        fig.suptitle(head, fontsize=11)
        fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def plot_best_layers(corrs, method: str = "pearson", path: str | os.PathLike | None = None,
                     families: Mapping[str, str | None] | None = None, title: str | None = None):
    """Per-language best layers, readable for any number of languages and measures.
    Left: measures x layers, colour = share of the measure's languages whose correlation
    peaks at that layer (counts written in the cells). Right: one row per measure, one dot per
    language at its best layer (jittered vertically), coloured by that language's maximum
    correlation."""
    plt = _plt()
    items = [c for c in (list(corrs.values()) if isinstance(corrs, dict) else list(corrs))]
    items = [c for c in items if any(b is not None for b in c.language_best_layer(method))]
    all_layers = sorted({k for c in items for k in c.layers})
    M = max(1, len(items))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 1.2 + 0.55 * M + 1.0),
                                 gridspec_kw={"width_ratios": [1, 1.25]})
    share = np.zeros((M, len(all_layers)))
    counts = np.zeros((M, len(all_layers)), dtype=int)
    rng = np.random.default_rng(0)
    sc = None
    for i, c in enumerate(items):
        best = [b for b in c.language_best_layer(method) if b is not None]
        mx = c.language_max(method)
        for b in best:
            counts[i, all_layers.index(b)] += 1
        share[i] = counts[i] / max(1, len(best))
        bl = np.array(best, dtype=float)
        vals = mx[np.isfinite(mx)]
        yj = i + rng.uniform(-0.3, 0.3, size=len(bl))
        sc = a2.scatter(bl, yj, c=vals, cmap="coolwarm", vmin=-1, vmax=1, s=16 if len(bl) < 300 else 5,
                        edgecolors="none", alpha=0.85)
    im = a1.imshow(share, aspect="auto", cmap="Blues", vmin=0, vmax=max(0.05, share.max()))
    if len(all_layers) <= 40:
        for i in range(M):
            for j in range(len(all_layers)):
                if counts[i, j]:
                    a1.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.6 * share.max() else "black")
    labels = [f"{c.measure} (n={int(np.isfinite(c.language_max(method)).sum())})" for c in items]
    step = max(1, int(np.ceil(len(all_layers) / 16)))
    for a in (a1,):
        a.set_yticks(range(M))
        a.set_yticklabels(labels, fontsize=9)
        a.set_xticks(range(0, len(all_layers), step))
        a.set_xticklabels(all_layers[::step])
        a.set_xlabel("best layer")
    fig.colorbar(im, ax=a1, label="share of languages", fraction=0.04, pad=0.02)
    a1.set_title("languages whose correlation peaks at each layer (count)", fontsize=10)
    a2.set_yticks(range(M))
    a2.set_yticklabels(labels, fontsize=9)
    a2.set_ylim(M - 0.5, -0.5)
    a2.set_xticks(all_layers[::step])
    a2.set_xlabel("best layer")
    a2.grid(axis="x", alpha=0.3)
    a2.set_title(f"each language (dot) at its best layer; colour = its max {method} r", fontsize=10)
    if sc is not None:
        fig.colorbar(sc, ax=a2, label=f"max {method} r over layers", fraction=0.04, pad=0.02)
    model = items[0].model if items else ""
    fig.suptitle(title or f"{model}: per-language best layers ({method})", fontsize=11)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig
