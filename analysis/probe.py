"""A topic-probe transfer grid from a store: per layer, a linear probe trained on one source
language's embeddings of the train articles, tested on every target language's embeddings of
the test articles, giving a source x target accuracy grid (the frozen-encoder SIB-200 setting).

Two probes, both on features standardised with the source's train mean and std: a ridge
classifier (default; scikit-learn's RidgeClassifier objective, closed form, batched over all
sources) and multinomial logistic regression with an L2 penalty (the objective of scikit-learn's
`LogisticRegression(C=C)`: C x summed cross-entropy + 0.5 ||W||^2, intercept unpenalised),
all sources of a layer fitted by one batched full-batch L-BFGS in float64 over the separable
summed objective, in the n coordinates of the train rows when n < H (tens of times slower
than ridge on 204 sources; similar accuracy on FLORES topics, docs/probe.md).
Sentences are split by article (no article on both sides), stratified by each article's
majority category so every category has train articles; by default grouped 5-fold, the
answers pooled over the folds (every labelled sentence tested once: small FLORES subsets).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from babelmap.engine.errors import StoreError

FORMAT = "babelmap.probe"
FORMAT_VERSION = 1


# -- split ---------------------------------------------------------------------------------
def _majority_label(articles: Sequence[str], labels: Sequence[int]) -> tuple[list[str], dict[str, int]]:
    """(articles as a list, each article's majority label, ties to the lower label)."""
    articles = list(articles)
    per: dict[str, dict[int, int]] = {}
    for a, y in zip(articles, np.asarray(labels)):
        per.setdefault(a, {}).setdefault(int(y), 0)
        per[a][int(y)] += 1
    return articles, {a: min(c, key=lambda y: (-c[y], y)) for a, c in per.items()}


def split_by_article(articles: Sequence[str], labels: Sequence[int], test_fraction: float = 0.3,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) boolean masks over sentences: whole articles go to one side. Per category
    (an article under its majority label, ties to the lower label) a seeded random
    `test_fraction` of the articles (at least 1 when the category has 2 or more, never all)
    are test articles."""
    articles, major = _majority_label(articles, labels)
    rng = np.random.default_rng(seed)
    test_articles: set[str] = set()
    for y in sorted(set(major.values())):
        arts = sorted(a for a, m in major.items() if m == y)
        n = len(arts)
        n_test = 0 if n < 2 else min(n - 1, max(1, int(round(test_fraction * n))))
        test_articles.update(arts[i] for i in rng.permutation(n)[:n_test])
    test = np.array([a in test_articles for a in articles], dtype=bool)
    return ~test, test


def article_folds(articles: Sequence[str], labels: Sequence[int], n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold id per sentence for grouped, stratified k-fold: whole articles per fold; per
    category (an article under its majority label) the articles, in a seeded random order, are
    dealt round-robin to the folds (the count carried across categories to balance fold sizes),
    so a category with at least 2 articles has train articles in every fold."""
    articles, major = _majority_label(articles, labels)
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    dealt = 0
    for y in sorted(set(major.values())):
        arts = sorted(a for a, m in major.items() if m == y)
        for i in rng.permutation(len(arts)):
            fold_of[arts[i]] = dealt % n_folds
            dealt += 1
    return np.array([fold_of[a] for a in articles])


# -- the batched probe ---------------------------------------------------------------------
def fit_softmax(X: np.ndarray, y: np.ndarray, weight: np.ndarray, n_classes: int, C: float = 1.0,
                max_iter: int = 1000, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Fit B independent L2 multinomial logistic regressions at once.
    X [B, n, H] (already standardised), y [n] class ids shared by all B, weight [B, n] (0 drops
    a row, e.g. a sentence missing in that language). Returns W [B, H, C], b [B, C] (float64)
    minimising, per problem, C * sum_i weight_i * CE_i + 0.5 * ||W||^2.
    When n < H the optimum lies in the row space of X (representer theorem), so each problem is
    solved exactly in the n coordinates of X's thin SVD (X = U S V^T, W = V beta): the same
    objective at H/n of the cost."""
    import torch

    Xt = torch.as_tensor(X, dtype=torch.float64)
    B, n, H = Xt.shape
    V = None
    if n < H:
        U, Sv, Vh = torch.linalg.svd(Xt, full_matrices=False)    # U [B,n,n], Vh [B,n,H]
        Xt, V = U * Sv[:, None, :], Vh.transpose(1, 2)           # Z = U S; W = V beta
    wt = torch.as_tensor(weight, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    D = Xt.shape[2]
    W = torch.zeros(B, D, n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(B, n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")
    onehot = torch.nn.functional.one_hot(yt, n_classes).to(torch.float64)

    def closure():
        opt.zero_grad()
        logits = torch.bmm(Xt, W) + b[:, None, :]
        ce = torch.logsumexp(logits, dim=2) - (logits * onehot[None]).sum(dim=2)
        loss = C * (wt * ce).sum() + 0.5 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    W = W.detach()
    if V is not None:
        W = torch.bmm(V, W)
    return W.numpy(), b.detach().numpy()


def fit_ridge(X: np.ndarray, y: np.ndarray, weight: np.ndarray, n_classes: int, alpha: float = 1000.0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Fit B independent ridge classifiers at once (scikit-learn's RidgeClassifier on 0/1
    one-hot targets: min ||Y - X W - 1 b||^2 + alpha ||W||^2 over the rows with weight 1,
    intercept unpenalised; predict by argmax). X [B, n, H] (already standardised), y [n],
    weight [B, n] of 0/1. Closed form, in the dual (n x n) when n < H. Returns W [B, H, C], b [B, C]."""
    X = np.asarray(X, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)[:, :, None]
    B, n, H = X.shape
    Y = np.eye(n_classes)[np.asarray(y)][None] * w                      # [B, n, C]
    cnt = np.maximum(w.sum(axis=1), 1.0)                                # [B, 1]
    xbar, ybar = (X * w).sum(axis=1) / cnt, Y.sum(axis=1) / cnt
    Xc, Yc = (X - xbar[:, None]) * w, (Y - ybar[:, None]) * w           # dropped rows become 0
    if n < H:
        K = Xc @ Xc.transpose(0, 2, 1)
        W = Xc.transpose(0, 2, 1) @ np.linalg.solve(K + alpha * np.eye(n)[None], Yc)
    else:
        G = Xc.transpose(0, 2, 1) @ Xc
        W = np.linalg.solve(G + alpha * np.eye(H)[None], Xc.transpose(0, 2, 1) @ Yc)
    b = ybar - np.einsum("bh,bhc->bc", xbar, W)
    return W, b


def standardise_stats(X: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per problem mean and (population) std over the rows with weight 1: X [B, n, H] ->
    mu, sd [B, H]; a constant feature gets sd 1 (as scikit-learn's StandardScaler)."""
    w = weight[:, :, None].astype(np.float64)
    cnt = np.maximum(w.sum(axis=1), 1.0)
    mu = (X * w).sum(axis=1) / cnt
    var = (((X - mu[:, None, :]) ** 2) * w).sum(axis=1) / cnt
    sd = np.sqrt(var)
    sd[sd < 1e-12] = 1.0
    return mu, sd


def grid_counts(E: np.ndarray, present: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                n_classes: int, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-6,
                probe: str = "logistic", alpha: float = 1000.0) -> tuple[np.ndarray, np.ndarray]:
    """(correct [L, L] (source, target), tested [L] (target)) for one layer and one split
    (probe "logistic": fit_softmax with C; "ridge": fit_ridge with alpha):
    E [L, S, H] embeddings, present [L, S], y [S] class ids, train/test [S] masks. A source
    with no train sentence gets correct = -1 (no probe)."""
    E = np.asarray(E, dtype=np.float64)
    Xtr, wtr = E[:, train], present[:, train].astype(np.float64)
    mu, sd = standardise_stats(Xtr, wtr)
    Xs = (Xtr - mu[:, None]) / sd[:, None]
    if probe == "ridge":
        W, b = fit_ridge(Xs, y[train], wtr, n_classes, alpha)
    elif probe == "logistic":
        W, b = fit_softmax(Xs, y[train], wtr, n_classes, C, max_iter, tol)
    else:
        raise ValueError(f"probe must be 'ridge' or 'logistic', got {probe!r}")
    Wf = W / sd[:, :, None]                              # fold the source's scaler into the probe
    bf = b - np.einsum("sh,shc->sc", mu / sd, W)
    Xte, pte, yte = E[:, test], present[:, test], y[test]
    L, n_te_all, H = Xte.shape
    nc = Wf.shape[2]
    # every source's probe on every target's test rows as one GEMM: [L*n, H] @ [H, L*C]
    logits = (Xte.reshape(L * n_te_all, H) @ Wf.transpose(1, 0, 2).reshape(H, L * nc)).reshape(L, n_te_all, L, nc)
    logits += bf[None, None]
    pred = np.argmax(logits, axis=3)                                   # [target, n, source]
    correct = ((pred == yte[None, :, None]) & pte[:, :, None]).sum(axis=1).T   # [source, target]
    correct[wtr.sum(axis=1) == 0] = -1
    return correct, pte.sum(axis=1)


def grid_one_layer(E: np.ndarray, present: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                   n_classes: int, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-6) -> np.ndarray:
    """accuracy [L, L] (source, target) for one layer and one split (see grid_counts); NaN
    where a source has no train sentence or a target no test sentence."""
    correct, tested = grid_counts(E, present, y, train, test, n_classes, C, max_iter, tol)
    return _ratio(correct, tested)


def _ratio(correct: np.ndarray, tested: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(tested[None] > 0, correct / np.maximum(tested, 1)[None], np.nan)
    acc[(correct < 0).any(axis=1)] = np.nan
    return acc


# -- the result ----------------------------------------------------------------------------
@dataclass
class ProbeGrid:
    """accuracy[k, s, t]: probe trained on source s at layer layers[k], accuracy on target t's
    test sentences (fraction; with k-fold, pooled over the folds). attrs: split seed, folds,
    C, counts, timing, the store's provenance."""

    languages: list[str]
    layers: list[int]
    accuracy: np.ndarray
    categories: list[str]
    attrs: dict = field(default_factory=dict)

    def _k(self, layer: int | None) -> int:
        if layer is None:
            return int(np.argmax(self.mean_transfer()))
        if layer not in self.layers:
            raise ValueError(f"layer {layer} not in the grid (layers {self.layers})")
        return self.layers.index(layer)

    def mean_transfer(self) -> np.ndarray:
        """[K] mean off-diagonal (cross-lingual) accuracy per layer."""
        L = len(self.languages)
        off = ~np.eye(L, dtype=bool)
        return np.array([np.nanmean(a[off]) for a in self.accuracy])

    def best_layer(self) -> int:
        """The layer with the highest mean cross-lingual accuracy."""
        return int(self.layers[int(np.argmax(self.mean_transfer()))])

    def get(self, source: str, target: str, layer: int | None = None) -> float:
        k = self._k(layer)
        return float(self.accuracy[k, self.languages.index(source), self.languages.index(target)])

    def to_transfer_table(self, layer: int | None = None):
        """The grid at `layer` (None: best) as analysis.transfer's TransferTable, scores in
        percent as in xpos; codes are our ids, so every id maps to itself."""
        from babelmap.analysis.transfer import TransferTable
        k = self._k(layer)
        return TransferTable(list(self.languages), list(self.languages), 100.0 * self.accuracy[k].astype(np.float64),
                             ids={l: l for l in self.languages}, unmapped={},
                             path=f"{self.attrs.get('path', 'probe grid')}@layer{self.layers[k]}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the grid (HDF5) through engine.diskwrite: built in memory, temp name, rename."""
        import h5py
        from babelmap.engine.diskwrite import write_hdf5_safely

        def build(f: "h5py.File") -> None:
            f.create_dataset("languages", data=np.array(self.languages, dtype=object),
                             dtype=h5py.string_dtype())
            f.create_dataset("layers", data=np.asarray(self.layers, dtype=np.int64))
            f.create_dataset("accuracy", data=np.asarray(self.accuracy, dtype=np.float32))
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["categories"] = json.dumps(list(self.categories))
            for k, v in self.attrs.items():
                if k == "path":
                    continue
                f.attrs[k] = v if isinstance(v, (int, float, str, np.integer, np.floating)) else json.dumps(v)

        return write_hdf5_safely(Path(path), build, "probe grid")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ProbeGrid":
        import h5py
        path = Path(path)
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise StoreError(f"{path} is not a readable HDF5 file ({e})") from e
        with f:
            if f.attrs.get("format") != FORMAT:
                raise StoreError(f"{path} is not a babelmap probe grid (format {f.attrs.get('format')!r})")
            langs = [s.decode() if isinstance(s, bytes) else s for s in f["languages"][()]]
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            cats = json.loads(attrs.pop("categories"))
            grid = cls(langs, [int(x) for x in f["layers"][()]], f["accuracy"][()].astype(np.float64), cats, attrs)
        grid.attrs["path"] = str(path)
        return grid

    def __repr__(self) -> str:
        return (f"<ProbeGrid {len(self.languages)} languages x {len(self.layers)} layers, "
                f"{len(self.categories)} categories, best layer {self.best_layer()}>")


# -- from a store --------------------------------------------------------------------------
def probe_grid(store, labels, *, layers: Sequence[int] | None = None, folds: int = 5,
               test_fraction: float = 0.3, seed: int = 0, probe: str = "ridge", alpha: float = 1000.0,
               C: float = 0.1, max_iter: int = 1000, tol: float = 1e-5, progress: bool = True) -> ProbeGrid:
    """The source x target topic-probe accuracy grid for every language of `store` (a path or
    an open Store) at every hidden state it holds (or `layers`: hidden-state numbers, 0 = the
    embedding output, as in the store's `layers`, also when `--layers` kept only some). `labels`: analysis.topics.TopicLabels
    (sentence id -> article, category); store sentences without a category are not used.
    folds > 1: grouped stratified k-fold over articles (article_folds), correct answers pooled
    over the folds, so every labelled sentence is tested once; folds = 1: one split by article
    with `test_fraction` of the articles in test (split_by_article). probe: "ridge" (closed
    form, default: all sources and folds of a layer in about a second) or "logistic"."""
    from tqdm import tqdm

    from babelmap.engine.store import Store, open_store
    st = store if isinstance(store, Store) else open_store(store)
    langs = list(st.languages)
    held = [int(k) for k in st.layers]     # hidden-state numbers along the store's layer axis
    layers = list(held) if layers is None else [int(k) for k in layers]
    for k in layers:
        if k not in held:
            raise StoreError(f"layer {k} not in store {st.path} (it holds hidden states "
                             f"{', '.join(map(str, held))})")
    cats = list(labels.categories_order)
    cat_id = {c: i for i, c in enumerate(cats)}
    lab = labels.by_sentence()
    cols = [j for j, sid in enumerate(st.sentence_ids) if lab.get(sid, (None, None))[1] is not None]
    if not cols:
        raise StoreError(f"no sentence of store {st.path} has a topic label (store ids like "
                         f"{st.sentence_ids[:2]}, labels like {labels.sentence_ids[:2]})")
    y = np.array([cat_id[lab[st.sentence_ids[j]][1]] for j in cols])
    arts = [lab[st.sentence_ids[j]][0] for j in cols]
    if folds > 1:
        fold = article_folds(arts, y, folds, seed)
        splits = [(fold != f, fold == f) for f in range(folds)]
    else:
        splits = [split_by_article(arts, y, test_fraction, seed)]
    present = st.mask[:, cols]
    acc = np.full((len(layers), len(langs), len(langs)), np.nan)
    times = []
    for kk, k in enumerate(tqdm(layers, desc="probe grid", unit="layer", disable=not progress)):
        t0 = time.perf_counter()
        E = st.block(layers=[held.index(k)])[:, 0][:, cols]
        correct = np.zeros((len(langs), len(langs)), dtype=np.int64)
        tested = np.zeros(len(langs), dtype=np.int64)
        for train, test in splits:
            c, t = grid_counts(E, present, y, train, test, len(cats), C, max_iter, tol, probe, alpha)
            correct = np.where((correct < 0) | (c < 0), -1, correct + c)
            tested += t
        acc[kk] = _ratio(correct, tested)
        times.append(time.perf_counter() - t0)
    count = lambda m: {c: int(np.sum(y[m] == i)) for i, c in enumerate(cats)}  # noqa: E731
    train0, test0 = splits[0]
    attrs = {"split_seed": seed, "folds": folds, "test_fraction": test_fraction if folds <= 1 else 1.0 / folds,
             "probe": probe, **({"alpha": alpha} if probe == "ridge" else {"C": C, "tol": tol}),
             "split_unit": "article",
             "counts": count(np.ones(len(y), bool)),
             "counts_train": count(train0), "counts_test": count(test0),
             "n_train": int(train0.sum()), "n_test": int(test0.sum()), "n_sentences": int(len(y)),
             "articles": len(set(arts)),
             "articles_train": len({a for a, m in zip(arts, train0) if m}),
             "articles_test": len({a for a, m in zip(arts, test0) if m}),
             "seconds_per_layer": [round(t, 3) for t in times],
             "store": str(st.path), "labels": getattr(labels, "source", ""),
             "model": str(st.attrs.get("model", "")), "corpus_name": str(st.attrs.get("corpus_name", "")),
             "corpus_fingerprint": str(st.attrs.get("corpus_fingerprint", ""))}
    return ProbeGrid(langs, layers, acc, cats, attrs)


def load_probe(path: str | os.PathLike) -> ProbeGrid:
    """Open a saved probe grid."""
    return ProbeGrid.load(path)
