"""Figures: what is drawn is the data (leaf order, reordered matrix, per-layer means), labels
are thinned and coloured by family, PNG and PDF are written. 1000 languages: slow."""
from __future__ import annotations

import itertools
import string

import numpy as np
import pytest

from babelmap.analysis import plots
from babelmap.analysis.cluster import cluster
from babelmap.analysis.correlation import correlate
from babelmap.kernels.matrix import LanguageMatrix
from babelmap.kernels.result import SimilarityResult


def _result(langs, layers, sim, stderr=None):
    """A SimilarityResult of given sims (every pair counted once)."""
    return SimilarityResult(langs, layers, sim, np.ones((len(langs), len(langs)), np.int32), stderr=stderr)


def _synth(L, K=4, F=6, seed=0):
    rng = np.random.default_rng(seed)
    codes = ["".join(p) for p in itertools.product(string.ascii_lowercase, repeat=3)]
    langs = sorted(f"{c}_Latn" for c in rng.choice(codes, L, replace=False))
    fam = rng.integers(0, F, L)
    sims = []
    for k in range(K):
        b = np.where(fam[:, None] == fam[None, :], 0.7, 0.3) + 0.1 * rng.standard_normal((L, L))
        s = (b + b.T) / 2
        np.fill_diagonal(s, 1)
        sims.append(s)
    g = np.where(fam[:, None] == fam[None, :], 0.8, 0.1) + 0.05 * rng.random((L, L))
    families = {l: f"F{f}" for l, f in zip(langs, fam)}
    return langs, np.stack(sims), LanguageMatrix(langs, (g + g.T) / 2, "genetic"), families


def _is_png(p):
    return p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dendrogram_and_heatmap_draw_the_data(tmp_path):
    from scipy.cluster.hierarchy import dendrogram
    langs, sim, _, fams = _synth(30)
    m = LanguageMatrix(langs, sim[2], "mplm-sim@2")
    c = cluster(m, k=5)
    fig = plots.plot_dendrogram(c, fams, tmp_path / "dendro")
    assert _is_png(tmp_path / "dendro.png") and (tmp_path / "dendro.pdf").read_bytes()[:4] == b"%PDF"
    leaves = dendrogram(c.Z, no_plot=True)["leaves"]
    sax = fig.axes[1]
    labels = [t.get_text() for t in sax.get_yticklabels()]
    assert labels == [langs[i] for i in leaves]                       # every leaf, in tree order
    colors, _ = plots.family_colors(langs, fams)
    for t in sax.get_yticklabels():
        assert t.get_color() == colors[t.get_text()]
    # heatmap: the image is the matrix in leaf order with an empty diagonal
    fig = plots.plot_heatmap(m, c.order, fams, tmp_path / "heat")
    assert _is_png(tmp_path / "heat.png")
    arr = np.asarray(fig.axes[0].images[0].get_array(), dtype=float)
    want = m.values[np.ix_(c.order, c.order)].copy()
    np.fill_diagonal(want, np.nan)
    assert np.allclose(arr, want, equal_nan=True)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [langs[i] for i in c.order]


def test_correlation_figures(tmp_path):
    langs, sim, g, fams = _synth(30)
    corr = correlate(_result(langs, [0, 1, 2, 3], sim), g, bootstrap=30)
    fig = plots.plot_correlation_by_layer({"genetic": corr}, path=tmp_path / "corr")
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_ydata(), corr.mean_pearson) and list(line.get_xdata()) == [0, 1, 2, 3]
    assert _is_png(tmp_path / "corr.png")
    # more than 4 measures: one panel each, each panel's line is its measure's means
    many = {f"m{i}": correlate(_result(langs, [0, 1, 2, 3], sim), g, name=f"m{i}", layers=[0, 1, 2, 3][: 4 - i % 2])
            for i in range(6)}
    fig = plots.plot_correlation_by_layer(many)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 6
    for a, c in zip(visible, many.values()):
        assert np.allclose(a.lines[0].get_ydata(), c.mean_pearson)
        assert a.get_title().startswith(c.measure)
    fig = plots.plot_best_layers({"genetic": corr}, path=tmp_path / "best")
    shares = np.asarray(fig.axes[0].images[0].get_array())[0]
    best = corr.language_best_layer()
    assert shares.tolist() == pytest.approx([best.count(k) / len(best) for k in [0, 1, 2, 3]])
    dots = fig.axes[1].collections[0].get_offsets()[:, 0]
    assert sorted(dots.tolist()) == sorted(b for b in best if b is not None)
    assert _is_png(tmp_path / "best.png")


def test_family_colors_cap_and_thinning():
    langs = [f"l{i:03d}_Latn" for i in range(60)]
    fams = {l: f"F{i % 25}" for i, l in enumerate(langs)}
    fams[langs[0]] = None
    colors, legend = plots.family_colors(langs, fams)
    assert len(legend) == 18 + 1 and plots.OTHER in legend           # 18 colours, rest grey
    assert colors[langs[0]] == legend[plots.OTHER]
    assert plots._thin(1000, 300) == 4 and plots._thin(30, 300) == 1


@pytest.mark.slow
def test_thousand_languages(tmp_path):
    langs, sim, g, fams = _synth(1000, K=3, F=30)
    m = LanguageMatrix(langs, sim[1], "mplm-sim@1")
    c = cluster(m, k=30)
    fig = plots.plot_dendrogram(c, fams, tmp_path / "d")
    labels = fig.axes[1].get_yticklabels()
    assert len(labels) == 250                                          # every 4th of 1000
    assert fig.get_size_inches()[1] <= 42
    fig = plots.plot_heatmap(m, c.order, fams, tmp_path / "h")
    assert len(fig.axes[0].get_xticklabels()) == 143                   # every 7th of 1000
    corr = correlate(_result(langs, [0, 1, 2], sim), g)
    plots.plot_correlation_by_layer([corr], path=tmp_path / "c")
    plots.plot_best_layers([corr], path=tmp_path / "b")
    for stem in "dhcb":
        assert _is_png(tmp_path / f"{stem}.png") and (tmp_path / f"{stem}.pdf").stat().st_size > 1000
