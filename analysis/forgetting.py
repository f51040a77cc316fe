"""Measures for the forgetting study (docs/wordalign.md, "Forgetting"): zero-shot topic
accuracy of a linear probe trained on one language's sentence embeddings and of a fine-tuned
classifier head, with bootstrap intervals over test articles, and the study's summary rows.

Why here: the probe fit itself is `analysis.probe.fit_softmax` (one owner); this module only
standardises, predicts and scores, so the study script stays a recipe.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from babelmap.analysis.probe import fit_softmax


def masked_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, H] mean of hidden [B, T, H] over the tokens where mask [B, T] is 1 (the `mean`
    sentence pooling of the store, in float64)."""
    h = np.asarray(hidden, np.float64)
    m = np.asarray(mask, np.float64)[:, :, None]
    return (h * m).sum(1) / np.maximum(m.sum(1), 1.0)


def fit_probe(X: np.ndarray, y: Sequence[int], n_classes: int, C: float = 0.1
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A multinomial L2 logistic probe on X [n, H] standardised with X's own mean and std
    (scikit-learn's `LogisticRegression(C=C)` objective). Returns (mean, std, W [H, C], b [C])."""
    X = np.asarray(X, np.float64)
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    W, b = fit_softmax(((X - mu) / sd)[None], np.asarray(y), np.ones((1, len(X))), n_classes, C=C)
    return mu, sd, W[0], b[0]


def probe_predict(probe: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Class ids the probe from `fit_probe` assigns to X [n, H] (standardised with the train stats)."""
    mu, sd, W, b = probe
    return np.argmax(((np.asarray(X, np.float64) - mu) / sd) @ W + b, axis=1)


def accuracy_with_interval(pred: np.ndarray, y: np.ndarray, groups: Sequence[str], n_boot: int = 1000,
                           seed: int = 0, level: float = 0.95) -> dict:
    """Accuracy and a percentile bootstrap interval over `groups` (articles: whole articles are
    resampled, as the test set is a sample of articles, not of sentences)."""
    correct = (np.asarray(pred) == np.asarray(y)).astype(np.float64)
    names, inv = np.unique(np.asarray(groups), return_inverse=True)
    hits = np.bincount(inv, weights=correct, minlength=len(names))
    sizes = np.bincount(inv, minlength=len(names)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(names), size=(n_boot, len(names)))
    boot = hits[draw].sum(1) / sizes[draw].sum(1)
    a = (1 - level) / 2
    return {"accuracy": float(correct.mean()), "low": float(np.quantile(boot, a)),
            "high": float(np.quantile(boot, 1 - a)), "n": int(len(correct)), "articles": int(len(names))}


def zero_shot(train_X: np.ndarray, train_y: Sequence[int], tests: Mapping[str, np.ndarray], test_y: Sequence[int],
              groups: Sequence[str], n_classes: int, C: float = 0.1, seed: int = 0) -> dict[str, dict]:
    """Probe trained on `train_X` (one language), accuracy with intervals on every test
    language's embeddings of the same test sentences (`tests[lang]` [n, H], rows = `test_y`)."""
    probe = fit_probe(train_X, train_y, n_classes, C)
    y = np.asarray(test_y)
    return {lang: accuracy_with_interval(probe_predict(probe, X), y, groups, seed=seed) for lang, X in tests.items()}


def layer_row(rows: Sequence[dict], checkpoint: str, layer: int) -> dict:
    """The row of one checkpoint and layer from `WordAlignmentReport.rows`."""
    for r in rows:
        if r["checkpoint"] == checkpoint and r["layer"] == layer:
            return r
    raise KeyError((checkpoint, layer))


def seed_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean over training seeds and a Student-t interval for it (the training effect's
    uncertainty: one value per independently trained run; n = 1 gives a zero-width interval)."""
    from scipy import stats
    v = np.asarray(values, np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "low": mean, "high": mean, "n": int(len(v)), "values": v.tolist()}
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(len(v)), "values": v.tolist()}
