"""Topic labels (FLORES metadata -> SIB-200-style categories) and the topic-probe transfer grid,
checked against scikit-learn (LogisticRegression on StandardScaler features) and a direct loop
over (source, target) pairs, on real HDF5 stores."""
from __future__ import annotations

import numpy as np
import pytest

from babelmap.analysis.probe import (ProbeGrid, article_folds, fit_ridge, fit_softmax, grid_one_layer, load_probe,
                                     probe_grid, split_by_article, standardise_stats)
from babelmap.analysis.topics import (CATEGORIES, TOPIC_TO_CATEGORY, TopicLabels, category_of, mapping_table,
                                      read_flores_topics, sample_articles)
from babelmap.engine.errors import CorpusError, StoreError
from babelmap.engine.store import write_store

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is the reference probe (pip install scikit-learn)")
from sklearn.linear_model import LogisticRegression, RidgeClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


from extract_util import one_thread  # noqa: E402,F401  (autouse: torch on one thread)


# -- topics --------------------------------------------------------------------------------
def test_flores_topics_real_metadata(flores_dir):
    lab = read_flores_topics(flores_dir)
    assert len(lab.sentence_ids) == 997 and lab.sentence_ids[0] == "dev:1" and lab.sentence_ids[-1] == "dev:997"
    assert len(set(lab.articles)) == 281
    # every topic string of the file is either in the table or dropped on purpose, and counted once
    table = mapping_table(lab)
    assert sum(n for _, _, n in table) == 997
    counts = lab.counts()
    assert counts == {c: sum(n for cat, _, n in table if cat == c) for c in CATEGORIES}
    assert sum(counts.values()) == 727 and min(counts.values()) > 0
    assert category_of("  Travel ") == "travel" and category_of("Crime and law") is None
    assert set(TOPIC_TO_CATEGORY.values()) == set(CATEGORIES)
    # topics are read from the row of the sentence: first rows are one health article
    assert lab.topics[0] == "health" and lab.categories[0] == "health"
    kept = lab.labelled()
    assert len(kept.sentence_ids) == 727 and None not in kept.categories


def test_sample_articles_whole_articles_nested(flores_dir):
    lab = read_flores_topics(flores_dir)
    small, big = sample_articles(lab, 15, seed=0), sample_articles(lab, 30, seed=0)
    assert set(small) < set(big)
    by = lab.by_sentence()
    arts = {by[s][0] for s in small}
    # whole articles: every labelled sentence of a chosen article is in
    assert {s for s, a, c in zip(lab.sentence_ids, lab.articles, lab.categories) if a in arts and c} == set(small)
    cats = {by[s][1] for s in small}
    assert cats == set(CATEGORIES)


def test_metadata_errors(tmp_path):
    with pytest.raises(CorpusError, match="no FLORES metadata"):
        read_flores_topics(tmp_path)
    bad = tmp_path / "metadata_dev.tsv"
    bad.write_text("URL\tdomain\ttopic\nhttp://a\twikinews\n")
    with pytest.raises(CorpusError, match="line 2"):
        read_flores_topics(bad)


# -- split ---------------------------------------------------------------------------------
def test_split_by_article_disjoint_stratified():
    rng = np.random.default_rng(1)
    arts, ys = [], []
    for a in range(40):
        y = a % 4
        for _ in range(rng.integers(2, 6)):
            arts.append(f"art{a}")
            ys.append(y)
    train, test = split_by_article(arts, ys, 0.3, seed=3)
    assert not np.any(train & test) and np.all(train | test)
    tr_a = {a for a, m in zip(arts, train) if m}
    te_a = {a for a, m in zip(arts, test) if m}
    assert not tr_a & te_a
    ys = np.array(ys)
    for y in range(4):                                   # 10 articles per class: 3 test, 7 train
        assert len({a for a, m, c in zip(arts, test, ys) if m and c == y}) == 3
        assert len({a for a, m, c in zip(arts, train, ys) if m and c == y}) == 7
    again = split_by_article(arts, ys, 0.3, seed=3)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(split_by_article(arts, ys, 0.3, seed=4)[1], test)
    # a category with one article stays in train
    tr1, te1 = split_by_article(["x", "x", "y", "z"], [0, 0, 1, 1], 0.5, seed=0)
    assert tr1[:2].all()


def test_article_folds_grouped_stratified():
    arts = [f"a{i // 3}" for i in range(90)]                  # 30 articles of 3 sentences
    ys = [(i // 3) % 3 for i in range(90)]                    # 10 articles per class
    fold = article_folds(arts, ys, 5, seed=0)
    for a in set(arts):
        assert len({f for f, b in zip(fold, arts) if b == a}) == 1          # an article in one fold
    assert np.bincount(fold).tolist() == [18] * 5
    for f in range(5):
        for y in range(3):                                                   # 2 test articles per class
            assert len({a for a, g, c in zip(arts, fold, ys) if g == f and c == y}) == 2
    assert not np.array_equal(article_folds(arts, ys, 5, seed=1), fold)


def test_probe_grid_kfold_pools_folds_sklearn(tmp_path):
    lab = _labels()
    path = _store(tmp_path, lab)
    g = probe_grid(path, lab, layers=[1], folds=3, seed=2, alpha=5.0, progress=False)
    from babelmap.engine.store import open_store
    with open_store(path) as st:
        E = st.block(layers=[1])[:, 0, :120].astype(np.float64)
    y = np.array([int(c[-1]) for c in lab.categories])
    fold = article_folds(lab.articles, y, 3, 2)
    for s, t in [(0, 1), (2, 0), (3, 3)]:                      # sklearn per fold, answers pooled
        right = 0
        for f in range(3):
            tr, te = fold != f, fold == f
            sc = StandardScaler().fit(E[s][tr])
            clf = RidgeClassifier(alpha=5.0).fit(sc.transform(E[s][tr]), y[tr])
            right += int(np.sum(clf.predict(sc.transform(E[t][te])) == y[te]))
        assert g.accuracy[0, s, t] == pytest.approx(right / 120, abs=1e-12)
    assert g.attrs["folds"] == 3 and g.attrs["n_sentences"] == 120 and g.attrs["probe"] == "ridge"


# -- the probe against scikit-learn ----------------------------------------------------------
def _data(B, n, H, C, seed=0, signal=0.6):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    X = rng.normal(size=(B, n, H)) + signal * (np.eye(C)[y] @ rng.normal(size=(C, H)))[None]
    return X, y


@pytest.mark.parametrize("n,H", [(50, 12), (24, 40)])          # n > H, and n < H (the SVD path)
def test_fit_softmax_matches_sklearn(n, H):
    B, C, Creg = 3, 4, 0.7
    X, y = _data(B, n, H, C)
    w = np.ones((B, n))
    w[1, :5] = 0                                                 # rows missing in problem 1
    mu, sd = standardise_stats(X, w)
    W, b = fit_softmax((X - mu[:, None]) / sd[:, None], y, w, C, C=Creg, tol=1e-8)
    for i in range(B):
        keep = w[i] > 0
        sc = StandardScaler().fit(X[i][keep])
        assert np.allclose(sc.mean_, mu[i]) and np.allclose(sc.scale_, sd[i])
        Xs = sc.transform(X[i][keep])
        ref = LogisticRegression(C=Creg, tol=1e-10, max_iter=100000).fit(Xs, y[keep])
        p_ref = ref.predict_proba(Xs)
        z = Xs @ W[i] + b[i]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        assert np.abs(p - p_ref).max() < 1e-5
        assert np.abs(W[i] - ref.coef_.T).max() < 1e-4


@pytest.mark.parametrize("n,H", [(50, 12), (24, 40)])          # primal and dual solves
def test_fit_ridge_matches_sklearn(n, H):
    B, C, alpha = 3, 4, 7.0
    X, y = _data(B, n, H, C, seed=5)
    w = np.ones((B, n))
    w[2, -6:] = 0
    W, b = fit_ridge(X, y, w, C, alpha)
    for i in range(B):
        keep = w[i] > 0
        ref = RidgeClassifier(alpha=alpha).fit(X[i][keep], y[keep])
        # sklearn's targets are -1/+1 (= 2 * one-hot - 1): its scores are 2 * ours - 1
        assert np.allclose(ref.decision_function(X[i]), 2 * (X[i] @ W[i] + b[i]) - 1, atol=1e-9)


def test_grid_one_layer_matches_direct_sklearn_loop():
    L, S, H, C = 4, 60, 10, 3
    X, y = _data(L, S, H, C, seed=2, signal=0.8)
    present = np.ones((L, S), bool)
    present[2, ::7] = False                                      # some sentences missing in language 2
    X = np.where(present[:, :, None], X, 0.0)
    train = np.arange(S) < 40
    test = ~train
    from babelmap.analysis.probe import grid_counts
    acc = grid_one_layer(X, present, y, train, test, C, C=1.0, tol=1e-8)
    correct, tested = grid_counts(X, present, y, train, test, C, probe="ridge", alpha=3.0)
    for s in range(L):
        tr = train & present[s]
        sc = StandardScaler().fit(X[s][tr])
        clf = LogisticRegression(C=1.0, tol=1e-12, max_iter=100000).fit(sc.transform(X[s][tr]), y[tr])
        rc = RidgeClassifier(alpha=3.0).fit(sc.transform(X[s][tr]), y[tr])
        for t in range(L):
            te = test & present[t]
            want = np.mean(clf.predict(sc.transform(X[t][te])) == y[te])
            assert acc[s, t] == pytest.approx(want, abs=1e-12), (s, t)
            assert tested[t] == te.sum()
            assert correct[s, t] == np.sum(rc.predict(sc.transform(X[t][te])) == y[te]), (s, t)


# -- a real store with a known answer --------------------------------------------------------
def _labels(n_art=30, per=4, C=3):
    sids, arts, tops, cats = [], [], [], []
    for a in range(n_art):
        for k in range(per):
            sids.append(f"dev:{len(sids) + 1}")
            arts.append(f"http://art/{a}")
            tops.append(f"topic{a % C}")
            cats.append(f"cat{a % C}")
    return TopicLabels(sids, arts, tops, cats, source="synthetic", categories_order=tuple(f"cat{i}" for i in range(C)))


def _store(tmp_path, labels, seed=0):
    """Languages aaa/bbb share the class directions (transfer works), ccc has its own (chance
    across), ddd is noise; layer 0 carries no signal, layer 1 does."""
    rng = np.random.default_rng(seed)
    C, H = 3, 16
    y = np.array([int(c[-1]) for c in labels.categories])
    S = len(y)
    q = np.linalg.qr(rng.normal(size=(H, H)))[0].T * 4     # orthogonal class directions
    shared_dirs, own = q[:C], q[C:2 * C]
    langs = ["aaa_Latn", "bbb_Latn", "ccc_Latn", "ddd_Latn"]
    E = rng.normal(size=(4, 2, S, H)) * 0.5
    E[0, 1] += 2 * shared_dirs[y]
    E[1, 1] += 2 * shared_dirs[y] + 0.3
    E[2, 1] += 2 * own[y]
    sids = labels.sentence_ids + ["dev:9999"]                    # an unlabelled sentence is ignored
    E = np.concatenate([E, rng.normal(size=(4, 2, 1, H))], axis=2)
    return write_store(tmp_path / "s.h5", langs, sids, E.astype(np.float32), dtype="float32",
                       attrs={"model": "synthetic"})


def test_probe_grid_store_known_answer_save_load(tmp_path):
    lab = _labels()
    path = _store(tmp_path, lab)
    g = probe_grid(path, lab, seed=0, folds=1, probe="logistic", C=1.0, progress=False)
    assert g.languages == ["aaa_Latn", "bbb_Latn", "ccc_Latn", "ddd_Latn"] and g.layers == [0, 1]
    a1 = g.accuracy[1]
    assert a1[0, 0] > 0.95 and a1[0, 1] > 0.95 and a1[1, 0] > 0.95 and a1[2, 2] > 0.95
    assert a1[0, 2] < 0.6 and a1[3, 3] < 0.6
    assert np.nanmean(g.accuracy[0]) < 0.6 and g.best_layer() == 1
    assert g.attrs["n_train"] + g.attrs["n_test"] == 120 and g.attrs["articles_test"] == 9
    assert all(v > 0 for v in g.attrs["counts_train"].values())
    # the grid equals one layer computed directly from the stored arrays and the same split
    from babelmap.engine.store import open_store
    with open_store(path) as st:
        E = st.block(layers=[1])[:, 0, :120]
    y = np.array([int(c[-1]) for c in lab.categories])
    tr, te = split_by_article(lab.articles, y, 0.3, 0)
    assert np.allclose(grid_one_layer(E, np.ones((4, 120), bool), y, tr, te, 3, C=1.0, tol=1e-5), a1)
    g.save(tmp_path / "g.h5")
    g2 = load_probe(tmp_path / "g.h5")
    assert g2.languages == g.languages and g2.layers == g.layers and g2.categories == ["cat0", "cat1", "cat2"]
    assert np.allclose(g2.accuracy, g.accuracy, atol=1e-6) and g2.attrs["split_seed"] == 0
    assert g2.attrs["counts_test"] == g.attrs["counts_test"] or isinstance(g2.attrs["counts_test"], str)
    with pytest.raises(StoreError, match="not a babelmap probe grid"):
        ProbeGrid.load(path)


def test_probe_grid_feeds_source_selection(tmp_path):
    from babelmap.analysis.transfer import ENGLISH, select_sources
    from babelmap.kernels.matrix import LanguageMatrix
    lab = _labels()
    g = probe_grid(_store(tmp_path, lab), lab, layers=[1], progress=False)
    table = g.to_transfer_table(1)
    assert table.scores.shape == (4, 4) and table.score("aaa_Latn", "bbb_Latn") == pytest.approx(100 * g.get("aaa_Latn", "bbb_Latn", 1))
    langs = g.languages
    good = LanguageMatrix(langs, np.array([[1, .9, .1, .1], [.9, 1, .1, .1], [.1, .1, 1, .1], [.1, .1, .1, 1.]]), name="good")
    sel = select_sources(table, {"good": good, "english": ENGLISH}, english="ddd_Latn")
    per = dict(zip(sel.targets, sel.chosen["good"]))
    assert per["aaa_Latn"] == "bbb_Latn" and per["bbb_Latn"] == "aaa_Latn"
    assert sel.chosen_score["good"][sel.targets.index("aaa_Latn")] > 95


def test_probe_grid_errors(tmp_path):
    lab = _labels()
    path = _store(tmp_path, lab)
    with pytest.raises(StoreError, match="layer 5"):
        probe_grid(path, lab, layers=[5], progress=False)
    other = TopicLabels(["x:1"], ["a"], ["t"], ["cat0"], categories_order=("cat0",))
    with pytest.raises(StoreError, match="has a topic label"):
        probe_grid(path, other, progress=False)


def test_probe_grid_on_a_store_extracted_with_layers_subset(tmp_path, tiny_bert):
    """A store that kept hidden states 0 and 2 (`--layers 0,2`): probe_grid takes hidden-state
    numbers, not positions, and gives exactly the grid of a full store at those hidden states."""
    from babelmap.cli import main
    from babelmap.engine.store import open_store
    from extract_util import corpus_rows, write_plain
    corpus = write_plain(tmp_path / "c", corpus_rows(n=40, seed=5, missing=0.1))
    args = ["extract", "--corpus", str(corpus), "--format", "plain", "--model", str(tiny_bert), "--device", "cpu",
            "--store-dtype", "float32", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "full.h5")]) == 0
    assert main(args + ["--layers", "0,2", "--out", str(tmp_path / "sub.h5")]) == 0
    with open_store(tmp_path / "sub.h5") as st:
        assert st.layers == [0, 2] and st.shape[1] == 2
        sids = list(st.sentence_ids)
    lab = TopicLabels(sids, [f"art{j // 4}" for j in range(40)], ["t"] * 40, [f"cat{(j // 4) % 2}" for j in range(40)],
                      categories_order=("cat0", "cat1"))
    full = probe_grid(tmp_path / "full.h5", lab, folds=3, alpha=1.0, progress=False)
    sub = probe_grid(tmp_path / "sub.h5", lab, folds=3, alpha=1.0, progress=False)
    assert full.layers == [0, 1, 2] and sub.layers == [0, 2] and np.isfinite(full.accuracy).all()
    np.testing.assert_array_equal(sub.accuracy, full.accuracy[[0, 2]])
    assert not np.array_equal(full.accuracy[1], full.accuracy[2])      # a positional mix-up would show
    only2 = probe_grid(tmp_path / "sub.h5", lab, layers=[2], folds=3, alpha=1.0, progress=False)
    assert only2.layers == [2] and np.array_equal(only2.accuracy[0], full.accuracy[2])
    with pytest.raises(StoreError, match=r"layer 1 not in store .*holds hidden states 0, 2"):
        probe_grid(tmp_path / "sub.h5", lab, layers=[1], progress=False)
