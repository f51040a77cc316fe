"""Word-level cross-lingual alignment per layer: aligned versus unrelated word distances,
word retrieval, histograms, and comparison across checkpoints (base, adjusted, fine-tuned).

Why: Cao et al. (2020) and Efimov et al. (2023) measure how close translated (aligned) words
are in a model compared with unrelated words, and how cross-lingual adjustment raises and
task fine-tuning lowers that closeness. For a word store (`babelmap words`) and an
`Alignment` (`engine/alignments.py`):

- aligned pair: source word i and its aligned target word j of the same sentence pair;
- unrelated pair: the same source word and a random word of a random *other* target sentence
  (fixed seed, so every checkpoint gets the same pairs);
- per layer: mean cosine distance (1 - cos) and L2 distance of both kinds, the paired
  difference (unrelated - aligned, per link; its mean and standard error) and the fraction of
  links where the aligned word is closer;
- word retrieval accuracy: the share of links whose source word's nearest target word (cosine,
  within the sentence pair) is its aligned word; `chance` = mean of 1 / (target words).

When the alignment itself comes from the base model at layer k, the base model's retrieval at
layer k is 1 by construction: report the other layers and the other checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from babelmap.engine.errors import StoreError
from babelmap.engine.words import WordStore, open_words
from babelmap.analysis.plots import save_figure
from babelmap.engine.alignments import Alignment
from babelmap.kernels.align import nearest_in_sentence

METRICS = ("n_links", "cos_aligned", "cos_unrelated", "cos_diff", "cos_diff_se", "cos_closer",
           "l2_aligned", "l2_unrelated", "l2_diff", "l2_diff_se", "retrieval", "chance")


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a_i, b_i) in float64 (0 where a row is zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    den = na * nb
    cos = np.divide((a * b).sum(1), den, out=np.zeros(len(a)), where=den > 0)
    return 1.0 - cos


def l2_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distance in float64."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)


@dataclass
class PairIndex:
    """Global word rows of every link: source, aligned target, unrelated target, and the
    number of target words of the link's sentence (for the chance level)."""

    src: np.ndarray
    tgt: np.ndarray
    unrelated: np.ndarray
    local_tgt: np.ndarray
    tgt_count: np.ndarray


def build_pairs(alignment: Alignment, src_off: np.ndarray, tgt_off: np.ndarray,
                src_valid: np.ndarray | None = None, tgt_valid: np.ndarray | None = None,
                seed: int = 0) -> PairIndex:
    """Aligned and unrelated pairs as global row indices (links with an invalid word dropped)."""
    src_off, tgt_off = np.asarray(src_off, np.int64), np.asarray(tgt_off, np.int64)
    if alignment.n_sentences != len(src_off) - 1:
        raise StoreError(f"the alignment has {alignment.n_sentences} sentences, the word store "
                         f"{len(src_off) - 1}: align the same store")
    gs, gt = alignment.global_indices(src_off, tgt_off)
    sent = alignment.sentence_index()
    sv = np.ones(src_off[-1], bool) if src_valid is None else np.asarray(src_valid, bool)
    tv = np.ones(tgt_off[-1], bool) if tgt_valid is None else np.asarray(tgt_valid, bool)
    keep = sv[gs] & tv[gt]
    gs, gt, sent, local = gs[keep], gt[keep], sent[keep], alignment.tgt[keep]
    lens = np.diff(tgt_off)
    nonempty = np.nonzero(lens > 0)[0]
    if len(nonempty) < 2:
        raise StoreError("need at least two non-empty target sentences for unrelated pairs")
    rng = np.random.default_rng(seed)
    # a random other sentence: draw among non-empty sentences, skipping the link's own
    pos = np.searchsorted(nonempty, sent)
    own = (pos < len(nonempty)) & (nonempty[np.minimum(pos, len(nonempty) - 1)] == sent)
    draw = rng.integers(0, len(nonempty) - own.astype(np.int64))
    draw = draw + (own & (draw >= pos))
    other = nonempty[draw]
    unrelated = tgt_off[other] + (rng.random(len(other)) * lens[other]).astype(np.int64)
    cs = np.concatenate([[0], np.cumsum(tv.astype(np.int64))])
    counts = cs[tgt_off[1:]] - cs[tgt_off[:-1]]
    return PairIndex(gs, gt, unrelated, local, counts[sent])


def layer_measures(src_emb: np.ndarray, tgt_emb: np.ndarray, pairs: PairIndex, nearest: np.ndarray
                   ) -> tuple[dict, dict]:
    """The table row of one layer and the raw distances (for histograms)."""
    a = np.asarray(src_emb[pairs.src], np.float64)
    t = np.asarray(tgt_emb[pairs.tgt], np.float64)
    u = np.asarray(tgt_emb[pairs.unrelated], np.float64)
    ca, cu = cosine_distance(a, t), cosine_distance(a, u)
    la, lu = l2_distance(a, t), l2_distance(a, u)
    n = len(ca)
    se = lambda x: float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")  # noqa: E731
    row = {"n_links": n, "cos_aligned": ca.mean(), "cos_unrelated": cu.mean(), "cos_diff": (cu - ca).mean(),
           "cos_diff_se": se(cu - ca), "cos_closer": float((ca < cu).mean()), "l2_aligned": la.mean(),
           "l2_unrelated": lu.mean(), "l2_diff": (lu - la).mean(), "l2_diff_se": se(lu - la),
           "retrieval": float((nearest[pairs.src] == pairs.local_tgt).mean()),
           "chance": float((1.0 / np.maximum(pairs.tgt_count, 1)).mean())}
    return {k: float(v) if k != "n_links" else int(v) for k, v in row.items()}, \
        {"cos_aligned": ca, "cos_unrelated": cu, "l2_aligned": la, "l2_unrelated": lu}


@dataclass
class WordAlignmentReport:
    """Per checkpoint and layer: the measures (`rows`) and raw distances (`raw[(ckpt, layer)]`)."""

    src: str
    tgt: str
    rows: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame(self.rows)

    def get(self, checkpoint: str, layer: int, metric: str) -> float:
        for r in self.rows:
            if r["checkpoint"] == checkpoint and r["layer"] == layer:
                return r[metric]
        raise KeyError((checkpoint, layer))

    @property
    def checkpoints(self) -> list[str]:
        return list(dict.fromkeys(r["checkpoint"] for r in self.rows))


def analyse(stores: Mapping[str, str | os.PathLike | WordStore] | str | os.PathLike | WordStore,
            alignment: Alignment, src: str, tgt: str, layers: Sequence[int] | None = None,
            seed: int = 0, raw_layers: Sequence[int] | None = None, progress: bool = True) -> WordAlignmentReport:
    """Measures for one or several checkpoints' word stores of the same corpus and segmentation.

    `stores`: one store, or `{"base": path, "adjusted": path, ...}` (order kept in figures).
    Every checkpoint uses the same aligned and unrelated pairs. Raw distances are kept for
    `raw_layers` (default: all).
    """
    from tqdm.auto import tqdm

    if not isinstance(stores, Mapping):
        stores = {"model": stores}
    opened = {k: (v if isinstance(v, WordStore) else open_words(v)) for k, v in stores.items()}
    first = next(iter(opened.values()))
    src_off, tgt_off = first.offsets(src), first.offsets(tgt)
    for name, ws in opened.items():
        if ws.sentence_ids != first.sentence_ids or not np.array_equal(ws.offsets(src), src_off) \
                or not np.array_equal(ws.offsets(tgt), tgt_off):
            raise StoreError(f"word store {ws.path} ({name}) has other sentences or words than {first.path}; "
                             "extract all checkpoints from the same corpus with the same segmentation")
    pairs = build_pairs(alignment, src_off, tgt_off, first.valid(src), first.valid(tgt), seed)
    rep = WordAlignmentReport(src, tgt)
    for name, ws in opened.items():
        ls = list(layers) if layers is not None else ws.layers
        for k in tqdm(ls, desc=f"word alignment {name}", disable=not progress, leave=False):
            se, te = ws.embeddings(src, k), ws.embeddings(tgt, k)
            near = nearest_in_sentence(se, src_off, te, tgt_off, ws.valid(tgt))
            row, raw = layer_measures(se, te, pairs, near)
            rep.rows.append({"checkpoint": name, "layer": int(k), **row})
            if raw_layers is None or k in raw_layers:
                rep.raw[(name, int(k))] = raw
    return rep


# ---------------------------------------------------------------------------------------------
# output: table and figures


def write_table(rep: WordAlignmentReport, folder: str | os.PathLike) -> tuple[Path, Path]:
    """`wordalign_table.csv` and `wordalign_table.md` in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    df = rep.to_pandas()
    csv = folder / "wordalign_table.csv"
    df.to_csv(csv, index=False, float_format="%.5g")
    cols = ["checkpoint", "layer", "n_links", "cos_aligned", "cos_unrelated", "cos_diff", "cos_closer",
            "l2_aligned", "l2_unrelated", "l2_diff", "retrieval", "chance"]
    md = folder / "wordalign_table.md"
    lines = [f"Word alignment {rep.src} - {rep.tgt}: distances are means over aligned links; "
             "diff = unrelated - aligned.", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    for r in rep.rows:
        lines.append("| " + " | ".join(str(r[c]) if isinstance(r[c], (int, str)) else f"{r[c]:.3f}"
                                         for c in cols) + " |")
    md.write_text("\n".join(lines) + "\n")
    return csv, md


def _save(fig, folder: Path, stem: str, pdf: bool) -> list[Path]:
    """`<folder>/<stem>.png` (and `.pdf`) through the package's one figure saver (closes `fig`)."""
    return save_figure(fig, folder / stem, formats=("png", "pdf") if pdf else ("png",), dpi=110)


def plot_report(rep: WordAlignmentReport, folder: str | os.PathLike, hist_layer: int | None = None,
                prefix: str = "wordalign", pdf: bool = True) -> list[Path]:
    """Figures: distances per layer (aligned solid, unrelated dashed; cosine and L2), word
    retrieval per layer, and histograms of aligned vs unrelated cosine distance at one layer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    df = rep.to_pandas()
    names = rep.checkpoints
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    pair = f"{rep.src} - {rep.tgt}"
    out: list[Path] = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, m, label in ((axes[0], "cos", "cosine distance (1 - cos)"), (axes[1], "l2", "L2 distance")):
        for c, name in zip(colors, names):
            d = df[df.checkpoint == name]
            ax.plot(d.layer, d[f"{m}_aligned"], "-o", color=c, ms=3, label=f"{name}: aligned")
            ax.plot(d.layer, d[f"{m}_unrelated"], "--", color=c, label=f"{name}: unrelated")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Aligned vs unrelated word pairs, {pair}")
    fig.tight_layout()
    out += _save(fig, folder, f"{prefix}_distances", pdf)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for c, name in zip(colors, names):
        d = df[df.checkpoint == name]
        ax.plot(d.layer, d.retrieval, "-o", color=c, ms=3, label=name)
    ax.plot(df[df.checkpoint == names[0]].layer, df[df.checkpoint == names[0]].chance, ":", color="grey",
            label="chance")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("word retrieval accuracy")
    ax.set_title(f"Nearest target word = aligned word, {pair}", fontsize=10)
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out += _save(fig, folder, f"{prefix}_retrieval", pdf)

    layers_raw = sorted({k for _, k in rep.raw})
    if layers_raw:
        k = hist_layer if hist_layer in layers_raw else layers_raw[-1]
        fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.3), sharex=True, sharey=True,
                                 squeeze=False)
        allv = np.concatenate([np.r_[rep.raw[(n, k)]["cos_aligned"], rep.raw[(n, k)]["cos_unrelated"]]
                               for n in names if (n, k) in rep.raw])
        bins = np.linspace(max(0.0, allv.min()), allv.max(), 40)
        for ax, name in zip(axes[0], names):
            raw = rep.raw.get((name, k))
            if raw is None:
                continue
            ax.hist(raw["cos_aligned"], bins=bins, alpha=.6, label="aligned", color=colors[0])
            ax.hist(raw["cos_unrelated"], bins=bins, alpha=.6, label="unrelated", color=colors[1])
            ax.set_title(f"{name}, layer {k}", fontsize=10)
            ax.set_xlabel("cosine distance")
        axes[0][0].set_ylabel("word pairs")
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"Cosine distance of word pairs, {pair}", fontsize=11)
        fig.tight_layout()
        out += _save(fig, folder, f"{prefix}_hist", pdf)
        return out


def plot_sentence_similarity(sims: Mapping[str, np.ndarray], folder: str | os.PathLike, title: str,
                             prefix: str = "wordalign", pdf: bool = True) -> list[Path]:
    """Mean cosine of translation pairs' sentence embeddings per layer, one line per checkpoint."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for name, v in sims.items():
        ax.plot(np.arange(len(v)), v, "-o", ms=3, label=name)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("mean cosine of sentence pairs")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = _save(fig, folder, f"{prefix}_sentence_sim", pdf)
    return out


def write_report(rep: WordAlignmentReport, folder: str | os.PathLike, hist_layer: int | None = None,
                 pdf: bool = True) -> list[Path]:
    """Table (CSV + Markdown) and figures into `folder`."""
    return list(write_table(rep, folder)) + plot_report(rep, folder, hist_layer, pdf=pdf)


def store_alignment(ws: WordStore, src: str, tgt: str, *, pharaoh: str | os.PathLike | None = None,
                    alignment: str | os.PathLike | None = None, all_links: bool = False,
                    drop_identical: bool = False, layer: int = 8, device: str = "cpu") -> tuple[Alignment, str]:
    """The alignment of `src`-`tgt` over a word store's sentences: a Pharaoh file (one-to-one
    links unless `all_links`), an alignment file written by `babelmap align --out` (read as is),
    or the model's own (mutual argmax at `layer`); and a one-line summary of it."""
    from babelmap.engine.alignments import drop_identical_links, read_pharaoh
    from babelmap.kernels.align import align_store
    for lang in (src, tgt):
        ws.offsets(lang)  # a clear error for an unknown language
    src_words = [ws.sentence_words(src, s) for s in range(len(ws.sentence_ids))]
    tgt_words = [ws.sentence_words(tgt, s) for s in range(len(ws.sentence_ids))]
    if pharaoh or alignment:
        al = read_pharaoh(pharaoh or alignment, src_words, tgt_words, keep_one_to_one=bool(pharaoh) and not all_links,
                          drop_identical=drop_identical, src_lang=src, tgt_lang=tgt)
    else:
        al = align_store(ws, src, tgt, layer=layer, device=device)
        if drop_identical:
            al = drop_identical_links(al, src_words, tgt_words)
    n_pairs = sum(1 for s in range(al.n_sentences) if al.offsets[s + 1] > al.offsets[s])
    n_src = sum(map(len, src_words))
    line = (f"{len(al)} links over {n_pairs} sentence pairs ({len(al) / max(1, n_pairs):.1f} per pair; "
            f"{100 * len(al) / max(1, n_src):.0f}% of {n_src} {src} words)")
    return al, line


def summary_lines(rep: WordAlignmentReport) -> list[str]:
    """Per checkpoint: last-layer distances and retrieval, and the best retrieval's layer."""
    out = []
    for name in rep.checkpoints:
        rows = [r for r in rep.rows if r["checkpoint"] == name]
        best = max(rows, key=lambda r: r["retrieval"])
        last = rows[-1]
        out.append(f"  {name}: last layer cos distance aligned {last['cos_aligned']:.3f} vs unrelated "
                   f"{last['cos_unrelated']:.3f}, retrieval {last['retrieval']:.3f}; best retrieval "
                   f"{best['retrieval']:.3f} at layer {best['layer']}")
    return out
