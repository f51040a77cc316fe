"""`babelmap run --probe`: the topic-probe transfer grid from the run's store (analysis.probe,
FLORES topics in the SIB-200 manner) and source selection evaluated on it (mPLM-Sim, the
alignment measures, each linguistic measure, English) with paired bootstrap intervals.

Only FLORES corpora carry the topic labels (`metadata_<split>.tsv`), so other corpora are refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from babelmap.engine.errors import CorpusError

#: the probe's settings (analysis.probe.probe_grid): grouped 5-fold over articles, closed-form ridge
PROBE_SETTINGS = {"folds": 5, "probe": "ridge", "alpha": 1000.0, "seed": 0}
ENGLISH_ID = "eng_Latn"


def require_flores(fmt: str) -> None:
    """One clear line when `--probe` is asked for a corpus without FLORES topic labels."""
    if fmt != "flores":
        raise CorpusError(f"--probe needs a FLORES corpus (--format flores): the topic labels come from "
                          f"FLORES metadata_dev.tsv, and this run reads --format {fmt}")


def topic_labels(corpus_path: str, split: str = "dev"):
    """The FLORES topic labels (analysis.topics.TopicLabels) of `split` ("dev", "devtest" or
    "dev+devtest"), from `metadata_<split>.tsv` in the corpus folder or the folder above it
    (the corpus path may be the release folder or a split folder)."""
    from babelmap.analysis.topics import TopicLabels, read_flores_topics
    root = Path(corpus_path)
    parts = []
    for s in split.split("+"):
        folder = root if (root / f"metadata_{s}.tsv").is_file() else root.parent
        if not (folder / f"metadata_{s}.tsv").is_file():
            raise CorpusError(f"--probe: no metadata_{s}.tsv (the FLORES topics) in {root} or {root.parent}; "
                              f"the FLORES-200 release folder holds it beside {s}/")
        parts.append(read_flores_topics(folder, s))
    if len(parts) == 1:
        return parts[0]
    return TopicLabels([x for p in parts for x in p.sentence_ids], [x for p in parts for x in p.articles],
                       [x for p in parts for x in p.topics], [x for p in parts for x in p.categories],
                       " + ".join(p.source for p in parts))


def labels_key(labels) -> dict:
    """What the probe's result depends on in the labels (for the stage fingerprint)."""
    import hashlib
    h = hashlib.sha256()
    for s, a, c in zip(labels.sentence_ids, labels.articles, labels.categories):
        h.update(f"{s}\t{a}\t{c}\n".encode())
    return {"labels": h.hexdigest()[:16], "categories": list(labels.categories_order)}


def compute_probe_grid(store: Path, labels, pdir: Path, progress: bool = True):
    """The source x target x layer accuracy grid (analysis.probe.probe_grid with PROBE_SETTINGS),
    saved as `pdir/grid.h5` with its per-layer summary `pdir/by_layer.tsv`; the ProbeGrid."""
    from babelmap.analysis.probe import probe_grid
    pdir.mkdir(parents=True, exist_ok=True)
    grid = probe_grid(store, labels, progress=progress, **PROBE_SETTINGS)
    grid.save(pdir / "grid.h5")
    layer_table(grid).to_csv(pdir / "by_layer.tsv", sep="\t", index=False)
    return grid


def layer_table(grid) -> "pandas.DataFrame":  # noqa: F821
    """Per layer, mean accuracy: in-language (diagonal), cross-lingual (off the diagonal), and
    from English to every other language (when English is in the grid)."""
    import pandas as pd
    L = len(grid.languages)
    off = ~np.eye(L, dtype=bool)
    e = grid.languages.index(ENGLISH_ID) if ENGLISH_ID in grid.languages else None
    rows = []
    for k, a in zip(grid.layers, grid.accuracy):
        rows.append({"layer": int(k), "in_language": float(np.nanmean(np.diag(a))),
                     "cross_lingual": float(np.nanmean(a[off])),
                     "from_english": float(np.nanmean(np.delete(a[e], e))) if e is not None else float("nan")})
    return pd.DataFrame(rows)


def probe_selection(grid, reference, others: dict, pdir: Path):
    """Source selection on the grid at its best layer (highest mean cross-lingual accuracy):
    `reference` (mPLM-Sim at the run's default layer) against each of `others` and English,
    paired bootstrap over targets (pipeline.stages.evaluate_selection) into `pdir`."""
    from babelmap.pipeline.stages import evaluate_selection
    layer = grid.best_layer()
    return evaluate_selection(grid.to_transfer_table(layer), reference, others, pdir, english=ENGLISH_ID,
                              label=f"probe grid at layer {layer}")
