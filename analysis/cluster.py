"""Hierarchical clustering of languages from a similarity matrix, and how well the clusters
recover language families (purity, adjusted Rand index).

Distance = 1 - similarity (as in the reference mPLM-Sim code), symmetrised, diagonal 0,
negative values clipped to 0. Missing (NaN) off-diagonal pairs get the largest observed
distance and are counted in `Clustering.filled`. For a measure that is not a similarity in
[-1, 1] (e.g. LEX = minus an edit distance), pass `rescale=True`: similarities are mapped
linearly to [0, 1] first. Linkage: any of scipy's methods for a condensed distance
(`complete` by default, the reference; `average`, `single`, `weighted`; `ward` is allowed but
assumes Euclidean distances).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from babelmap.kernels.matrix import LanguageMatrix

LINKAGES = ("complete", "average", "single", "weighted", "centroid", "median", "ward")


def distance_matrix(matrix: LanguageMatrix, rescale: bool = False) -> tuple[np.ndarray, int]:
    """Square distance [L, L] from a similarity matrix, and the number of NaN pairs filled."""
    s = np.array(matrix.values, dtype=np.float64)
    if rescale:
        off = s[~np.eye(len(s), dtype=bool)]
        lo, hi = np.nanmin(off), np.nanmax(off)
        s = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    d = 1.0 - s
    d = (d + d.T) / 2.0  # NaN stays NaN if either side is
    np.fill_diagonal(d, 0.0)
    nan = ~np.isfinite(d)
    filled = int(nan.sum() // 2)
    if filled:
        fill = np.nanmax(d) if np.isfinite(d).any() else 1.0
        d[nan] = fill
    d = np.clip(d, 0.0, None)
    return d, filled


@dataclass
class Clustering:
    """A dendrogram over `languages`: scipy linkage `Z`, leaf `order` (indices, left to right),
    and, after `cut(k)`, integer `labels` (1..k) per language."""

    languages: list[str]
    Z: np.ndarray
    method: str
    distance: np.ndarray
    filled: int = 0
    labels: np.ndarray | None = None
    name: str = ""
    info: dict = field(default_factory=dict)

    @property
    def order(self) -> list[int]:
        from scipy.cluster.hierarchy import leaves_list
        return [int(i) for i in leaves_list(self.Z)]

    @property
    def ordered_languages(self) -> list[str]:
        return [self.languages[i] for i in self.order]

    def cut(self, k: int) -> np.ndarray:
        """Cut the tree into (at most) k clusters; returns and stores labels 1..k."""
        from scipy.cluster.hierarchy import fcluster
        if not 1 <= k <= len(self.languages):
            raise ValueError(f"k must be in 1..{len(self.languages)}, got {k}")
        self.labels = fcluster(self.Z, t=k, criterion="maxclust").astype(np.int64)
        return self.labels

    def clusters(self) -> dict[int, list[str]]:
        """{cluster label: [languages]} of the last cut."""
        if self.labels is None:
            raise ValueError("call cut(k) first")
        out: dict[int, list[str]] = {}
        for lang, lab in zip(self.languages, self.labels):
            out.setdefault(int(lab), []).append(lang)
        return dict(sorted(out.items()))

    def evaluate(self, families: Mapping[str, str | None]) -> dict:
        """Purity and ARI of the last cut against family labels; languages without a family
        are left out (listed under `unlabelled`)."""
        if self.labels is None:
            raise ValueError("call cut(k) first")
        keep = [i for i, l in enumerate(self.languages) if families.get(l)]
        unlabelled = [l for l in self.languages if not families.get(l)]
        pred = [int(self.labels[i]) for i in keep]
        true = [families[self.languages[i]] for i in keep]
        return {"k": int(len(set(self.labels))), "languages": len(keep), "unlabelled": unlabelled,
                "families": len(set(true)), "purity": purity(pred, true) if keep else float("nan"),
                "ari": adjusted_rand_index(pred, true) if keep else float("nan")}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the whole clustering (linkage, distances, labels, info) to HDF5 `path` through a
        temporary name; `Clustering.load` gives it back unchanged."""
        import h5py

        from babelmap.engine.diskwrite import write_hdf5_safely

        def build(f) -> None:
            f.create_dataset("languages", data=np.array(self.languages, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            f.create_dataset("Z", data=np.asarray(self.Z, dtype=np.float64))
            f.create_dataset("distance", data=np.asarray(self.distance, dtype=np.float64))
            if self.labels is not None:
                f.create_dataset("labels", data=np.asarray(self.labels, dtype=np.int64))
            f.attrs.update({"format": "babelmap.clustering", "method": self.method, "name": self.name,
                            "filled": int(self.filled), "info": json.dumps(self.info, default=str)})
        return write_hdf5_safely(path, build, "clustering")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Clustering":
        """Read a clustering written by `save`."""
        import h5py
        with h5py.File(path, "r") as f:
            langs = [x.decode() if isinstance(x, bytes) else str(x) for x in f["languages"][()]]
            a = f.attrs
            return cls(langs, f["Z"][()], str(a["method"]), f["distance"][()], int(a["filled"]),
                       f["labels"][()] if "labels" in f else None, str(a["name"]), json.loads(a["info"]))

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame({"language": self.languages,
                             "cluster": self.labels if self.labels is not None else np.nan,
                             "leaf_position": np.argsort(self.order)})


def cluster(matrix: LanguageMatrix, k: int | None = None, method: str = "complete",
            rescale: bool = False) -> Clustering:
    """Agglomerative clustering of 1 - similarity (module docstring); cut into k clusters if k."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    if method not in LINKAGES:
        raise ValueError(f"unknown linkage {method!r}; choose one of {', '.join(LINKAGES)}")
    if len(matrix) < 2:
        raise ValueError(f"need at least 2 languages to cluster, got {len(matrix)}")
    d, filled = distance_matrix(matrix, rescale)
    Z = linkage(squareform(d, checks=False), method=method)
    out = Clustering(list(matrix.languages), Z, method, d, filled, name=matrix.name)
    if k is not None:
        out.cut(k)
    return out


# -- agreement with labels -----------------------------------------------------------------------
def contingency(pred: Sequence, true: Sequence) -> np.ndarray:
    """Counts [n_pred_clusters, n_true_classes]."""
    if len(pred) != len(true):
        raise ValueError("label sequences differ in length")
    _, pi = np.unique(np.asarray(pred, dtype=object).astype(str), return_inverse=True)
    _, ti = np.unique(np.asarray(true, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((pi.max() + 1, ti.max() + 1), dtype=np.int64)
    np.add.at(table, (pi, ti), 1)
    return table


def purity(pred: Sequence, true: Sequence) -> float:
    """Fraction of items in their cluster's majority class: sum_c max_f n_cf / N."""
    t = contingency(pred, true)
    return float(t.max(axis=1).sum() / t.sum())


def adjusted_rand_index(pred: Sequence, true: Sequence) -> float:
    """Hubert & Arabie's ARI from the contingency table:
    (sum C(n_ij,2) - E) / (0.5 (sum C(a_i,2) + sum C(b_j,2)) - E), E = sum C(a,2) sum C(b,2) / C(n,2).
    1 for identical partitions (also when both are trivial), about 0 for random ones."""
    t = contingency(pred, true).astype(np.float64)
    n = t.sum()
    comb = lambda x: x * (x - 1) / 2.0  # noqa: E731
    sum_ij = comb(t).sum()
    sum_a = comb(t.sum(axis=1)).sum()
    sum_b = comb(t.sum(axis=0)).sum()
    total = comb(n)
    if total == 0:
        return 1.0
    expected = sum_a * sum_b / total
    max_index = 0.5 * (sum_a + sum_b)
    if max_index == expected:
        return 1.0
    return float((sum_ij - expected) / (max_index - expected))


def evaluate_cuts(clustering: Clustering, families: Mapping[str, str | None],
                  ks: Sequence[int] | None = None):
    """Purity and ARI for several k (default: 2..min(40, L-1) and the number of families)."""
    import pandas as pd
    n_fam = len({f for l, f in families.items() if f and l in set(clustering.languages)})
    L = len(clustering.languages)
    if ks is None:
        ks = sorted({k for k in list(range(2, min(40, L - 1) + 1)) + [n_fam] if 1 <= k <= L})
    saved = clustering.labels
    rows = []
    for k in ks:
        clustering.cut(k)
        ev = clustering.evaluate(families)
        rows.append({"k": k, "clusters": ev["k"], "purity": ev["purity"], "ari": ev["ari"],
                     "languages": ev["languages"], "families": ev["families"]})
    clustering.labels = saved
    return pd.DataFrame(rows)
