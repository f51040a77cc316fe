"""The model-derived alignment measures of `babelmap run --alignment` (MEXA, retrieval@K): each
computed from the run's store by the similarity kernels into its own `similarity-<name>.h5`,
then correlated with the run's linguistic measures and compared with cosine-mean per layer.

They are measures *of the model* (like cosine-mean, whose result format they share), not
linguistic ground truth, so they are kept apart from `--measures`: they are correlated with
the linguistic measures, never used as one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from babelmap.engine.errors import BabelmapError
from babelmap.pipeline.stages import correlate_measures, read_layer_choice, safe_name

COSINE = "cosine-mean"
LAYER_FILE = "best_layer.json"     # per alignment measure, in its correlation folder


def check_alignment_names(names: list[str]) -> list[str]:
    """The canonical names ("mexa", "retrieval@K") of `--alignment`; one clear line otherwise."""
    from babelmap.kernels.mexa import parse_measure
    out = []
    for n in names:
        if str(n).strip().lower() == COSINE:
            raise BabelmapError("--alignment cosine-mean: cosine-mean is always computed (similarity.h5); "
                                "give mexa or retrieval@K (e.g. retrieval@1)")
        kind, k = parse_measure(n)
        canon = "mexa" if kind == "mexa" else f"retrieval@{k}"
        if canon not in out:
            out.append(canon)
    return out


def is_alignment_name(name: str) -> bool:
    """True for "mexa" / "retrieval@K" (any case): a model measure, not a linguistic one."""
    from babelmap.kernels.mexa import parse_measure
    try:
        parse_measure(name)
    except BabelmapError:
        return False
    return True


def alignment_file(name: str) -> str:
    """`similarity-<name>.h5` (file-name safe: retrieval@1 -> similarity-retrieval_1.h5)."""
    return f"similarity-{safe_name(name)}.h5"


def alignment_dir(name: str) -> str:
    """The folder of one alignment measure's correlation tables: `correlation/<name>/`."""
    return f"correlation/{safe_name(name)}"


class AlignmentPass:
    """The alignment measures a run has to (re)compute, from one pass over the store's pairs
    (kernels.mexa.compute_alignment_measures: each pair's sentence cosine matrix serves every
    measure), run on the first `save` and handed out one measure per stage."""

    def __init__(self, store: Path, names: list[str], *, device: str = "auto", bootstrap: int = 0,
                 progress: bool = True):
        self.store, self.names, self.device, self.bootstrap, self.progress = store, list(names), device, bootstrap, progress
        self._results: dict | None = None

    def save(self, name: str, path: Path):
        """Measure `name` as a SimilarityResult, written to `path`."""
        if self._results is None:
            from babelmap.kernels.mexa import compute_alignment_measures
            self._results = compute_alignment_measures(self.store, measures=self.names, device=self.device,
                                                       bootstrap=self.bootstrap, progress=self.progress)
        r = self._results.pop(name)
        r.save(path)
        return r


def versus_cosine(aligned, cosine) -> "pandas.DataFrame":  # noqa: F821
    """Per layer: the alignment measure's mean over language pairs (off the diagonal), and its
    Pearson and Spearman correlation with cosine-mean over the pairs where both are defined
    (ordered pairs a != b, so an asymmetric measure such as retrieval@K counts both directions)."""
    import pandas as pd
    from scipy.stats import pearsonr, spearmanr
    if list(aligned.languages) != list(cosine.languages):
        raise BabelmapError("alignment and cosine-mean results cover different languages")
    L = len(aligned.languages)
    off = ~np.eye(L, dtype=bool)
    rows = []
    for k in aligned.layers:
        a = np.asarray(aligned.sim[aligned.layers.index(k)], dtype=np.float64)[off]
        c = np.asarray(cosine.sim[list(cosine.layers).index(k)], dtype=np.float64)[off]
        ok = np.isfinite(a) & np.isfinite(c)
        n = int(ok.sum())
        varies = n > 2 and np.ptp(a[ok]) > 0 and np.ptp(c[ok]) > 0
        rows.append({"layer": int(k), "mean": float(np.mean(a[ok])) if n else float("nan"),
                     "pearson_vs_cosine": float(pearsonr(a[ok], c[ok])[0]) if varies else float("nan"),
                     "spearman_vs_cosine": float(spearmanr(a[ok], c[ok])[0]) if varies else float("nan"),
                     "pairs": n})
    return pd.DataFrame(rows)


def alignment_correlations(aligned, cosine, measures: dict, cdir: Path, *, min_partners: int = 5,
                           bootstrap: int = 0) -> dict:
    """Correlate one alignment result with every linguistic measure (the correlation stage's
    protocol, stages.correlate_measures), compare it with cosine-mean per layer, and write into
    `cdir`: correlations.h5, the correlation TSVs, vs_cosine.tsv and best_layer.json (the layer
    with the highest mean Pearson r over the measures). Returns {measure: Correlation}."""
    corrs = correlate_measures(aligned, measures, cdir, cdir / LAYER_FILE, min_partners=min_partners,
                               bootstrap=bootstrap)
    versus_cosine(aligned, cosine).to_csv(cdir / "vs_cosine.tsv", sep="\t", index=False)
    return corrs


def best_alignment_layer(cdir: Path) -> tuple[int, str]:
    """(layer, why) recorded by `alignment_correlations`."""
    return read_layer_choice(cdir / LAYER_FILE)
